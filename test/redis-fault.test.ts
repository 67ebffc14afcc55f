// test/redis-fault.test.ts
// Redis faults against a redis-server this test owns: a frozen (SIGSTOP) or killed Redis makes /v2 answer 503
// store_unavailable within STORE_TIMEOUT_MS and health say degraded; when Redis comes back on the same port
// everything recovers by itself, without restarting the gateway.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedis, stopChild } from './helpers/child.js';
import { subjectFixture, type Fixture } from './helpers/fixtures.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';

const TIMEOUT_MS = 300;
let port: number;
let redis: ChildProcess | undefined;
let s: TestServer;
let fx: Fixture;
const KEY = { 'x-api-key': TEST_KEY };

beforeAll(async () => {
  port = await freePort();
  redis = await startRedis(port);
  s = await startServer({ REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_KEY_PREFIX: 'fault:', STORE_TIMEOUT_MS: String(TIMEOUT_MS) });
  fx = await subjectFixture({ width: 96, height: 72 });
});

afterAll(async () => {
  await s?.close();
  if (redis) {
    if (redis.exitCode === null) redis.kill('SIGCONT');
    await stopChild(redis, 'SIGKILL');
  }
});

const removal = () => fetch(`${s.url}/v2`, { method: 'POST', headers: { ...KEY, 'content-type': 'image/jpeg' }, body: fx.bytes });

async function health() {
  const res = await fetch(`${s.url}/v2/health`);
  return { status: res.status, body: (await res.json()) as { status: string; store: { kind: string; reachable: boolean } } };
}

async function expectUnavailableFast(res: () => Promise<Response>) {
  const t0 = performance.now();
  const r = await res();
  const ms = performance.now() - t0;
  const body = (await r.json()) as { error: { code: string; request_id: string } };
  expect(r.status, JSON.stringify(body)).toBe(503);
  expect(body.error.code).toBe('store_unavailable');
  expect(body.error.request_id).toMatch(/^req_/);
  expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  // Bounded by the store timeout (plus slack for a contended CI machine), never a hang.
  expect(ms).toBeLessThan(TIMEOUT_MS + 1500);
}

async function until(check: () => Promise<boolean>, ms = 20_000): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await check().catch(() => false)) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not recovered within ${ms} ms`);
}

async function expectHealthy() {
  expect(await health()).toMatchObject({ status: 200, body: { status: 'ok', store: { kind: 'redis', reachable: true } } });
  expect((await removal()).status).toBe(200);
  expect((await fetch(`${s.url}/v2/account`, { headers: KEY })).status).toBe(200);
}

describe('Redis faults', () => {
  it('works while Redis is up', async () => {
    await expectHealthy();
  });

  it('frozen Redis (SIGSTOP): 503 store_unavailable within the timeout, health degraded; SIGCONT recovers', async () => {
    redis!.kill('SIGSTOP');
    try {
      const runs = s.gw.engine.runs;
      await expectUnavailableFast(removal);
      await expectUnavailableFast(() => fetch(`${s.url}/v2/account`, { headers: KEY }));
      expect(s.gw.engine.runs).toBe(runs);
      const t0 = performance.now();
      expect(await health()).toMatchObject({ status: 503, body: { status: 'degraded', store: { kind: 'redis', reachable: false } } });
      expect(performance.now() - t0).toBeLessThan(TIMEOUT_MS + 1500);
    } finally {
      redis!.kill('SIGCONT');
    }
    await until(async () => (await health()).status === 200);
    await expectHealthy();
  });

  it('killed Redis: 503 at once; restarted on the same port (empty): recovers and re-seeds API_KEYS by itself', async () => {
    await stopChild(redis!, 'SIGKILL');
    redis = undefined;
    await expectUnavailableFast(removal);
    await expectUnavailableFast(() => fetch(`${s.url}/v2/account`, { headers: KEY }));
    expect(await health()).toMatchObject({ status: 503, body: { status: 'degraded', store: { reachable: false } } });
    // Other routes keep answering while the store is down.
    expect((await fetch(`${s.url}/metrics`)).status).toBe(200);

    redis = await startRedis(port);
    await until(async () => (await fetch(`${s.url}/v2/account`, { headers: KEY })).status === 200);
    await expectHealthy();
  });
});
