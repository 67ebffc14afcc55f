// test/shutdown.test.ts
// SIGTERM under load: the real server process (npm start's entry point) stops accepting, finishes every request
// it had accepted with a complete image, and exits 0.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { subjectFixture } from './helpers/fixtures.js';
import { form, imageBlob, TEST_KEY } from './helpers/server.js';

const root = path.resolve(import.meta.dirname, '..');
let child: ChildProcess | undefined;

afterAll(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
});

function startProcess(env: Record<string, string>): Promise<{ port: number; proc: ChildProcess; exited: Promise<number | null> }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', API_KEYS: TEST_KEY, REDIS_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = proc;
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 60_000);
    proc.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /"port":(\d+)[^\n]*"msg":"listening"/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve({ port: Number(match[1]), proc, exited });
      }
    });
    proc.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${out}`)));
  });
}

describe('graceful shutdown', () => {
  it('finishes every accepted request after SIGTERM, refuses new ones, exits 0', async () => {
    const { port, proc, exited } = await startProcess({ QUEUE_CONCURRENCY: '1', QUEUE_MAX_WAITING: '16', SHUTDOWN_TIMEOUT_MS: '60000' });
    const fx = await subjectFixture({ width: 640, height: 480 });
    const url = `http://127.0.0.1:${port}/v2`;
    const send = (i: number) =>
      fetch(url, { method: 'POST', headers: { 'x-api-key': TEST_KEY }, body: form({ image_file: imageBlob(fx.bytes), format: i % 2 ? 'webp' : 'png' }) }).then(
        async (res) => ({ status: res.status, bytes: Buffer.from(await res.arrayBuffer()), type: res.headers.get('content-type') }),
      );
    const inFlight = Array.from({ length: 6 }, (_, i) => send(i));
    // Let them all be accepted and queued (one runs, five wait), then ask the process to stop.
    await new Promise((r) => setTimeout(r, 700));
    proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    const late = await send(99).then(
      (r) => r.status,
      () => 'refused',
    );
    const results = await Promise.all(inFlight);
    for (const r of results) {
      expect(r.status).toBe(200);
      const meta = await sharp(r.bytes).metadata();
      expect([meta.width, meta.height]).toEqual([640, 480]);
      expect(meta.hasAlpha).toBe(true);
    }
    expect(['refused', 503]).toContain(late);
    expect(await exited).toBe(0);
  }, 120_000);
});
