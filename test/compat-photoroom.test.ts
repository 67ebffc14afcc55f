// test/compat-photoroom.test.ts
// Photoroom's POST /v1/segment and account endpoints (compat-apis §2) over real HTTP with the real model.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyRecord } from '../src/keys.js';
import { maskUncertainty } from '../src/pipeline/uncertainty.js';
import { alphaOf, decodeRgba, iou, subjectFixture, type Fixture } from './helpers/fixtures.js';
import { expectDocumented, expectMatchesSpec } from './helpers/openapi.js';
import { rawMultipart } from './helpers/raw-http.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';

const run = promisify(execFile);
let s: TestServer;
let fx: Fixture;
let dir: string;
const TINY = 'bge_live_photoroom_tiny_plan_key_0000000';
const SLOW = 'bge_live_photoroom_slow_plan_key_0000000';

beforeAll(async () => {
  s = await startServer({
    MAX_UPLOAD_BYTES: String(2 * 1024 * 1024),
    PLANS: JSON.stringify({ Tiny: { monthlyCredits: 1 }, Slow: { rateLimit: 2, rateWindowSeconds: 60 } }),
  });
  await s.gw.stores.keys.add(keyRecord(TINY, { plan: 'Tiny' }, { plan: 'Business' }));
  await s.gw.stores.keys.add(keyRecord(SLOW, { plan: 'Slow' }, { plan: 'Business' }));
  fx = await subjectFixture({ width: 320, height: 240 });
  dir = await mkdtemp(path.join(tmpdir(), 'photoroom-'));
}, 120_000);
afterAll(async () => {
  await s?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function segment(fields: Record<string, string | Blob>, headers: Record<string, string> = { 'x-api-key': TEST_KEY }, route = '/v1/segment') {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (v instanceof Blob) fd.append(k, v, 'photo.jpg');
    else fd.append(k, v);
  }
  return fetch(`${s.url}${route}`, { method: 'POST', headers, body: fd });
}
const image = () => new Blob([fx.bytes], { type: 'image/jpeg' });

async function expectPhotoroomError(res: Response, status: number, type: string) {
  expect(res.status, await res.clone().text()).toBe(status);
  expect(res.headers.get('content-type')).toBe('application/json');
  expect(res.headers.get('x-request-id')).toMatch(/^req_/);
  const body = (await expectMatchesSpec(res, 'photoroomSegment')) as { detail: string; status_code: number; type: string };
  expect(Object.keys(body).sort()).toEqual(['detail', 'status_code', 'type']);
  expect(body.status_code).toBe(status);
  expect(body.type).toBe(type);
  expect(body.detail.length).toBeGreaterThan(5);
  return body;
}

/** Fully opaque inside the subject, fully transparent in the corners. */
function expectCutout(alpha: Uint8Array, width: number, truth: Uint8Array) {
  expect(iou(alpha, truth)).toBeGreaterThan(0.9);
  expect(alpha[0]).toBe(0);
  expect(alpha[width - 1]).toBe(0);
}

describe('POST /v1/segment', () => {
  it("the docs' curl example (Accept: image/png, application/json; Content-Type: multipart/form-data) returns the PNG cut-out", async () => {
    const input = path.join(dir, 'image.jpg');
    const output = path.join(dir, 'result.png');
    await writeFile(input, fx.bytes);
    const { stdout } = await run('curl', [
      '--silent', '--request', 'POST', '--url', `${s.url}/v1/segment`,
      '--header', 'Accept: image/png, application/json',
      '--header', 'Content-Type: multipart/form-data',
      '--header', `x-api-key: ${TEST_KEY}`,
      '--form', `image_file=@${input}`,
      '--output', output, '--dump-header', '-',
    ]);
    expect(stdout).toMatch(/^HTTP\/1\.1 200/);
    expect(stdout).toMatch(/\r\ncontent-type: image\/png\r\n/i);
    const score = Number(/\r\nx-uncertainty-score: ([^\r]+)\r\n/i.exec(stdout)?.[1]);
    expect(score).toBeGreaterThanOrEqual(0);
    expect(score).toBeLessThan(0.2);
    const out = await decodeRgba(await readFile(output));
    expect(out.format).toBe('png');
    expect(out.channels).toBe(4);
    expect([out.width, out.height]).toEqual([320, 240]); // size defaults to full
    expectCutout(alphaOf(out.data), out.width, fx.mask);
  }, 60_000);

  it("Photoroom's Node sample: chunked body, no User-Agent, X-API-Key casing; Content-Type is exactly image/png", async () => {
    const res = await rawMultipart(s.url, '/v1/segment', { 'X-API-Key': TEST_KEY }, [
      { name: 'image_file', filename: 'photo.jpg', contentType: 'image/jpeg', bytes: fx.bytes },
    ]);
    expect(res.status, res.body.toString().slice(0, 200)).toBe(200);
    expect(['image/jpeg', 'image/png', 'image/gif']).toContain(res.headers['content-type']);
    expect(res.headers['content-type']).toBe('image/png');
    expect(Number(res.headers['content-length'])).toBe(res.body.byteLength);
    expect(res.headers['x-request-id']).toMatch(/^req_/);
    expect(Number(res.headers['x-ratelimit-limit'])).toBeGreaterThan(0);
    const out = await decodeRgba(res.body);
    expectCutout(alphaOf(out.data), out.width, fx.mask);
  }, 60_000);

  it('any field order; empty-string fields mean unset', async () => {
    const res = await rawMultipart(s.url, '/v1/segment', { 'x-api-key': TEST_KEY }, [
      { name: 'format', value: '' },
      { name: 'size', value: '' },
      { name: 'image_file', filename: 'p.jpg', contentType: 'image/jpeg', bytes: fx.bytes },
      { name: 'bg_color', value: '' },
      { name: 'crop', value: '' },
      { name: 'channels', value: '' },
    ]);
    expect(res.status, res.body.toString().slice(0, 200)).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    const out = await decodeRgba(res.body);
    expect([out.width, out.height, out.channels]).toEqual([320, 240, 4]);
  }, 60_000);

  it('format=jpg gives an opaque JPEG on white; format=webp keeps alpha', async () => {
    const jpg = await segment({ format: 'jpg', image_file: image() });
    expect(jpg.status).toBe(200);
    expect(jpg.headers.get('content-type')).toBe('image/jpeg');
    const j = await decodeRgba(new Uint8Array(await jpg.arrayBuffer()));
    expect(j.format).toBe('jpeg');
    expect(j.channels).toBe(3);
    expect(j.data[0]).toBeGreaterThan(245); // the corner is white
    const webp = await segment({ image_file: image(), format: 'webp' });
    expect(webp.headers.get('content-type')).toBe('image/webp');
    const w = await decodeRgba(new Uint8Array(await webp.arrayBuffer()));
    expect(w.format).toBe('webp');
    expectCutout(alphaOf(w.data), w.width, fx.mask);
  }, 60_000);

  it('channels=alpha returns the grey matte', async () => {
    const res = await segment({ image_file: image(), channels: 'alpha' });
    expect(res.headers.get('content-type')).toBe('image/png');
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect((await sharp(bytes).metadata()).channels).toBe(1);
    const grey = await sharp(bytes).extractChannel(0).raw().toBuffer();
    expect(iou(new Uint8Array(grey), fx.mask)).toBeGreaterThan(0.9);
  }, 60_000);

  it('bg_color as hex and as an HTML colour name fills the background', async () => {
    for (const [value, rgb] of [['#FF00FF', [255, 0, 255]], ['red', [255, 0, 0]]] as const) {
      const res = await segment({ image_file: image(), bg_color: value });
      expect(res.status).toBe(200);
      const out = await decodeRgba(new Uint8Array(await res.arrayBuffer()));
      expect([...out.data.subarray(0, 4)]).toEqual([...rgb, 255]);
    }
  }, 60_000);

  it('size=preview fits in 0.25 MP; crop=true crops to the cut-out; despill=true is accepted', async () => {
    const big = await subjectFixture({ width: 800, height: 600 });
    const prev = await segment({ image_file: new Blob([big.bytes], { type: 'image/jpeg' }), size: 'preview' });
    const p = await decodeRgba(new Uint8Array(await prev.arrayBuffer()));
    expect(p.width * p.height).toBeLessThanOrEqual(250_000);
    expect(p.width * p.height).toBeGreaterThan(200_000);
    expect(p.width / p.height).toBeCloseTo(4 / 3, 1);
    const crop = await segment({ image_file: image(), crop: 'true', despill: 'true' });
    expect(crop.status).toBe(200);
    const c = await decodeRgba(new Uint8Array(await crop.arrayBuffer()));
    // The figure spans 32 % of the width and ~82 % of the height of the fixture.
    expect(c.width).toBeLessThan(320 * 0.5);
    expect(c.width).toBeGreaterThan(320 * 0.25);
    expect(c.height).toBeLessThan(240);
  }, 90_000);

  it('size=medium caps at 1.5 MP and size=hd at 4 MP, keeping the aspect; neither upscales', async () => {
    const large = await subjectFixture({ width: 1600, height: 1200 });
    const dims = async (size: string) => {
      const res = await segment({ image_file: new Blob([large.bytes], { type: 'image/jpeg' }), size, format: 'jpg' });
      expect(res.status, await res.clone().text()).toBe(200);
      const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
      return [meta.width!, meta.height!] as const;
    };
    const [mw, mh] = await dims('medium');
    expect(mw * mh).toBeLessThanOrEqual(1_500_000);
    expect(mw * mh).toBeGreaterThan(1_450_000);
    expect(mw / mh).toBeCloseTo(4 / 3, 2);
    expect(await dims('hd')).toEqual([1600, 1200]);
    expect(await dims('full')).toEqual([1600, 1200]);
  }, 60_000);

  it('despill=true takes the green screen out of the soft edges; without it they keep the spill', async () => {
    // A warm-grey figure with blurred (soft) edges on a green screen: its edge pixels mix in the green.
    const svg =
      '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240"><defs><filter id="b"><feGaussianBlur stdDeviation="2.5"/></filter></defs>' +
      '<rect width="320" height="240" fill="#00c800"/><g filter="url(#b)" fill="#d0c8c0"><circle cx="160" cy="72" r="31"/><rect x="109" y="108" width="102" height="120" rx="16"/></g></svg>';
    const screen = new Blob([await sharp(Buffer.from(svg)).png().toBuffer()], { type: 'image/png' });
    /** Mean of G − R over the soft edge (40 ≤ α ≤ 230): the figure's own colour has G − R = −8. */
    const edgeGreen = async (despill: string) => {
      const res = await segment({ image_file: screen, despill });
      expect(res.status, await res.clone().text()).toBe(200);
      const out = await decodeRgba(new Uint8Array(await res.arrayBuffer()));
      let sum = 0, n = 0;
      for (let i = 0; i < out.data.length; i += 4) {
        const a = out.data[i + 3]!;
        if (a < 40 || a > 230) continue;
        sum += out.data[i + 1]! - out.data[i]!;
        n++;
      }
      expect(n).toBeGreaterThan(300);
      return sum / n;
    };
    expect(await edgeGreen('false')).toBeGreaterThan(40);
    expect(Math.abs((await edgeGreen('true')) + 8)).toBeLessThan(15);
  }, 60_000);

  it('Accept: application/json alone gives {"base64img"}', async () => {
    const res = await segment({ image_file: image() }, { 'x-api-key': TEST_KEY, accept: 'application/json' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('x-uncertainty-score')).toMatch(/^(0|1|0\.\d+)$/);
    const body = (await expectMatchesSpec(res, 'photoroomSegment')) as { base64img: string };
    expect(Object.keys(body)).toEqual(['base64img']);
    const out = await decodeRgba(Buffer.from(body.base64img, 'base64'));
    expect(out.format).toBe('png');
    expectCutout(alphaOf(out.data), out.width, fx.mask);
  }, 60_000);

  it('answers under /compat/photoroom/ too', async () => {
    const res = await segment({ image_file: image() }, { 'x-api-key': TEST_KEY }, '/compat/photoroom/v1/segment');
    expect(res.status).toBe(200);
    await expectDocumented(res, 'photoroomSegment');
  }, 60_000);
});

describe('x-uncertainty-score', () => {
  it('is the share of undecided mask pixels in the subject box: 0 for a hard mask, 1 for none', () => {
    const size = 10;
    const hard = new Uint8Array(size * size);
    for (let y = 2; y < 6; y++) for (let x = 2; x < 6; x++) hard[y * size + x] = 255;
    expect(maskUncertainty(hard, size)).toBe(0);
    const soft = hard.slice();
    for (let x = 2; x < 6; x++) soft[2 * size + x] = 128; // one row of four in a 4×4 box
    expect(maskUncertainty(soft, size)).toBe(0.25);
    const faint = hard.slice();
    faint[0] = 12; // below 5 %: background, does not widen the box
    expect(maskUncertainty(faint, size)).toBe(0);
    expect(maskUncertainty(new Uint8Array(size * size), size)).toBe(1);
  });
});

describe('errors', () => {
  it('400 missing_image with the documented body', async () => {
    const res = await segment({ format: 'png' });
    const body = await expectPhotoroomError(res, 400, 'missing_image');
    expect(body).toEqual({ detail: 'Please provide an image.', status_code: 400, type: 'missing_image' });
  });

  it('400 for bad format, channels, size, bg_color, crop, naming the field', async () => {
    for (const [field, value] of [['format', 'gif'], ['channels', 'rgb'], ['size', '4k'], ['bg_color', 'notacolour'], ['crop', 'maybe']]) {
      const body = await expectPhotoroomError(await segment({ image_file: image(), [field!]: value! }), 400, 'invalid_parameter');
      expect(body.detail).toContain(field);
    }
  });

  it('400 missing_image in the Photoroom shape for a JSON or url-encoded body (the endpoint is multipart only)', async () => {
    const json = await fetch(`${s.url}/v1/segment`, { method: 'POST', headers: { 'x-api-key': TEST_KEY, 'content-type': 'application/json' }, body: JSON.stringify({ image_url: 'https://example.com/a.jpg' }) });
    await expectPhotoroomError(json, 400, 'missing_image');
    const form = await fetch(`${s.url}/v1/segment`, { method: 'POST', headers: { 'x-api-key': TEST_KEY }, body: new URLSearchParams({ format: 'png' }) });
    await expectPhotoroomError(form, 400, 'missing_image');
  });

  it('400 for an upload that is not an image, and for one over the upload limit', async () => {
    await expectPhotoroomError(await segment({ image_file: new Blob([Buffer.from('plain text, not an image at all')]) }), 400, 'invalid_image');
    await expectPhotoroomError(await segment({ image_file: new Blob([new Uint8Array(3 * 1024 * 1024)]) }), 400, 'image_too_large');
  });

  it('403 without a key or with a wrong one, before the upload is processed', async () => {
    await expectPhotoroomError(await segment({ image_file: image() }, {}), 403, 'forbidden');
    await expectPhotoroomError(await segment({ image_file: image() }, { 'x-api-key': 'not-a-key' }), 403, 'invalid_api_key');
  });

  it('403 insufficient_permissions for a key whose subscription is not active', async () => {
    const secret = 'bge_live_photoroom_canceled_key_0000000';
    await s.gw.stores.keys.add(keyRecord(secret, { subscriptionStatus: 'canceled' }, { plan: 'Business' }));
    await expectPhotoroomError(await segment({ image_file: image() }, { 'x-api-key': secret }), 403, 'insufficient_permissions');
  });

  it('402 when credits are exhausted (detail says so)', async () => {
    expect((await segment({ image_file: image() }, { 'x-api-key': TINY })).status).toBe(200);
    const body = await expectPhotoroomError(await segment({ image_file: image() }, { 'x-api-key': TINY }), 402, 'insufficient_credits');
    expect(body.detail).toMatch(/^API credits exhausted/);
  }, 60_000);

  it('429 with Retry-After over the rate limit', async () => {
    const h = { 'x-api-key': SLOW };
    await segment({}, h);
    await segment({}, h);
    const res = await segment({ image_file: image() }, h);
    await expectPhotoroomError(res, 429, 'rate_limit_exceeded');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(res.headers.get('x-ratelimit-remaining')).toBe('0');
  });

  it('405 in the Photoroom shape for GET /v1/segment; 404 in it for unknown paths under /compat/photoroom/', async () => {
    const res = await fetch(`${s.url}/v1/segment`, { headers: { 'x-api-key': TEST_KEY } });
    await expectPhotoroomError(res, 405, 'method_not_allowed');
    expect(res.headers.get('allow')).toBe('POST');
    const unknown = await fetch(`${s.url}/compat/photoroom/v1/nothing`, { method: 'POST', headers: { 'x-api-key': TEST_KEY } });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ status_code: 404, type: 'not_found' });
  });
});

describe('account (under /compat/photoroom/ only)', () => {
  const get = (p: string, key?: string) => fetch(`${s.url}/compat/photoroom${p}`, { headers: key ? { 'x-api-key': key } : {} });

  it('GET /v1/account → {"credits":{"available","subscription"}} from the plan and this month\'s use', async () => {
    const fresh = 'bge_live_photoroom_account_key_000000000';
    await s.gw.stores.keys.add(keyRecord(fresh, { plan: 'Tiny' }, { plan: 'Business' }));
    const before = await get('/v1/account', fresh);
    expect(before.status).toBe(200);
    expect(await expectMatchesSpec(before, 'photoroomAccountV1')).toEqual({ credits: { available: 1, subscription: 1 } });
    const prev = await segment({ image_file: image(), size: 'preview' }, { 'x-api-key': fresh });
    expect(prev.status).toBe(200);
    expect(await (await get('/v1/account', fresh)).json()).toEqual({ credits: { available: 0.75, subscription: 1 } });
    const v2 = await get('/v2/account', fresh);
    expect(await expectMatchesSpec(v2, 'photoroomAccountV2')).toEqual({ images: { available: 0, subscription: 1 }, plan: 'basic' });
  }, 60_000);

  it('unlimited plans report 2^31−1', async () => {
    const body = (await (await get('/v1/account', TEST_KEY)).json()) as { credits: { available: number } };
    expect(body.credits.available).toBe(2_147_483_647);
  });

  it('400 {"error":{"message":"apiKey: Required"}} without a key; 403 with a wrong one', async () => {
    for (const p of ['/v1/account', '/v2/account']) {
      const none = await get(p);
      expect(none.status).toBe(400);
      expect(await none.json()).toEqual({ error: { message: 'apiKey: Required' } });
      const bad = await get(p, 'nope');
      expect(bad.status).toBe(403);
      expect(((await bad.json()) as { error: { message: string } }).error.message.length).toBeGreaterThan(5);
    }
  });

  it('405 {"error":{"message"}} with Allow: GET for other methods', async () => {
    for (const p of ['/v1/account', '/v2/account']) {
      const res = await fetch(`${s.url}/compat/photoroom${p}`, { method: 'POST', headers: { 'x-api-key': TEST_KEY } });
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('GET');
      const body = (await expectMatchesSpec(res, p === '/v1/account' ? 'photoroomAccountV1' : 'photoroomAccountV2')) as { error: { message: string } };
      expect(Object.keys(body)).toEqual(['error']);
      expect(Object.keys(body.error)).toEqual(['message']);
    }
  });

  it('is not served on the colliding upstream paths: /v2/account stays the native one', async () => {
    const native = (await (await fetch(`${s.url}/v2/account`, { headers: { 'x-api-key': TEST_KEY } })).json()) as Record<string, unknown>;
    expect(native.status).toBe('ok');
    expect(native.images).toBeUndefined();
  });
});
