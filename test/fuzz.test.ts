// test/fuzz.test.ts
// Bounded fuzzing over real HTTP: mutated JPEG/PNG/WebP files and random multipart, JSON, url-encoded and raw
// bodies, sent to every removal route of every dialect. Never a 5xx outside the documented ones, never a crash,
// and memory back near where it started. FUZZ_RUNS=N (default 60) scales the run for a longer soak.
import fc from 'fast-check';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backgroundErase } from '../compat/backgrounderase/index.js';
import { VENDOR_ADAPTERS } from '../compat/index.js';
import { subjectFixture } from './helpers/fixtures.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
/** 503/504 are documented answers to overload and deadlines (502 in Segmind's dialect); nothing else may be a 5xx. */
const DOCUMENTED_5XX = new Set([502, 503, 504]);

let server: TestServer;
let seeds: Buffer[] = [];
const routes = [...[backgroundErase, ...VENDOR_ADAPTERS].flatMap((a) => a.routes.filter((r) => r.method === 'POST').map((r) => r.path))];
const keyHeaders = { 'x-api-key': TEST_KEY, 'api-key': TEST_KEY, 'x-picsart-api-key': TEST_KEY };

beforeAll(async () => {
  server = await startServer({ QUEUE_MAX_WAITING: '64', MAX_UPLOAD_BYTES: String(4 * 1024 * 1024) });
  const fx = await subjectFixture({ width: 96, height: 72 });
  const img = sharp(fx.bytes);
  seeds = [fx.bytes, await img.clone().png().toBuffer(), await img.clone().webp().toBuffer()];
});

afterAll(async () => {
  await server?.close();
});

function mutate(bytes: Buffer, edits: { at: number; value: number }[], cut: number): Buffer {
  const out = Buffer.from(bytes.subarray(0, Math.max(1, Math.floor(bytes.length * cut))));
  for (const { at, value } of edits) out[Math.floor(at * out.length) % out.length] = value;
  return out;
}

const fieldName = fc.constantFrom('image_file', 'image_url', 'image_base64', 'image_file_b64', 'image', 'format', 'size', 'channels', 'crop', 'bg_color', 'despill', 'type', 'crop_margin', 'x');
const fieldValue = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('png', 'jpg', 'webp', 'zip', 'alpha', 'rgba', 'full', 'preview', 'true', '0', '#fff', 'red', '12px', '', 'http://127.0.0.1:1/x.jpg', 'data:image/png;base64,AAAA'),
);
const mutatedImage = fc.record({
  seed: fc.nat({ max: 2 }),
  // Light damage (a few bytes, often past the header) keeps many files decodable, so the decoder's error paths
  // and the full pipeline both get exercised; heavy truncation covers the rest.
  edits: fc.array(fc.record({ at: fc.double({ min: 0, max: 1, noNaN: true }), value: fc.nat({ max: 255 }) }), { maxLength: 4 }),
  cut: fc.oneof(fc.constant(1), fc.constant(1), fc.double({ min: 0.02, max: 1, noNaN: true })),
});

type Body = { headers: Record<string, string>; body: NonNullable<RequestInit["body"]> };

const multipart = fc.record({ image: fc.option(mutatedImage, { nil: undefined }), fields: fc.array(fc.tuple(fieldName, fieldValue), { maxLength: 8 }) }).map(({ image, fields }): Body => {
  const fd = new FormData();
  for (const [k, v] of fields) fd.append(k, v);
  if (image) fd.append('image_file', new Blob([mutate(seeds[image.seed]!, image.edits, image.cut)]), 'x.bin');
  return { headers: {}, body: fd };
});
const json = fc.oneof(fc.json(), fc.dictionary(fieldName, fc.oneof(fieldValue, fc.integer(), fc.boolean(), fc.constant(null)))).map((v): Body => ({
  headers: { 'content-type': 'application/json' },
  body: typeof v === 'string' ? v : JSON.stringify(v),
}));
const urlencoded = fc.array(fc.tuple(fieldName, fieldValue), { maxLength: 8 }).map((pairs): Body => ({
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(pairs).toString(),
}));
const raw = fc.tuple(mutatedImage, fc.constantFrom('image/jpeg', 'application/octet-stream', 'image/png', 'text/plain')).map(([image, type]): Body => ({
  headers: { 'content-type': type },
  body: mutate(seeds[image.seed]!, image.edits, image.cut),
}));
const garbage = fc.tuple(fc.uint8Array({ maxLength: 2048 }), fc.constantFrom('multipart/form-data; boundary=zz', 'multipart/form-data', 'application/json', 'application/x-www-form-urlencoded; charset=latin1')).map(([bytes, type]): Body => ({
  headers: { 'content-type': type },
  body: Buffer.from(bytes),
}));

describe('fuzz', () => {
  it(`${RUNS} random requests per body kind across ${routes.length} routes: no undocumented 5xx, no crash, memory settles`, async () => {
    const warm = await fetch(`${server.url}/v2`, { method: 'POST', headers: { ...keyHeaders, 'content-type': 'image/jpeg' }, body: seeds[0] });
    expect(warm.status).toBe(200);
    await warm.arrayBuffer();
    const rssStart = process.memoryUsage().rss;
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), fc.oneof(multipart, json, urlencoded, raw, garbage), async (route, { headers, body }) => {
        const res = await fetch(`${server.url}${route}`, { method: 'POST', headers: { ...keyHeaders, ...headers }, body, signal: AbortSignal.timeout(30_000) });
        const text = await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status >= 500 && !DOCUMENTED_5XX.has(res.status)) throw new Error(`${route} answered ${res.status}: ${Buffer.from(text).toString().slice(0, 300)}`);
        expect(res.headers.get('x-request-id')).toBeTruthy();
      }),
      { numRuns: RUNS * 5, interruptAfterTimeLimit: 120_000, markInterruptAsFailure: false },
    );
    const health = await fetch(`${server.url}/v2/health`);
    expect(health.status).toBe(200);
    const rssEnd = process.memoryUsage().rss;
    console.log(`fuzz statuses ${JSON.stringify(Object.fromEntries(statuses))}; rss ${(rssStart / 2 ** 20).toFixed(0)} → ${(rssEnd / 2 ** 20).toFixed(0)} MiB`);
    expect([...statuses.keys()].some((s) => s === 200)).toBe(true);
    expect(rssEnd - rssStart).toBeLessThan(300 * 2 ** 20);
  }, 180_000);
});
