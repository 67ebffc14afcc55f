// test/compat-segmind.test.ts
// Segmind background-eraser (seed 004) over real HTTP with the real model: sync v1, the async v2 queue, errors.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeJobRecord } from '../src/jobs/runner.js';
import { fingerprintOf, hashKey, keyRecord } from '../src/keys.js';
import { iou, subjectFixture, type Fixture } from './helpers/fixtures.js';
import { expectMatchesSpec } from './helpers/openapi.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';

let s: TestServer;
let fx: Fixture;
let images: Server;
let imageUrl: string;
const KEY = { 'x-api-key': TEST_KEY, 'content-type': 'application/json' };

beforeAll(async () => {
  s = await startServer({ URL_FETCH_ALLOW_HOSTS: '127.0.0.1', PLANS: JSON.stringify({ Tiny: { monthlyCredits: 1 } }) });
  fx = await subjectFixture();
  images = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'image/jpeg' });
    res.end(fx.bytes);
  });
  await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
  imageUrl = `http://127.0.0.1:${(images.address() as AddressInfo).port}/subject.jpg`;
});
afterAll(async () => {
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

async function expectError(res: Response, status: number, code: string) {
  expect(res.status, await res.clone().text()).toBe(status);
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

  it('invert_mask swaps subject and background; grow_mask dilates', async () => {
    const plain = await grey(new Uint8Array(await (await post('/v1/background-eraser', { image: b64() })).arrayBuffer()));
    const inverted = await grey(new Uint8Array(await (await post('/v1/background-eraser', { image: b64(), invert_mask: true })).arrayBuffer()));
    const grown = await grey(new Uint8Array(await (await post('/v1/background-eraser', { image: b64(), grow_mask: 20 })).arrayBuffer()));
    const inv = new Uint8Array(fx.mask.map((v) => 255 - v));
    expect(iou(new Uint8Array(inverted.data), inv)).toBeGreaterThan(0.9);
    const covered = (d: Buffer) => d.reduce((n, v) => n + (v >= 128 ? 1 : 0), 0);
    expect(covered(grown.data)).toBeGreaterThan(covered(plain.data) * 1.05);
  });

  it('a multipart image file works too', async () => {
    const fd = new FormData();
    fd.append('image', new Blob([fx.bytes], { type: 'image/jpeg' }), 'a.jpg');
    fd.append('return_mask', 'false');
    const res = await fetch(`${s.url}/v1/background-eraser`, { method: 'POST', headers: { 'x-api-key': TEST_KEY }, body: fd });
    expect(res.status).toBe(200);
    expect((await grey(new Uint8Array(await res.arrayBuffer()))).channels).toBe(4);
  });

  it('answers under /compat/segmind/ as well', async () => {
    const res = await post('/compat/segmind/v1/background-eraser', { image: b64() });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
  });

  it('400 for grow_mask out of 0–50 and for a missing image, naming the field', async () => {
    const bad = await expectError(await post('/v1/background-eraser', { image: b64(), grow_mask: 51 }), 400, 'invalid_parameter');
    expect(bad.error).toMatch(/grow_mask/);
    const none = await expectError(await post('/v1/background-eraser', { return_mask: true }), 400, 'missing_image');
    expect(none.error).toMatch(/image/);
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
    await expectError(await post('/v2/background-eraser', { image: b64() }, h), 406, 'insufficient_credits');
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
    const out = await fetch(body.output, { headers: KEY });
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

  it('a job that fails is FAILED with HTTP 422 on both URLs, error kept, credits refunded', async () => {
    const secret = 'bge_live_segmind_refund_key_00000000000';
    await s.gw.stores.keys.add(keyRecord(secret, { plan: 'Tiny' }, { plan: 'Business' }));
    const h = { 'x-api-key': secret, 'content-type': 'application/json' };
    const notAnImage = Buffer.from('definitely not an image, just text bytes').toString('base64');
    const job = (await (await post('/v2/background-eraser', { image: notAnImage }, h)).json()) as { status_url: string; response_url: string };
    const status = await poll(job.status_url, h);
    expect(status.status).toBe(422);
    expect(((await status.json()) as { status: string; error: string }).status).toBe('FAILED');
    const result = await fetch(job.response_url, { headers: h });
    expect(result.status).toBe(422);
    const body = (await result.json()) as { status: string; error: string };
    expect(body.status).toBe('FAILED');
    expect(body.error.length).toBeGreaterThan(5);
    // The refund leaves the single Tiny credit for a real image.
    expect((await post('/v1/background-eraser', { image: b64() }, h)).status).toBe(200);
  });

  it('404 for unknown, malformed and other owners\' ids', async () => {
    await expectError(await fetch(`${s.url}/v2/requests/${randomUUID()}/status`, { headers: KEY }), 404, 'not_found');
    await expectError(await fetch(`${s.url}/v2/requests/not-a-uuid`, { headers: KEY }), 404, 'not_found');
    const job = (await (await post('/v2/background-eraser', { image: b64() })).json()) as { request_id: string; status_url: string };
    await poll(job.status_url);
    const other = 'bge_live_segmind_other_owner_key_0000000';
    await s.gw.stores.keys.add(keyRecord(other, {}, { plan: 'Business' }));
    await expectError(await fetch(`${s.url}/v2/requests/${job.request_id}`, { headers: { 'x-api-key': other } }), 404, 'not_found');
  });

  it('a job whose replica died (lease lapsed) reads as FAILED, not PROCESSING forever', async () => {
    const id = randomUUID();
    const fingerprint = fingerprintOf(hashKey(TEST_KEY));
    await writeJobRecord(s.gw, { id, state: 'processing', owner: fingerprint, createdAt: Date.now() - 60_000, startedAt: Date.now() - 59_000, leaseUntil: Date.now() - 1000, extra: {} });
    const res = await fetch(`${s.url}/v2/requests/${id}/status`, { headers: KEY });
    expect(res.status).toBe(422);
    const body = (await res.json()) as { status: string; error: string };
    expect(body.status).toBe('FAILED');
    expect(body.error).toMatch(/lost/);
  });
});
