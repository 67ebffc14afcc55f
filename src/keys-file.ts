// src/keys-file.ts
// KeyStore over a KEYS_FILE, for the keys CLI when there is no Redis: new keys are appended as hash-only lines,
// revocations mark their line. A server with the memory store reads the file at start (restart it to apply).
import { randomBytes } from 'node:crypto';
import { appendFile, readFile, rename, writeFile } from 'node:fs/promises';
import { formatKeyLine, parseKeyJson, parseKeyLine, seedRecord } from './keys.js';
import type { ApiKeyRecord, KeyStore } from './store/types.js';

interface Loaded {
  kind: 'lines' | 'json';
  text: string;
  lines: string[];
  json: Record<string, unknown>[];
  /** Records with the line (or array index) each came from. */
  entries: { record: ApiKeyRecord; index: number }[];
}

export class FileKeyStore implements KeyStore {
  constructor(readonly file: string, private readonly defaults: { plan: string }) {}

  private async load(): Promise<Loaded> {
    const text = await readFile(this.file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw err;
    });
    if (text.trimStart().startsWith('[')) {
      const json = JSON.parse(text) as Record<string, unknown>[];
      return { kind: 'json', text, lines: [], json, entries: json.map((j, index) => ({ record: seedRecord(parseKeyJson(j), this.defaults), index })) };
    }
    const lines = text.split('\n');
    const entries: Loaded['entries'] = [];
    lines.forEach((l, index) => {
      const seed = parseKeyLine(l);
      if (seed) entries.push({ record: seedRecord(seed, this.defaults), index });
    });
    return { kind: 'lines', text, lines, json: [], entries };
  }

  /** Rewrites through a temporary file and a rename, so a crash never leaves half a keys file. */
  private async replace(text: string): Promise<void> {
    const tmp = `${this.file}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, text, { mode: 0o600 });
    await rename(tmp, this.file);
  }

  async add(record: ApiKeyRecord): Promise<boolean> {
    const f = await this.load();
    if (f.entries.some((e) => e.record.hash === record.hash)) return false;
    if (f.kind === 'json') {
      f.json.push({
        hash: record.hash,
        mode: record.mode,
        plan: record.plan,
        email: record.email,
        ...(record.label ? { label: record.label } : {}),
        subscription_status: record.subscriptionStatus,
        created_at: record.createdAt,
      });
      await this.replace(`${JSON.stringify(f.json, null, 2)}\n`);
    } else {
      const sep = f.text === '' || f.text.endsWith('\n') ? '' : '\n';
      await appendFile(this.file, `${sep}${formatKeyLine(record)}\n`, { mode: 0o600 });
    }
    return true;
  }
  async findByHash(hash: string): Promise<ApiKeyRecord | undefined> {
    return (await this.load()).entries.find((e) => e.record.hash === hash)?.record;
  }
  async get(fingerprint: string): Promise<ApiKeyRecord | undefined> {
    return (await this.load()).entries.find((e) => e.record.fingerprint === fingerprint)?.record;
  }
  async list(): Promise<ApiKeyRecord[]> {
    return (await this.load()).entries.map((e) => e.record).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }
  async revoke(fingerprint: string, at: Date): Promise<boolean> {
    const f = await this.load();
    const e = f.entries.find((x) => x.record.fingerprint === fingerprint);
    if (!e || e.record.revokedAt) return false;
    if (f.kind === 'json') {
      f.json[e.index]!.revoked_at = at.toISOString();
      await this.replace(`${JSON.stringify(f.json, null, 2)}\n`);
    } else {
      f.lines[e.index] = `${f.lines[e.index]!.trimEnd()} revoked=${encodeURIComponent(at.toISOString())}`;
      await this.replace(f.lines.join('\n'));
    }
    return true;
  }
  async count(): Promise<number> {
    return (await this.load()).entries.length;
  }
}
