// test/keys-cli.test.ts
// `npm run keys` as a child process against Redis (unique REDIS_KEY_PREFIX) and against KEYS_FILE, with the keys
// then used over HTTP on a gateway that shares the store.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FINGERPRINT_RE, runKeysCli, SECRET_RE } from './helpers/child.js';
import { startServer, type TestServer } from './helpers/server.js';
import { deletePrefix, REDIS_URL, uniquePrefix } from './store/harness.js';

const PLANS = JSON.stringify({ Pro: { monthlyCredits: 100 } });

function created(out: string) {
  const secret = SECRET_RE.exec(out)?.[0];
  const fingerprint = FINGERPRINT_RE.exec(out)?.[0];
  expect(secret, out).toBeDefined();
  expect(fingerprint, out).toBeDefined();
  // The secret is printed exactly once.
  expect(out.split(secret!).length - 1).toBe(1);
  return { secret: secret!, fingerprint: fingerprint! };
}

const account = (s: TestServer, secret: string) => fetch(`${s.url}/v2/account`, { headers: { 'x-api-key': secret } });

describe('keys CLI on Redis', () => {
  const prefix = uniquePrefix('cli');
  const env = { REDIS_URL, REDIS_KEY_PREFIX: prefix, PLANS };
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ REDIS_URL, REDIS_KEY_PREFIX: prefix, PLANS, API_KEYS: '' });
  });
  afterAll(async () => {
    await s?.close();
    await deletePrefix(REDIS_URL, prefix);
  });

  it('create prints the secret once with its fingerprint; the key works on the gateway at once', async () => {
    const r = await runKeysCli(['create', '--plan', 'Pro', '--email', 'cust@example.com', '--label', 'shop front'], env);
    expect(r.code, r.stderr).toBe(0);
    const { secret, fingerprint } = created(r.stdout);
    expect(secret).toMatch(/^bge_live_/);
    expect(r.stdout).toContain('shown only this once');
    const res = await account(s, secret);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { api_key: { fingerprint: string; mode: string }; account: { plan: string; email: string }; usage: { monthly_credits: number } };
    expect(body.api_key).toMatchObject({ fingerprint, mode: 'live' });
    expect(body.account).toMatchObject({ plan: 'Pro', email: 'cust@example.com' });
    expect(body.usage.monthly_credits).toBe(100);
  });

  it('list shows fingerprint, mode, plan, email, created and revoked, never a secret', async () => {
    const a = created((await runKeysCli(['create', '--mode', 'admin', '--email', 'ops@example.com'], env)).stdout);
    const list = await runKeysCli(['list'], env);
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^fingerprint\s+mode\s+plan\s+email\s+created\s+revoked/);
    const row = list.stdout.split('\n').find((l) => l.startsWith(a.fingerprint))!;
    expect(row).toMatch(/admin\s+Business\s+ops@example\.com\s+\d{4}-\d\d-\d\dT[\d:.]+Z\s+-/);
    expect(list.stdout).not.toMatch(SECRET_RE);
    expect(list.stdout).not.toMatch(/[0-9a-f]{64}/);
    const json = JSON.parse((await runKeysCli(['list', '--json'], env)).stdout) as { fingerprint: string; hash?: string }[];
    expect(json.find((k) => k.fingerprint === a.fingerprint)).toBeDefined();
    expect(json.every((k) => k.hash === undefined)).toBe(true);
    // The admin key made by the CLI can use the admin API.
    expect((await fetch(`${s.url}/v2/admin/keys`, { headers: { 'x-api-key': a.secret } })).status).toBe(200);
  });

  it('revoke: the key gets 401 on the gateway; revoking twice or an unknown fingerprint fails clearly', async () => {
    const k = created((await runKeysCli(['create'], env)).stdout);
    expect((await account(s, k.secret)).status).toBe(200);
    const r = await runKeysCli(['revoke', k.fingerprint], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Revoked ${k.fingerprint}`);
    const res = await account(s, k.secret);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
    const again = await runKeysCli(['revoke', k.fingerprint], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already revoked/);
    const unknown = await runKeysCli(['revoke', 'tok_fp_00000000000000000000'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no key/);
    const list = (await runKeysCli(['list'], env)).stdout.split('\n').find((l) => l.startsWith(k.fingerprint))!;
    expect(list).toMatch(/\d{4}-\d\d-\d\dT[\d:.]+Z\s+\d{4}-\d\d-\d\dT[\d:.]+Z/);
  });

  it('rotate revokes the old key and prints a new one with the same account fields', async () => {
    const old = created((await runKeysCli(['create', '--plan', 'Pro', '--email', 'rot@example.com', '--label', 'rotating'], env)).stdout);
    const r = await runKeysCli(['rotate', old.fingerprint], env);
    expect(r.code, r.stderr).toBe(0);
    const secret = SECRET_RE.exec(r.stdout)![0];
    expect(secret).not.toBe(old.secret);
    expect((await account(s, old.secret)).status).toBe(401);
    const res = await account(s, secret);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { api_key: { fingerprint: string }; account: { plan: string; email: string } };
    expect(body.api_key.fingerprint).not.toBe(old.fingerprint);
    expect(r.stdout).toContain(body.api_key.fingerprint);
    expect(body.account).toMatchObject({ plan: 'Pro', email: 'rot@example.com' });
    const keys = (await s.gw.stores.keys.list()).find((k) => k.fingerprint === body.api_key.fingerprint);
    expect(keys?.label).toBe('rotating');
  });

  it('bad arguments exit 2 with a message', async () => {
    const mode = await runKeysCli(['create', '--mode', 'root'], env);
    expect(mode.code).toBe(2);
    expect(mode.stderr).toMatch(/--mode/);
    const plan = await runKeysCli(['create', '--plan', 'Gold'], env);
    expect(plan.code).toBe(2);
    expect(plan.stderr).toMatch(/unknown plan "Gold"/);
    expect((await runKeysCli(['explode'], env)).code).toBe(2);
    expect((await runKeysCli(['rotate'], env)).code).toBe(2);
  });

  it('Redis unreachable: a clear error, exit 1', async () => {
    const r = await runKeysCli(['list'], { REDIS_URL: 'redis://127.0.0.1:1', STORE_TIMEOUT_MS: '300' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach Redis/);
  });
});

describe('keys CLI without Redis', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bgw-keys-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('neither REDIS_URL nor KEYS_FILE: exits 2 explaining what to set', async () => {
    const r = await runKeysCli(['create'], {});
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/REDIS_URL/);
    expect(r.stderr).toMatch(/KEYS_FILE/);
    expect(r.stdout).not.toMatch(SECRET_RE);
  });

  it('KEYS_FILE: create appends a hash-only line the server seeds from; revoke marks it and takes effect on restart', async () => {
    const file = path.join(dir, 'keys.txt');
    await writeFile(file, '# operator keys\nbge_live_operator_written_key_000000000000 live Pro ops@example.com\n');
    const env = { KEYS_FILE: file, PLANS };
    const k = created((await runKeysCli(['create', '--plan', 'Pro', '--email', 'file@example.com', '--label', 'from file'], env)).stdout);
    const text = await readFile(file, 'utf8');
    expect(text).not.toContain(k.secret);
    expect(text).toMatch(/^sha256:[0-9a-f]{64} live Pro file@example\.com label=from%20file created=/m);
    expect(text.startsWith('# operator keys\nbge_live_operator_written_key')).toBe(true);
    const list = (await runKeysCli(['list'], env)).stdout;
    expect(list).toContain(k.fingerprint);
    expect(list).toContain('ops@example.com');

    let s = await startServer({ KEYS_FILE: file, PLANS });
    try {
      const res = await account(s, k.secret);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { account: { email: string } }).account.email).toBe('file@example.com');
      expect((await account(s, 'bge_live_operator_written_key_000000000000')).status).toBe(200);
    } finally {
      await s.close();
    }
    expect((await runKeysCli(['revoke', k.fingerprint], env)).code).toBe(0);
    expect(await readFile(file, 'utf8')).toMatch(/ revoked=\d{4}-/);
    s = await startServer({ KEYS_FILE: file, PLANS });
    try {
      expect((await account(s, k.secret)).status).toBe(401);
    } finally {
      await s.close();
    }
  });

  it('a JSON KEYS_FILE stays a JSON array', async () => {
    const file = path.join(dir, 'keys.json');
    await writeFile(file, JSON.stringify([{ key: 'bge_live_json_operator_key_0000000000000', plan: 'Free' }]));
    const k = created((await runKeysCli(['create', '--mode', 'synthetic'], { KEYS_FILE: file })).stdout);
    const arr = JSON.parse(await readFile(file, 'utf8')) as { hash?: string; mode?: string; key?: string }[];
    expect(arr).toHaveLength(2);
    expect(arr[1]).toMatchObject({ mode: 'synthetic', hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(JSON.stringify(arr)).not.toContain(k.secret);
    expect((await runKeysCli(['revoke', k.fingerprint], { KEYS_FILE: file })).code).toBe(0);
    expect((JSON.parse(await readFile(file, 'utf8')) as { revoked_at?: string }[])[1]!.revoked_at).toMatch(/^\d{4}-/);
  });
});
