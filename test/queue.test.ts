// test/queue.test.ts
// The bounded job queue and the inference workers: refusal when full, abort before running, the event loop stays free.
import v8 from 'node:v8';
import vm from 'node:vm';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../src/errors.js';
import { JobQueue } from '../src/queue.js';
import { subjectFixture } from './helpers/fixtures.js';
import { form, imageBlob, startServer, TEST_KEY, type TestServer } from './helpers/server.js';

const deferred = () => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
};

describe('JobQueue', () => {
  it('refuses at once with overloaded + Retry-After when the waiting line is full', async () => {
    const q = new JobQueue({ concurrency: 1, maxWaiting: 1, retryAfterSeconds: 7 });
    const gate = deferred();
    const running = q.run(() => gate.promise);
    const waiting = q.run(async () => 'second');
    const refused = await q.run(async () => 'third').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(GatewayError);
    expect((refused as GatewayError).code).toBe('overloaded');
    expect((refused as GatewayError).status).toBe(503);
    expect((refused as GatewayError).retryAfter).toBe(7);
    gate.resolve();
    await running;
    expect(await waiting).toBe('second');
  });

  it('serves lanes (models) in turn: a burst for one model does not hold back another', async () => {
    const q = new JobQueue({ concurrency: 1, maxWaiting: 20, retryAfterSeconds: 1 });
    const gate = deferred();
    const order: string[] = [];
    const job = (name: string) => async () => {
      order.push(name);
    };
    const first = q.run(() => gate.promise, undefined, 'isnet');
    const all = [
      ...['a1', 'a2', 'a3', 'a4', 'a5'].map((n) => q.run(job(n), undefined, 'isnet')),
      ...['b1', 'b2'].map((n) => q.run(job(n), undefined, 'u2netp')),
    ];
    gate.resolve();
    await Promise.all([first, ...all]);
    // isnet has had its turn (the running job), so u2netp's first job goes next, then they alternate.
    expect(order).toEqual(['b1', 'a1', 'b2', 'a2', 'a3', 'a4', 'a5']);

    // A lane that was idle joins at the current turn, not behind everything queued earlier; FIFO within a lane.
    const gate2 = deferred();
    order.length = 0;
    const busy = q.run(() => gate2.promise, undefined, 'isnet');
    const later = ['c1', 'c2', 'c3'].map((n) => q.run(job(n), undefined, 'isnet'));
    const newcomer = q.run(job('d1'), undefined, 'u2net');
    gate2.resolve();
    await Promise.all([busy, ...later, newcomer]);
    expect(order).toEqual(['d1', 'c1', 'c2', 'c3']);

    // Once the queue has emptied, the turns taken before do not count: the lane that had more gets no penalty.
    const gate3 = deferred();
    order.length = 0;
    const u2netFirst = q.run(() => gate3.promise, undefined, 'u2net');
    const isnetNext = q.run(job('e1'), undefined, 'isnet');
    const u2netNext = q.run(job('f1'), undefined, 'u2net');
    gate3.resolve();
    await Promise.all([u2netFirst, isnetNext, u2netNext]);
    expect(order).toEqual(['e1', 'f1']);
  });

  it('lets go of a finished job’s result while others still wait (p-queue’s own queue kept up to 100)', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const q = new JobQueue({ concurrency: 1, maxWaiting: 20, retryAfterSeconds: 1 });
    const gates = [deferred(), deferred()];
    let result: WeakRef<object> | undefined;
    // The tracked job must start while others wait behind it, as under steady load.
    const running = q.run(() => gates[0]!.promise);
    const tracked = q.run(async () => {
      const big = { bytes: new Uint8Array(1 << 20) };
      result = new WeakRef(big);
      return big;
    }).then(() => undefined);
    const next = q.run(() => gates[1]!.promise);
    const line = Array.from({ length: 4 }, () => q.run(async () => undefined));
    gates[0]!.resolve();
    await tracked;
    expect(q.running).toBe(1);
    expect(q.waiting).toBe(4);
    await new Promise((r) => setImmediate(r));
    gc();
    await new Promise((r) => setImmediate(r));
    gc();
    expect(result!.deref()).toBeUndefined();
    gates[1]!.resolve();
    await Promise.all([running, next, ...line]);
  });

  it('drops a waiting job whose caller aborted, without running it', async () => {
    const q = new JobQueue({ concurrency: 1, maxWaiting: 5, retryAfterSeconds: 1 });
    const gate = deferred();
    const running = q.run(() => gate.promise);
    const controller = new AbortController();
    let ran = false;
    const dropped = q.run(async () => {
      ran = true;
    }, controller.signal);
    controller.abort();
    await expect(dropped).rejects.toThrow();
    gate.resolve();
    await running;
    await q.drain();
    expect(ran).toBe(false);
  });

  it('refuses new work once draining for shutdown', async () => {
    const q = new JobQueue({ concurrency: 1, maxWaiting: 5, retryAfterSeconds: 1 });
    await q.drain();
    await expect(q.run(async () => 1)).rejects.toMatchObject({ code: 'shutting_down' });
  });
});

describe('inference off the main thread', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ QUEUE_CONCURRENCY: '1', QUEUE_MAX_WAITING: '0' });
  });
  afterAll(async () => s?.close());

  it('health answers in < 100 ms while a removal is running', async () => {
    const fx = await subjectFixture({ width: 1600, height: 1200 });
    const removal = fetch(`${s.url}/v2`, { method: 'POST', headers: { 'x-api-key': TEST_KEY }, body: form({ image_file: imageBlob(fx.bytes) }) });
    const before = s.gw.engine.runs;
    // Wait until the job is really inside the pipeline.
    while (s.gw.queue.running === 0) await new Promise((r) => setTimeout(r, 5));
    const latencies: number[] = [];
    let sawInference = false;
    while (s.gw.queue.running > 0) {
      const t = performance.now();
      const res = await fetch(`${s.url}/health`);
      latencies.push(performance.now() - t);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { models: { busy: number }[] };
      if (body.models[0]!.busy > 0) sawInference = true;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await removal).status).toBe(200);
    expect(s.gw.engine.runs - before).toBe(1);
    expect(sawInference).toBe(true);
    expect(latencies.length).toBeGreaterThan(3);
    expect(Math.max(...latencies)).toBeLessThan(100);
  });

  it('a full queue answers 503 overloaded with Retry-After over HTTP', async () => {
    const fx = await subjectFixture();
    const other = await sharp(fx.bytes).flop().jpeg().toBuffer();
    const first = fetch(`${s.url}/v2`, { method: 'POST', headers: { 'x-api-key': TEST_KEY }, body: form({ image_file: imageBlob(other) }) });
    while (s.gw.queue.running === 0) await new Promise((r) => setTimeout(r, 5));
    const refused = await fetch(`${s.url}/v2`, { method: 'POST', headers: { 'x-api-key': TEST_KEY }, body: form({ image_file: imageBlob(fx.bytes) }) });
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const body = (await refused.json()) as { error: { code: string; request_id: string } };
    expect(body.error.code).toBe('overloaded');
    expect(body.error.request_id).toBe(refused.headers.get('x-request-id'));
    expect((await first).status).toBe(200);
  });

  it('a client that disconnects while waiting costs no inference', async () => {
    const wide = await startServer({ QUEUE_CONCURRENCY: '1', QUEUE_MAX_WAITING: '4' });
    try {
      const fx = await subjectFixture({ width: 1200, height: 900 });
      const a = await sharp(fx.bytes).flip().jpeg().toBuffer();
      const before = wide.gw.engine.runs;
      const first = fetch(`${wide.url}/v2`, { method: 'POST', headers: { 'x-api-key': TEST_KEY }, body: form({ image_file: imageBlob(a) }) });
      while (wide.gw.queue.running === 0) await new Promise((r) => setTimeout(r, 5));
      const controller = new AbortController();
      const gone = fetch(`${wide.url}/v2`, { method: 'POST', headers: { 'x-api-key': TEST_KEY }, body: form({ image_file: imageBlob(fx.bytes) }), signal: controller.signal });
      while (wide.gw.queue.waiting === 0) await new Promise((r) => setTimeout(r, 5));
      controller.abort();
      await gone.catch(() => undefined);
      expect((await first).status).toBe(200);
      await wide.gw.queue.drain();
      expect(wide.gw.engine.runs - before).toBe(1);
    } finally {
      await wide.close();
    }
  });
});
