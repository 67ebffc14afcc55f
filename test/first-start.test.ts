// test/first-start.test.ts
// A first start with an empty key store creates one live key and prints it once (real `src/main.ts` processes),
// with the memory store and with Redis; a restart on a non-empty store prints none.
import { afterAll, describe, expect, it } from 'vitest';
import { FINGERPRINT_RE, SECRET_RE, startGatewayProcess, type GatewayProcess } from './helpers/child.js';
import { countPrefix, deletePrefix, REDIS_URL, uniquePrefix } from './store/harness.js';

const started: GatewayProcess[] = [];
const prefix = uniquePrefix('first-start');

afterAll(async () => {
  await Promise.all(started.map((g) => g.stop()));
  await deletePrefix(REDIS_URL, prefix);
});

async function start(env: Record<string, string>) {
  const g = await startGatewayProcess(env);
  started.push(g);
  return g;
}

function announcedKey(g: GatewayProcess): { secret: string; fingerprint: string } {
  const out = g.stdout();
  const secrets = out.match(new RegExp(SECRET_RE.source, 'g')) ?? [];
  expect(secrets).toHaveLength(1); // printed exactly once
  expect(out).toMatch(/shown only this once/);
  expect(out).toMatch(/npm run keys -- create/);
  // Never in a structured log line.
  for (const line of out.split('\n').filter((l) => l.startsWith('{'))) expect(line).not.toContain(secrets[0]!);
  expect(g.stderr()).not.toContain(secrets[0]!);
  return { secret: secrets[0]!, fingerprint: FINGERPRINT_RE.exec(out)![0] };
}

async function expectUsable(g: GatewayProcess, secret: string, fingerprint: string) {
  const res = await fetch(`${g.url}/v2/account`, { headers: { 'x-api-key': secret } });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { api_key: { mode: string; fingerprint: string } };
  expect(body.api_key).toEqual({ valid: true, mode: 'live', fingerprint });
  expect((await fetch(`${g.url}/v2/account`, { headers: { 'x-api-key': `${secret}0` } })).status).toBe(401);
}

describe('first start with an empty key store', () => {
  it('memory store: one live key is created, printed once, and works', async () => {
    const g = await start({});
    const { secret, fingerprint } = announcedKey(g);
    expect(secret).toMatch(/^bge_live_/);
    await expectUsable(g, secret, fingerprint);
  });

  it('Redis store: the key is created in Redis; a restart on the same store prints no new key', async () => {
    expect(await countPrefix(REDIS_URL, prefix)).toBe(0);
    const g = await start({ REDIS_URL, REDIS_KEY_PREFIX: prefix });
    const { secret, fingerprint } = announcedKey(g);
    await expectUsable(g, secret, fingerprint);
    await g.stop();
    const again = await start({ REDIS_URL, REDIS_KEY_PREFIX: prefix });
    expect(again.stdout()).not.toMatch(SECRET_RE);
    expect(again.stdout()).not.toMatch(/shown only this once/);
    await expectUsable(again, secret, fingerprint);
  });

  it('with API_KEYS set nothing is generated', async () => {
    const g = await start({ API_KEYS: 'bge_live_seeded_key_for_first_start_test_0' });
    expect(g.stdout()).not.toMatch(/shown only this once/);
    expect((await fetch(`${g.url}/v2/account`, { headers: { 'x-api-key': 'bge_live_seeded_key_for_first_start_test_0' } })).status).toBe(200);
  });
});
