// test/jobs-lease.test.ts
// The shared async-job runner across real processes on Redis: a replica that is killed mid-job (SIGKILL, no
// goodbye) leaves its jobs "processing"; once JOB_LEASE_SECONDS pass without renewal every other replica reports
// them failed with the error kept, through each dialect (Segmind, EyeQ, the effects tool's SSE stream). A live
// replica renews its leases, so a job that outlasts the lease and RESULTS_TTL_SECONDS several times still
// completes, and only then starts its RESULTS_TTL_SECONDS.
import { randomUUID } from 'node:crypto';
import { EventSource } from 'eventsource';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayProcess, stopChild, type GatewayProcess } from './helpers/child.js';
import { cameraPhoto } from '../bench/photo.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';

const LEASE_SECONDS = 2;
const prefix = `bgw-test-lease-${randomUUID().slice(0, 8)}:`;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const env = { REDIS_URL, REDIS_KEY_PREFIX: prefix, API_KEYS: TEST_KEY, JOB_LEASE_SECONDS: String(LEASE_SECONDS) };
const KEY = { 'x-api-key': TEST_KEY };

let doomed: GatewayProcess;
let survivor: TestServer;
/** Distinct pictures: answers are cached by image in the shared store, and a cached answer would end a job at once. */
let bigs: Uint8Array[];

beforeAll(async () => {
  // The survivor's own jobs: renewed every 2 s, far longer than their 1 s results TTL. The lease is the writer's:
  // the doomed replica's jobs carry its 2 s lease whoever reads them.
  // The survivor encodes with the slowest PNG settings (zlib 9 + adaptive filters, ≈ 10 s at 17 MP), so its jobs
  // outlast several lease renewals and results TTLs however fast decoding and inference get.
  [doomed, survivor] = await Promise.all([
    startGatewayProcess(env),
    startServer({ ...env, QUEUE_CONCURRENCY: '1', JOB_LEASE_SECONDS: '6', RESULTS_TTL_SECONDS: '1', PNG_COMPRESSION_LEVEL: '9', PNG_ADAPTIVE_FILTERING: 'true' }),
  ]);
  // Large enough that decoding, inference and encoding take several lease periods on one core.
  // Camera-like noise, so the PNG encode really works: a flat synthetic picture compresses in no time at any level.
  bigs = await Promise.all([[4800, 3600], [4700, 3500], [4600, 3450]].map(([width, height], seed) => cameraPhoto(width!, height!, seed + 1)));
}, 180_000);
afterAll(async () => {
  if (doomed) await stopChild(doomed.child, 'SIGKILL');
  await survivor?.close();
  const redis = new Redis(REDIS_URL);
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
});

async function segmindSubmit(base: string, image: Uint8Array): Promise<string> {
  const res = await fetch(`${base}/v2/background-eraser`, { method: 'POST', headers: { ...KEY, 'content-type': 'application/json' }, body: JSON.stringify({ image: Buffer.from(image).toString('base64'), return_mask: false }) });
  expect(res.status, await res.clone().text()).toBe(200);
  return ((await res.json()) as { request_id: string }).request_id;
}

async function segmindStatus(base: string, id: string): Promise<{ http: number; status: string; error?: string }> {
  const res = await fetch(`${base}/v2/requests/${id}/status`, { headers: KEY });
  const body = (await res.json()) as { status: string; error?: string };
  return { http: res.status, ...body };
}

describe('a live replica renews its leases', () => {
  it('jobs that wait and run for longer than the lease and the results TTL stay readable, complete, then expire', async () => {
    const started = Date.now();
    const first = await segmindSubmit(survivor.url, bigs[0]!);
    const second = await segmindSubmit(survivor.url, bigs[1]!);
    const seen = new Set<string>();
    const finished = new Map<string, number>();
    for (let i = 0; i < 600 && finished.size < 2; i++) {
      for (const id of [first, second]) {
        if (finished.has(id)) continue;
        const st = await segmindStatus(survivor.url, id);
        expect(st.http, `${id} is readable while it is ${[...seen].at(-1)}`).not.toBe(404);
        seen.add(st.status);
        if (st.status === 'COMPLETED') finished.set(id, Date.now());
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(seen.has('FAILED')).toBe(false);
    expect([...seen]).toEqual(expect.arrayContaining(['QUEUED', 'PROCESSING', 'COMPLETED']));
    // The point of the test: the second job lived through several renewal periods and results TTLs.
    expect(finished.get(second)! - started).toBeGreaterThan(6_000);
    // Finished, a job keeps RESULTS_TTL_SECONDS (1 s here) and no longer.
    await new Promise((r) => setTimeout(r, 2500));
    expect((await segmindStatus(survivor.url, second)).http).toBe(404);
  }, 120_000);
});

describe('a replica killed mid-job', () => {
  it('its running and queued jobs read as processing until the lease lapses, then failed, on the replica that lives', async () => {
    const big = bigs[2]!;
    const running = await segmindSubmit(doomed.url, big);
    const queued = await segmindSubmit(doomed.url, big);
    // An EyeQ job and an effects job behind them, on the same dead replica.
    const fd = new FormData();
    fd.append('file', new Blob([big], { type: 'image/jpeg' }), 'photo.jpg');
    const eyeqRes = await fetch(`${doomed.url}/SubmitImage`, { method: 'POST', headers: KEY, body: fd });
    const eyeqId = ((await eyeqRes.json()) as { process_id: string }).process_id;
    const fx = new FormData();
    fx.append('file', new Blob([big], { type: 'image/jpeg' }), 'photo.jpg');
    const effectsRes = await fetch(`${doomed.url}/api/v1/tools/remove-background`, { method: 'POST', headers: KEY, body: fx });
    expect(effectsRes.status).toBe(202);
    const effectsId = ((await effectsRes.json()) as { jobId: string }).jobId;

    for (let i = 0; i < 300 && (await segmindStatus(survivor.url, running)).status !== 'PROCESSING'; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await segmindStatus(survivor.url, running)).status).toBe('PROCESSING');
    await stopChild(doomed.child, 'SIGKILL');
    const killedAt = Date.now();

    // Right after the kill the lease still holds: the survivor cannot yet tell a dead replica from a slow one.
    expect((await segmindStatus(survivor.url, running)).status).toBe('PROCESSING');
    expect((await segmindStatus(survivor.url, queued)).status).toBe('QUEUED');

    // The effects tool's progress stream, read on the survivor, ends in a failed event.
    const stream = new Promise<Record<string, unknown>[]>((resolve, reject) => {
      const events: Record<string, unknown>[] = [];
      const es = new EventSource(`${survivor.url}/api/v1/jobs/${effectsId}/progress`);
      const timer = setTimeout(() => {
        es.close();
        reject(new Error(`no final event: ${JSON.stringify(events)}`));
      }, 30_000);
      es.addEventListener('progress', (e) => {
        const data = JSON.parse(e.data) as Record<string, unknown>;
        events.push(data);
        if (data.phase === 'complete' || data.phase === 'failed') {
          clearTimeout(timer);
          es.close();
          resolve(events);
        }
      });
    });

    // Each job's lease lapses on its own schedule (renewals are not in step): poll each until it reads failed.
    const untilFailed = async (id: string, before: string) => {
      for (let i = 0; i < 100; i++) {
        const st = await segmindStatus(survivor.url, id);
        if (st.status === 'FAILED') return st;
        expect(st.status).toBe(before);
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`job ${id} still not failed`);
    };
    const failed = await untilFailed(running, 'PROCESSING');
    expect(failed.http).toBe(422);
    expect(failed.error).toMatch(/lost/);
    const lostQueued = await untilFailed(queued, 'QUEUED');
    expect(lostQueued.http).toBe(422);
    expect(lostQueued.error).toMatch(/lost/);
    // Lapsed leases are noticed within the lease plus a renewal period, not after some long sweep.
    expect(Date.now() - killedAt).toBeLessThan((LEASE_SECONDS + 3) * 1000);

    let check = { status: 'queued', error: '' };
    for (let i = 0; i < 100 && check.status !== 'failed'; i++) {
      if (i) await new Promise((r) => setTimeout(r, 100));
      check = (await (await fetch(`${survivor.url}/CheckImage/${eyeqId}`, { headers: KEY })).json()) as { status: string; error: string };
      expect(['queued', 'failed']).toContain(check.status);
    }
    expect(check.status).toBe('failed');
    expect(check.error).toMatch(/lost/);
    const events = await stream;
    expect(events.at(-1)).toMatchObject({ phase: 'failed' });
    expect(String(events.at(-1)!.error)).toMatch(/lost/);
  }, 120_000);
});
