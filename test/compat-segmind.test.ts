// test/compat-segmind.test.ts
// Segmind background-eraser (seed 004) over real HTTP with the real model: sync v1, the async v2 queue, every
// documented status, the one-hour expiry (memory, with a moved clock; Redis, by its TTL), two replicas on Redis,
// and the seed's Python example run through a Node port of the SDK's calls with only the host and key changed.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { adapterApp } from '../compat/mount.js';
import { segmind } from '../compat/segmind/index.js';
import { writeJobRecord } from '../src/jobs/runner.js';
import { fingerprintOf, hashKey, keyRecord } from '../src/keys.js';
import { iou, subjectFixture, type Fixture } from './helpers/fixtures.js';
import { expectDocumented, expectMatchesSpec, expectRoutesDocumented } from './helpers/openapi.js';
import { InferenceFailed, SegmindClient } from './helpers/segmind-client.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';

let s: TestServer;
let fx: Fixture;
let seedImage: Fixture;
let images: Server;
let imageUrl: string;
const KEY = { 'x-api-key': TEST_KEY, 'content-type': 'application/json' };

beforeAll(async () => {
  s = await startServer({
    URL_FETCH_ALLOW_HOSTS: '127.0.0.1',
    MAX_UPLOAD_BYTES: String(1024 * 1024),
    PLANS: JSON.stringify({ Tiny: { monthlyCredits: 1 }, Slow: { rateLimit: 2, rateWindowSeconds: 60 } }),
  });
  fx = await subjectFixture();
  seedImage = await subjectFixture({ width: 512, height: 384, format: 'png' });
  // Stands in for Segmind's S3 bucket: the seed's image URL with only the host changed.
  images = createServer((req, res) => {
    if (req.url === '/display_images/background-eraser-ip.png') {
      res.writeHead(200, { 'content-type': 'image/png' });
      res.end(seedImage.bytes);
    } else if (req.url === '/subject.jpg') {
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      res.end(fx.bytes);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
  imageUrl = `http://127.0.0.1:${(images.address() as AddressInfo).port}/subject.jpg`;
});
afterAll(async () => {
  vi.useRealTimers();
  await s?.close();
  await new Promise((r) => images?.close(r));
});

const b64 = () => Buffer.from(fx.bytes).toString('base64');
const post = (path: string, body: unknown, headers: Record<string, string> = KEY) =>
  fetch(`${s.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });

async function grey(bytes: Uint8Array): Promise<{ data: Buffer; channels: number; width: number }> {
  const meta = await sharp(bytes).metadata();
  const { data, info } = await sharp(bytes).extractChannel(meta.channels === 4 ? 3 : 0).raw().toBuffer({ resolveWithObject: true });
  return { data, channels: meta.channels ?? 0, width: info.width };
}

/** Reference grey dilation, written plainly: the max over a (2r+1)² square, rows then columns, clipped at the edges. */
function dilate(src: Uint8Array, width: number, height: number, r: number): Uint8Array {
  const rows = new Uint8Array(src.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let m = 0;
      for (let k = Math.max(0, x - r); k <= Math.min(width - 1, x + r); k++) m = Math.max(m, src[y * width + k]!);
      rows[y * width + x] = m;
    }
  }
  const out = new Uint8Array(src.length);
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      let m = 0;
      for (let k = Math.max(0, y - r); k <= Math.min(height - 1, y + r); k++) m = Math.max(m, rows[k * width + x]!);
      out[y * width + x] = m;
    }
  }
  return out;
}

/** The box of every pixel with any alpha at all. */
function box(a: Uint8Array, width: number) {
  let left = width, top = Infinity, right = -1, bottom = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === 0) continue;
    const x = i % width;
    const y = (i - x) / width;
    left = Math.min(left, x);
    right = Math.max(right, x);
    top = Math.min(top, y);
    bottom = Math.max(bottom, y);
  }
  return { left, top, right, bottom };
}

/** A Segmind error body, checked against the operation's openapi.yaml entry for that status. */
async function expectError(res: Response, status: number, code: string, operationId = 'segmindSync') {
  expect(res.status, await res.clone().text()).toBe(status);
  await expectMatchesSpec(res, operationId);
  const body = (await res.json()) as { error: string; code: string; request_id: string };
  expect(body.code).toBe(code);
  expect(body.error.length).toBeGreaterThan(5);
  expect(body.request_id).toMatch(/^req_/);
  return body;
}

async function poll(url: string, headers: Record<string, string> = KEY): Promise<Response> {
  for (let i = 0; i < 200; i++) {
    const res = await fetch(url, { headers });
    const body = (await res.clone().json()) as { status: string };
    if (body.status === 'COMPLETED' || body.status === 'FAILED') return res;
    expect(['QUEUED', 'PROCESSING']).toContain(body.status);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job at ${url} never finished`);
}

describe('sync POST /v1/background-eraser', () => {
  it('returns the mask by default (return_mask defaults to true), from a URL', async () => {
    const res = await post('/v1/background-eraser', { image: imageUrl });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    const mask = await grey(new Uint8Array(await res.arrayBuffer()));
    expect(mask.channels).toBeLessThanOrEqual(2);
    expect(iou(new Uint8Array(mask.data), fx.mask)).toBeGreaterThan(0.9);
  });

  it('return_mask=false gives the RGBA cut-out; base64=true wraps it in {"image"}', async () => {
    const res = await post('/v1/background-eraser', { image: b64(), return_mask: false, base64: true });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { image: string };
    const png = Buffer.from(body.image, 'base64');
    const { channels, data } = await grey(png);
    expect(channels).toBe(4);
    expect(iou(new Uint8Array(data), fx.mask)).toBeGreaterThan(0.9);
  });

  it('invert_mask swaps subject and background', async () => {
    const inverted = await grey(new Uint8Array(await (await post('/v1/background-eraser', { image: b64(), invert_mask: true })).arrayBuffer()));
    const inv = new Uint8Array(fx.mask.map((v) => 255 - v));
    expect(iou(new Uint8Array(inverted.data), inv)).toBeGreaterThan(0.9);
  });

  it('grow_mask is a real dilation: every pixel becomes the max of its (2n+1)² window, the subject box grows n px a side', async () => {
    const plainRes = await post('/v1/background-eraser', { image: b64(), grow_mask: 0 });
    const plain = await grey(new Uint8Array(await plainRes.arrayBuffer()));
    for (const n of [1, 20, 50]) {
      const res = await post('/v1/background-eraser', { image: b64(), grow_mask: n });
      expect(res.status).toBe(200);
      const grown = await grey(new Uint8Array(await res.arrayBuffer()));
      const expected = dilate(plain.data, plain.width, fx.height, n);
      let differ = 0;
      for (let i = 0; i < expected.length; i++) if (grown.data[i] !== expected[i]) differ++;
      expect(differ, `grow_mask ${n}: pixels that differ from a ${2 * n + 1}-px square dilation`).toBe(0);
      const before = box(plain.data, plain.width);
      const after = box(grown.data, grown.width);
      expect(after).toEqual({
        left: Math.max(0, before.left - n),
        top: Math.max(0, before.top - n),
        right: Math.min(fx.width - 1, before.right + n),
        bottom: Math.min(fx.height - 1, before.bottom + n),
      });
      const covered = (d: Buffer) => d.reduce((k, v) => k + (v >= 128 ? 1 : 0), 0);
      expect(covered(grown.data)).toBeGreaterThan(covered(plain.data));
    }
  });

  it('image as a data-URL base64 string works too', async () => {
    const res = await post('/v1/background-eraser', { image: `data:image/jpeg;base64,${b64()}` });
    expect(res.status).toBe(200);
    expect(iou(new Uint8Array((await grey(new Uint8Array(await res.arrayBuffer()))).data), fx.mask)).toBeGreaterThan(0.9);
  });

  it('a multipart image file works too', async () => {
    const fd = new FormData();
    fd.append('image', new Blob([fx.bytes], { type: 'image/jpeg' }), 'a.jpg');
    fd.append('return_mask', 'false');
    const res = await fetch(`${s.url}/v1/background-eraser`, { method: 'POST', headers: { 'x-api-key': TEST_KEY }, body: fd });
    expect(res.status).toBe(200);
    expect((await grey(new Uint8Array(await res.arrayBuffer()))).channels).toBe(4);
  });

  it('answers under /compat/segmind/ as well; other model slugs there are 404 "Model or endpoint not found"', async () => {
    const res = await post('/compat/segmind/v1/background-eraser', { image: b64() });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    await expectDocumented(res, 'segmindSync');
    const other = await expectError(await post('/compat/segmind/v1/some-other-model', { image: b64() }), 404, 'not_found');
    expect(other.error).toMatch(/Model or endpoint not found/);
  });

  it('the headers Segmind clients read: x-remaining-credits, x-rate-limit-remaining, x-rate-limit-reset-at-utc', async () => {
    const secret = 'bge_live_segmind_header_key_00000000000';
    await s.gw.stores.keys.add(keyRecord(secret, { plan: 'Tiny' }, { plan: 'Business' }));
    const res = await post('/v1/background-eraser', { image: b64() }, { 'x-api-key': secret, 'content-type': 'application/json' });
    expect(res.status).toBe(200);
    // Tiny: one credit a month, now spent; Business' 500 requests a minute, one used.
    expect(res.headers.get('x-remaining-credits')).toBe('0');
    expect(res.headers.get('x-rate-limit-remaining')).toBe('499');
    const reset = Date.parse(res.headers.get('x-rate-limit-reset-at-utc')!);
    expect(reset - Date.now()).toBeGreaterThan(0);
    expect(reset - Date.now()).toBeLessThanOrEqual(61_000);
    expect(res.headers.get('x-rate-limit-reset-at-utc')).toMatch(/Z$/);
    const submit = await post('/v2/background-eraser', { image: b64() });
    expect(submit.headers.get('x-remaining-credits')).toBe('2147483647');
    expect(submit.headers.get('x-rate-limit-remaining')).toMatch(/^\d+$/);
  });

  it('400 for grow_mask out of 0–50, a missing image, bad base64 and an oversized image (413 elsewhere)', async () => {
    for (const grow of [51, -1, 2.5, 'lots']) {
      const bad = await expectError(await post('/v1/background-eraser', { image: b64(), grow_mask: grow }), 400, 'invalid_parameter');
      expect(bad.error).toMatch(/grow_mask/);
    }
    expect((await post('/v1/background-eraser', { image: b64(), grow_mask: 50 })).status).toBe(200);
    const none = await expectError(await post('/v1/background-eraser', { return_mask: true }), 400, 'missing_image');
    expect(none.error).toMatch(/image/);
    await expectError(await post('/v1/background-eraser', { image: '###not base64###' }), 400, 'invalid_image');
    const huge = Buffer.alloc(1536 * 1024, 7).toString('base64');
    const big = await expectError(await post('/v1/background-eraser', { image: huge }), 400, 'image_too_large');
    expect(big.error).toMatch(/too large/);
    await expectError(await post('/v2/background-eraser', { image: huge }), 400, 'image_too_large', 'segmindSubmit');
  });

  it('403 for a key whose subscription is not active', async () => {
    const secret = 'bge_live_segmind_inactive_key_000000000';
    await s.gw.stores.keys.add(keyRecord(secret, { subscriptionStatus: 'canceled' }, { plan: 'Business' }));
    await expectError(await post('/v1/background-eraser', { image: b64() }, { 'x-api-key': secret, 'content-type': 'application/json' }), 403, 'subscription_inactive');
  });

  it('429 with Retry-After over the rate limit', async () => {
    const secret = 'bge_live_segmind_slow_plan_key_00000000';
    await s.gw.stores.keys.add(keyRecord(secret, { plan: 'Slow' }, { plan: 'Business' }));
    const h = { 'x-api-key': secret, 'content-type': 'application/json' };
    await expectError(await fetch(`${s.url}/v2/requests/${randomUUID()}/status`, { headers: h }), 404, 'not_found', 'segmindStatus');
    await expectError(await fetch(`${s.url}/v2/requests/${randomUUID()}/status`, { headers: h }), 404, 'not_found', 'segmindStatus');
    const res = await post('/v1/background-eraser', { image: b64() }, h);
    await expectError(res, 429, 'rate_limited');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(res.headers.get('x-rate-limit-remaining')).toBe('0');
  });

  it('502 "Service temporarily unavailable" where the gateway would say 503 (here: shutting down), with Retry-After', async () => {
    s.gw.state.shuttingDown = true;
    try {
      const sync = await post('/v1/background-eraser', { image: b64() });
      await expectError(sync, 502, 'shutting_down');
      expect(Number(sync.headers.get('retry-after'))).toBeGreaterThan(0);
      await expectError(await post('/v2/background-eraser', { image: b64() }), 502, 'shutting_down', 'segmindSubmit');
    } finally {
      s.gw.state.shuttingDown = false;
    }
  });

  it('401 without or with a wrong key', async () => {
    await expectError(await post('/v1/background-eraser', { image: b64() }, { 'content-type': 'application/json' }), 401, 'missing_api_key');
    await expectError(await post('/v1/background-eraser', { image: b64() }, { 'x-api-key': 'nope', 'content-type': 'application/json' }), 401, 'invalid_api_key');
  });

  it('406 when credits are used up, before any inference', async () => {
    const secret = 'bge_live_segmind_tiny_plan_key_000000000';
    await s.gw.stores.keys.add(keyRecord(secret, { plan: 'Tiny' }, { plan: 'Business' }));
    const h = { 'x-api-key': secret, 'content-type': 'application/json' };
    expect((await post('/v1/background-eraser', { image: b64() }, h)).status).toBe(200);
    await expectError(await post('/v1/background-eraser', { image: b64() }, h), 406, 'insufficient_credits');
    await expectError(await post('/v2/background-eraser', { image: b64() }, h), 406, 'insufficient_credits', 'segmindSubmit');
  });
});

describe('async v2 queue', () => {
  it('submit → status → result → output, the SDK flow', async () => {
    // A size not seen before, so the mask cache cannot answer and inference_time is the model's.
    const fresh = await subjectFixture({ width: 600, height: 450 });
    const res = await post('/v2/background-eraser', { image: Buffer.from(fresh.bytes).toString('base64'), return_mask: false, invert_mask: false, grow_mask: 0, base64: false });
    expect(res.status).toBe(200);
    const job = (await expectMatchesSpec(res, 'segmindSubmit')) as { request_id: string; status: string; status_url: string; response_url: string };
    expect(job.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(job.status).toBe('QUEUED');
    expect(job.status_url).toBe(`${s.url}/v2/requests/${job.request_id}/status`);
    expect(job.response_url).toBe(`${s.url}/v2/requests/${job.request_id}`);
    const status = await poll(job.status_url);
    expect(status.status).toBe(200);
    expect(((await expectMatchesSpec(status, 'segmindStatus')) as { status: string }).status).toBe('COMPLETED');
    const result = await fetch(job.response_url, { headers: KEY });
    expect(result.status).toBe(200);
    const body = (await expectMatchesSpec(result, 'segmindResult')) as { status: string; output: string; metrics: { inference_time: number; cost: number } };
    expect(body.status).toBe('COMPLETED');
    expect(body.metrics.inference_time).toBeGreaterThan(0);
    expect(body.metrics.cost).toBe(1);
    // A media URL, as Segmind's are: fetched without a key.
    const out = await fetch(body.output);
    expect(out.status).toBe(200);
    await expectDocumented(out, 'segmindOutput');
    expect(out.headers.get('content-type')).toBe('image/png');
    const { channels, data } = await grey(new Uint8Array(await out.arrayBuffer()));
    expect(channels).toBe(4);
    expect(iou(new Uint8Array(data), fresh.mask)).toBeGreaterThan(0.9);
  });

  it('base64=true puts the image itself in output', async () => {
    const job = (await (await post('/v2/background-eraser', { image: b64(), base64: true })).json()) as { response_url: string };
    const res = await poll(job.response_url);
    const body = (await res.json()) as { output: string };
    const mask = await grey(Buffer.from(body.output, 'base64'));
    expect(iou(new Uint8Array(mask.data), fx.mask)).toBeGreaterThan(0.9);
  });

  it('a job that fails is FAILED with HTTP 422 and the same body on both URLs, error kept, credits refunded', async () => {
    const secret = 'bge_live_segmind_refund_key_00000000000';
    await s.gw.stores.keys.add(keyRecord(secret, { plan: 'Tiny' }, { plan: 'Business' }));
    const h = { 'x-api-key': secret, 'content-type': 'application/json' };
    const notAnImage = Buffer.from('definitely not an image, just text bytes').toString('base64');
    const job = (await (await post('/v2/background-eraser', { image: notAnImage }, h)).json()) as { status_url: string; response_url: string };
    const status = await poll(job.status_url, h);
    expect(status.status).toBe(422);
    const statusBody = (await expectMatchesSpec(status, 'segmindStatus')) as { status: string; error: string };
    expect(statusBody.status).toBe('FAILED');
    const result = await fetch(job.response_url, { headers: h });
    expect(result.status).toBe(422);
    const body = (await expectMatchesSpec(result, 'segmindResult')) as { status: string; error: string };
    expect(body.status).toBe('FAILED');
    expect(body.error).toMatch(/image/i);
    expect(statusBody).toEqual(body);
    // The keyless output link of a failed request says so too.
    const output = await fetch(`${job.response_url}/output`);
    expect(output.status).toBe(422);
    expect(await output.json()).toEqual(body);
    // The refund leaves the single Tiny credit for a real image.
    expect((await post('/v1/background-eraser', { image: b64() }, h)).status).toBe(200);
  });

  it('an image URL that cannot be fetched fails the request (FAILED, 422), it is not lost', async () => {
    const missing = imageUrl.replace('/subject.jpg', '/nothing-here.jpg');
    const job = (await (await post('/v2/background-eraser', { image: missing })).json()) as { status_url: string };
    const res = await poll(job.status_url);
    expect(res.status).toBe(422);
    expect(((await res.json()) as { error: string }).error).toMatch(/fetch/i);
  });

  it('404 for unknown, malformed and other owners\' ids', async () => {
    await expectError(await fetch(`${s.url}/v2/requests/${randomUUID()}/status`, { headers: KEY }), 404, 'not_found', 'segmindStatus');
    await expectError(await fetch(`${s.url}/v2/requests/not-a-uuid`, { headers: KEY }), 404, 'not_found', 'segmindResult');
    await expectError(await fetch(`${s.url}/v2/requests/${randomUUID()}/output`), 404, 'not_found', 'segmindOutput');
    await expectError(await fetch(`${s.url}/v2/requests/${randomUUID()}`), 401, 'missing_api_key', 'segmindResult');
    const job = (await (await post('/v2/background-eraser', { image: b64() })).json()) as { request_id: string; status_url: string };
    await poll(job.status_url);
    const other = 'bge_live_segmind_other_owner_key_0000000';
    await s.gw.stores.keys.add(keyRecord(other, {}, { plan: 'Business' }));
    await expectError(await fetch(`${s.url}/v2/requests/${job.request_id}`, { headers: { 'x-api-key': other } }), 404, 'not_found', 'segmindResult');
    // Another dialect's job, even the same key's, is no Segmind request.
    const eyeqJob = randomUUID();
    await writeJobRecord(s.gw, { id: eyeqJob, state: 'completed', owner: fingerprintOf(hashKey(TEST_KEY)), createdAt: Date.now(), extra: { dialect: 'eyeq' } });
    await expectError(await fetch(`${s.url}/v2/requests/${eyeqJob}/status`, { headers: KEY }), 404, 'not_found', 'segmindStatus');
    await expectError(await fetch(`${s.url}/v2/requests/${eyeqJob}/output`), 404, 'not_found', 'segmindOutput');
  });

  it('a job whose replica died (lease lapsed) reads as FAILED, not PROCESSING forever', async () => {
    const id = randomUUID();
    const fingerprint = fingerprintOf(hashKey(TEST_KEY));
    await writeJobRecord(s.gw, { id, state: 'processing', owner: fingerprint, createdAt: Date.now() - 60_000, startedAt: Date.now() - 59_000, leaseUntil: Date.now() - 1000, extra: { dialect: 'segmind' } });
    const res = await fetch(`${s.url}/v2/requests/${id}/status`, { headers: KEY });
    expect(res.status).toBe(422);
    const body = (await expectMatchesSpec(res, 'segmindStatus')) as { status: string; error: string };
    expect(body.status).toBe('FAILED');
    expect(body.error).toMatch(/lost/);
  });
});

describe('results are retained for one hour, then expire (memory store, default RESULTS_TTL_SECONDS)', () => {
  it('a completed request answers until 3600 s after it finished, then 404 on status, result and output', async () => {
    expect(s.gw.config.RESULTS_TTL_SECONDS).toBe(3600);
    const job = (await (await post('/v2/background-eraser', { image: b64() })).json()) as { request_id: string; status_url: string; response_url: string };
    await poll(job.status_url);
    const output = `${job.response_url}/output`;
    // The server shares this process's clock: move it instead of waiting an hour.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 3590 * 1000);
      expect((await fetch(job.status_url, { headers: KEY })).status).toBe(200);
      expect((await fetch(job.response_url, { headers: KEY })).status).toBe(200);
      expect((await fetch(output)).status).toBe(200);
      vi.setSystemTime(Date.now() + 20 * 1000);
      const gone = await expectError(await fetch(job.status_url, { headers: KEY }), 404, 'not_found', 'segmindStatus');
      expect(gone.error).toMatch(/expired/);
      await expectError(await fetch(job.response_url, { headers: KEY }), 404, 'not_found', 'segmindResult');
      await expectError(await fetch(output), 404, 'not_found', 'segmindOutput');
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('openapi.yaml', () => {
  it('documents every Segmind route', async () => {
    const seen = await expectRoutesDocumented(adapterApp(s.gw, segmind));
    expect(seen).toEqual(expect.arrayContaining(['POST /v1/background-eraser', 'POST /v2/background-eraser', 'GET /v2/requests/{id}/status', 'GET /v2/requests/{id}', 'GET /v2/requests/{id}/output']));
  });
});

describe("the seed's Python example, through the SDK's calls in Node, with only the host and key changed", () => {
  it('segmind.run(...) (v2: submit, poll, result) prints COMPLETED, the output URL and metrics.inference_time', async () => {
    const imageHost = new URL(imageUrl).origin;
    const IMAGE = 'https://segmind-sd-models.s3.amazonaws.com/display_images/background-eraser-ip.png'.replace('https://segmind-sd-models.s3.amazonaws.com', imageHost);
    // SEGMIND_API_KEY and the default client's base URL: the two things a user changes.
    const sdk = new SegmindClient({ apiKey: TEST_KEY, baseUrl: `${s.url}/v1` });

    // result = segmind.run("background-eraser", image=…, return_mask=True, invert_mask=False, grow_mask=0, base64=False)
    const result = await sdk.runAsync('background-eraser', { image: IMAGE, return_mask: true, invert_mask: false, grow_mask: 0, base64: false });
    expect(result.status).toBe('COMPLETED'); // print(result["status"])
    const output = result.output as string; // print(result.get("output"))
    expect(output).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v2\/requests\/[0-9a-f-]{36}\/output$/);
    const metrics = result.metrics as { inference_time: number }; // print(result["metrics"]["inference_time"])
    expect(typeof metrics.inference_time).toBe('number');
    expect(metrics.inference_time).toBeGreaterThanOrEqual(0);
    // The output is the mask (return_mask=True) of the seed's image.
    const media = await fetch(output);
    expect(media.status).toBe(200);
    const mask = await grey(new Uint8Array(await media.arrayBuffer()));
    expect(mask.channels).toBeLessThanOrEqual(2);
    expect(iou(new Uint8Array(mask.data), seedImage.mask)).toBeGreaterThan(0.9);

    // client = SegmindClient(); job = client.submit_async("background-eraser", **payload)
    const payload = { image: IMAGE, return_mask: true, invert_mask: false, grow_mask: 0, base64: false };
    const job = await sdk.submitAsync('background-eraser', payload);
    expect(job.requestId).toMatch(/^[0-9a-f-]{36}$/); // print(job.request_id), available immediately
    const waited = await job.wait({ timeout: 600, interval: 1.0 });
    expect(waited.status).toBe('COMPLETED');
    expect(waited.request_id).toBe(job.requestId);

    // except InferenceFailed as e: print("failed:", e.detail)
    const broken = await sdk.submitAsync('background-eraser', { ...payload, image: `${imageHost}/display_images/missing.png` });
    const failed = await broken.wait({ timeout: 600, interval: 1.0 }).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(InferenceFailed);
    expect((failed as InferenceFailed).detail).toMatch(/fetch/i);
    expect((failed as InferenceFailed).statusBody.status).toBe('FAILED');

    // The sync v1 call (client.run) with the same payload returns the image itself.
    const sync = await sdk.run('background-eraser', payload);
    expect(sync.headers.get('content-type')).toBe('image/png');
    expect(iou(new Uint8Array((await grey(new Uint8Array(await sync.arrayBuffer()))).data), seedImage.mask)).toBeGreaterThan(0.9);

    // A client pointed at /compat/segmind/v1 keeps the prefix for v2 as well.
    const prefixed = await new SegmindClient({ apiKey: TEST_KEY, baseUrl: `${s.url}/compat/segmind/v1` }).submitAsync('background-eraser', payload);
    expect(prefixed.statusUrl).toBe(`${s.url}/compat/segmind/v2/requests/${prefixed.requestId}/status`);
    expect((await prefixed.wait({ interval: 0.2 })).status).toBe('COMPLETED');
  }, 90_000);
});

describe('two replicas on Redis', () => {
  const prefix = `bgw-test-segmind-${randomUUID().slice(0, 8)}:`;
  const env = { REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: prefix };
  let a: TestServer;
  let b: TestServer;
  let redis: Redis;

  beforeAll(async () => {
    a = await startServer(env);
    b = await startServer(env);
    redis = new Redis(env.REDIS_URL);
  }, 180_000);
  afterAll(async () => {
    await a?.close();
    await b?.close();
    if (redis) {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      await redis.quit();
    }
  });

  it('submitted on one, polled, read and downloaded on the other; Redis keeps the result one hour', async () => {
    const res = await fetch(`${a.url}/v2/background-eraser`, { method: 'POST', headers: KEY, body: JSON.stringify({ image: b64(), return_mask: false }) });
    const job = (await res.json()) as { request_id: string };
    const status = await poll(`${b.url}/v2/requests/${job.request_id}/status`);
    expect(status.status).toBe(200);
    const result = (await (await fetch(`${b.url}/v2/requests/${job.request_id}`, { headers: KEY })).json()) as { status: string; output: string };
    expect(result.status).toBe('COMPLETED');
    expect(result.output.startsWith(b.url)).toBe(true);
    const out = await fetch(result.output);
    expect(out.status).toBe(200);
    expect(iou(new Uint8Array((await grey(new Uint8Array(await out.arrayBuffer()))).data), fx.mask)).toBeGreaterThan(0.9);
    const ttl = await redis.ttl(`${prefix}result:${job.request_id}`);
    expect(ttl).toBeGreaterThan(3500);
    expect(ttl).toBeLessThanOrEqual(3600);
  }, 60_000);
});

describe('504 Timeout', () => {
  let tight: TestServer;
  beforeAll(async () => {
    // No mask cache: the sync request's inference finishes after its 504 and would otherwise make the async
    // request for the same image fast enough to beat the deadline.
    tight = await startServer({ REQUEST_TIMEOUT_MS: '150', MASK_CACHE_TTL_SECONDS: '0' });
  }, 120_000);
  afterAll(async () => {
    await tight?.close();
  });

  it('a sync removal that passes REQUEST_TIMEOUT_MS is 504; an async one ends FAILED (422) with the timeout kept', async () => {
    const slow = Buffer.from((await subjectFixture({ width: 3000, height: 2250 })).bytes).toString('base64');
    const sync = await fetch(`${tight.url}/v1/background-eraser`, { method: 'POST', headers: KEY, body: JSON.stringify({ image: slow }) });
    await expectError(sync, 504, 'timeout');
    const job = (await (await fetch(`${tight.url}/v2/background-eraser`, { method: 'POST', headers: KEY, body: JSON.stringify({ image: slow }) })).json()) as { status_url: string };
    const status = await poll(job.status_url);
    expect(status.status).toBe(422);
    expect(((await status.json()) as { detail: { code: string } }).detail.code).toBe('timeout');
  }, 60_000);
});
