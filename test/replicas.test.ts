// test/replicas.test.ts
// Two gateway processes (src/main.ts, each on its own port) on one Redis under a unique prefix: keys made on one
// work on the other, usage adds up, and credit allowances and rate limits are shared.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runKeysCli, SECRET_RE, startGatewayProcess, type GatewayProcess } from './helpers/child.js';
import { subjectFixture, type Fixture } from './helpers/fixtures.js';
import { deletePrefix, REDIS_URL, uniquePrefix } from './store/harness.js';

const prefix = uniquePrefix('replicas');
const PLANS = JSON.stringify({ Limited: { monthlyCredits: null, rateLimit: 4, rateWindowSeconds: 60 }, Tiny: { monthlyCredits: 1, rateLimit: 100 } });
const env = { REDIS_URL, REDIS_KEY_PREFIX: prefix, PLANS, STORE_TIMEOUT_MS: '2000' };
let a: GatewayProcess;
let b: GatewayProcess;
let admin: Record<string, string>;
let fx: Fixture;

beforeAll(async () => {
  // The first admin key comes from the CLI, on the same store the replicas use.
  const made = await runKeysCli(['create', '--mode', 'admin', '--email', 'ops@example.com'], env);
  expect(made.code, made.stderr).toBe(0);
  admin = { 'x-api-key': SECRET_RE.exec(made.stdout)![0] };
  [a, b] = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)]);
  expect(a.port).not.toBe(b.port);
  fx = await subjectFixture({ width: 96, height: 72 });
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await deletePrefix(REDIS_URL, prefix);
});

async function createKey(on: GatewayProcess, body: Record<string, string>): Promise<{ h: Record<string, string>; fingerprint: string }> {
  const res = await fetch(`${on.url}/v2/admin/keys`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status).toBe(201);
  const j = (await res.json()) as { api_key: string; key: { fingerprint: string } };
  return { h: { 'x-api-key': j.api_key }, fingerprint: j.key.fingerprint };
}

const removal = (on: GatewayProcess, h: Record<string, string>, query = '') =>
  fetch(`${on.url}/v2${query}`, { method: 'POST', headers: { ...h, 'content-type': 'image/jpeg' }, body: fx.bytes });
const usage = async (on: GatewayProcess, h: Record<string, string>) =>
  ((await (await fetch(`${on.url}/v2/account`, { headers: h })).json()) as { usage: { images: number; credits: number; bytes_in: number } }).usage;

describe('two replicas on one Redis', () => {
  it('neither replica announced a first-start key (the store already had one)', () => {
    expect(a.stdout()).not.toMatch(/shown only this once/);
    expect(b.stdout()).not.toMatch(/shown only this once/);
  });

  it('a key created on A works on B; revoked on B, it fails on A', async () => {
    const k = await createKey(a, { email: 'shared@example.com' });
    const res = await fetch(`${b.url}/v2/account`, { headers: k.h });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { api_key: { fingerprint: string } }).api_key.fingerprint).toBe(k.fingerprint);
    const listed = (await (await fetch(`${b.url}/v2/admin/keys`, { headers: admin })).json()) as { keys: { fingerprint: string }[] };
    expect(listed.keys.map((x) => x.fingerprint)).toContain(k.fingerprint);
    expect((await fetch(`${b.url}/v2/admin/keys/${k.fingerprint}`, { method: 'DELETE', headers: admin })).status).toBe(200);
    expect((await fetch(`${a.url}/v2/account`, { headers: k.h })).status).toBe(401);
  });

  it('usage adds up across replicas and either one reports the total', async () => {
    const k = await createKey(b, {});
    expect((await removal(a, k.h)).status).toBe(200);
    expect((await removal(b, k.h, '?size=preview')).status).toBe(200);
    expect((await removal(a, k.h, '?size=preview')).status).toBe(200);
    for (const on of [a, b]) expect(await usage(on, k.h)).toMatchObject({ images: 3, credits: 1.5, bytes_in: 3 * fx.bytes.length });
  });

  it('a monthly allowance is shared: spent on A, refused on B', async () => {
    const k = await createKey(a, { plan: 'Tiny' });
    expect((await removal(a, k.h)).status).toBe(200);
    const refused = await removal(b, k.h, '?size=preview');
    expect(refused.status).toBe(402);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('insufficient_credits');
  });

  it('the rate limit is shared: 4 per minute across both replicas, then 429 on either', async () => {
    const k = await createKey(b, { plan: 'Limited' });
    const seen: string[] = [];
    for (const on of [a, b, a, b]) {
      const res = await fetch(`${on.url}/v2/account`, { headers: k.h });
      expect(res.status).toBe(200);
      seen.push(res.headers.get('x-ratelimit-remaining')!);
    }
    expect(seen).toEqual(['3', '2', '1', '0']);
    for (const on of [a, b]) {
      const res = await fetch(`${on.url}/v2/account`, { headers: k.h });
      expect(res.status).toBe(429);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(res.headers.get('x-ratelimit-limit')).toBe('4');
    }
    // Both replicas agree on when the window resets.
    const resets = await Promise.all([a, b].map(async (on) => Number((await fetch(`${on.url}/v2/account`, { headers: k.h })).headers.get('x-ratelimit-reset'))));
    expect(Math.abs(resets[0]! - resets[1]!)).toBeLessThanOrEqual(1);
  });
});
