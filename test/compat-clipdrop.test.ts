// test/compat-clipdrop.test.ts
// Clipdrop's POST /remove-background/v1 (compat-apis §3) over real HTTP with the real model.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyRecord } from '../src/keys.js';
import { alphaOf, decodeRgba, iou, subjectFixture, type Fixture } from './helpers/fixtures.js';
import { expectDocumented, expectMatchesSpec } from './helpers/openapi.js';
import { rawMultipart } from './helpers/raw-http.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';

const run = promisify(execFile);
let s: TestServer;
let fx: Fixture;
let dir: string;
const TINY = 'bge_live_clipdrop_tiny_plan_key_00000000';
const SLOW = 'bge_live_clipdrop_slow_plan_key_00000000';

beforeAll(async () => {
  s = await startServer({ PLANS: JSON.stringify({ Tiny: { monthlyCredits: 1 }, Small: { monthlyCredits: 10 }, Slow: { rateLimit: 2, rateWindowSeconds: 60 } }) });
  await s.gw.stores.keys.add(keyRecord(TINY, { plan: 'Tiny' }, { plan: 'Business' }));
  await s.gw.stores.keys.add(keyRecord(SLOW, { plan: 'Slow' }, { plan: 'Business' }));
  fx = await subjectFixture({ width: 320, height: 240 });
  dir = await mkdtemp(path.join(tmpdir(), 'clipdrop-'));
}, 120_000);
afterAll(async () => {
  await s?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function removeBg(fields: Record<string, string | Blob>, headers: Record<string, string> = { 'x-api-key': TEST_KEY }, route = '/remove-background/v1') {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (v instanceof Blob) fd.append(k, v, 'car.jpg');
    else fd.append(k, v);
  }
  return fetch(`${s.url}${route}`, { method: 'POST', headers, body: fd });
}
const image = (bytes: Uint8Array = fx.bytes, type = 'image/jpeg') => new Blob([bytes], { type });

async function expectClipdropError(res: Response, status: number, pattern: RegExp) {
  expect(res.status, await res.clone().text()).toBe(status);
  expect(res.headers.get('content-type')).toBe('application/json');
  expect(res.headers.get('x-request-id')).toMatch(/^req_/);
  const body = (await expectMatchesSpec(res, 'clipdropRemoveBackground')) as { error: string };
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error).toMatch(pattern);
  return body;
}

/** The fixture with its own mask as alpha: an image whose background is already removed. */
async function transparentPng(): Promise<Buffer> {
  const rgb = await sharp(fx.bytes).removeAlpha().raw().toBuffer();
  return sharp(rgb, { raw: { width: fx.width, height: fx.height, channels: 3 } })
    .joinChannel(Buffer.from(fx.mask), { raw: { width: fx.width, height: fx.height, channels: 1 } })
    .png()
    .toBuffer();
}

describe('POST /remove-background/v1', () => {
  it("the docs' curl example (-H 'x-api-key' -F 'image_file=@car.jpg' -o car.png) returns a PNG at the input's size", async () => {
    const input = path.join(dir, 'car.jpg');
    const output = path.join(dir, 'car.png');
    await writeFile(input, fx.bytes);
    const { stdout } = await run('curl', ['-s', '-X', 'POST', `${s.url}/remove-background/v1`, '-H', `x-api-key: ${TEST_KEY}`, '-F', `image_file=@${input}`, '-o', output, '-D', '-']);
    expect(stdout).toMatch(/^HTTP\/1\.1 200/);
    expect(stdout).toMatch(/\r\ncontent-type: image\/png\r\n/i);
    expect(stdout).toMatch(/\r\nx-credits-consumed: 1\r\n/i);
    expect(stdout).toMatch(/\r\nx-remaining-credits: \d+\r\n/i);
    const out = await decodeRgba(await readFile(output));
    expect(out.format).toBe('png');
    expect(out.channels).toBe(4);
    expect([out.width, out.height]).toEqual([fx.width, fx.height]);
    const alpha = alphaOf(out.data);
    expect(iou(alpha, fx.mask)).toBeGreaterThan(0.9);
    expect(alpha[0]).toBe(0);
  }, 60_000);

  it("the docs' JavaScript example (fetch + FormData, arrayBuffer) with credit headers that count down", async () => {
    const key = 'bge_live_clipdrop_small_plan_key_0000000';
    await s.gw.stores.keys.add(keyRecord(key, { plan: 'Small' }, { plan: 'Business' }));
    const form = new FormData();
    form.append('image_file', image());
    const res = await fetch(`${s.url}/remove-background/v1`, { method: 'POST', headers: { 'x-api-key': key }, body: form });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-credits-consumed')).toBe('1');
    expect(res.headers.get('x-remaining-credits')).toBe('9');
    expect(res.headers.get('x-request-id')).toMatch(/^req_/);
    expect(Number(res.headers.get('x-ratelimit-limit'))).toBeGreaterThan(0);
    expect(Number(res.headers.get('x-ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000);
    await expectDocumented(res, 'clipdropRemoveBackground');
    const buffer = await res.arrayBuffer();
    expect((await sharp(Buffer.from(buffer)).metadata()).format).toBe('png');
  }, 60_000);

  it('Accept picks the format: image/webp, image/jpg (documented) and image/jpeg; ranked by q', async () => {
    const cases: [string, string, string][] = [
      ['image/webp', 'image/webp', 'webp'],
      ['image/jpg', 'image/jpeg', 'jpeg'],
      ['image/jpeg', 'image/jpeg', 'jpeg'],
      ['image/webp;q=0.5, image/png', 'image/png', 'png'],
      ['application/json, text/plain, */*', 'image/png', 'png'],
    ];
    for (const [accept, type, format] of cases) {
      const res = await removeBg({ image_file: image() }, { 'x-api-key': TEST_KEY, accept });
      expect(res.status, accept).toBe(200);
      expect(res.headers.get('content-type'), accept).toBe(type);
      const out = await decodeRgba(new Uint8Array(await res.arrayBuffer()));
      expect(out.format).toBe(format);
      expect([out.width, out.height]).toEqual([fx.width, fx.height]);
      if (format === 'jpeg') {
        expect(out.channels).toBe(3);
        expect(out.data[0]).toBeGreaterThan(245); // flattened on white
      } else expect(iou(alphaOf(out.data), fx.mask)).toBeGreaterThan(0.9);
    }
  }, 90_000);

  it('keeps odd input dimensions exactly', async () => {
    const odd = await subjectFixture({ width: 301, height: 157, format: 'webp' });
    const res = await removeBg({ image_file: image(odd.bytes, 'image/webp') });
    const out = await decodeRgba(new Uint8Array(await res.arrayBuffer()));
    expect([out.width, out.height]).toEqual([301, 157]);
  }, 60_000);

  it('chunked upload, no User-Agent, fields after the file, empty transparency_handling = default', async () => {
    const res = await rawMultipart(s.url, '/remove-background/v1', { 'x-api-key': TEST_KEY }, [
      { name: 'image_file', filename: 'car.jpg', contentType: 'image/jpeg', bytes: fx.bytes },
      { name: 'transparency_handling', value: '' },
    ]);
    expect(res.status, res.body.toString().slice(0, 200)).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    expect(res.headers['x-credits-consumed']).toBe('1');
    expect(iou(alphaOf((await decodeRgba(res.body)).data), fx.mask)).toBeGreaterThan(0.9);
  }, 60_000);

  it('key header in any casing; JSON and url-encoded bodies get a 400 {"error"} naming image_file (multipart only)', async () => {
    const res = await removeBg({ image_file: image() }, { 'X-API-KEY': TEST_KEY });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(iou(alphaOf((await decodeRgba(new Uint8Array(await res.arrayBuffer()))).data), fx.mask)).toBeGreaterThan(0.9);
    // Both requests before any assertion: the first spec check compiles openapi.yaml for seconds, and a keep-alive
    // socket left idle meanwhile may be closed by the server just as the client reuses it.
    const json = await fetch(`${s.url}/remove-background/v1`, { method: 'POST', headers: { 'x-api-key': TEST_KEY, 'content-type': 'application/json' }, body: JSON.stringify({ image_url: 'https://example.com/car.jpg' }) });
    const form = await fetch(`${s.url}/remove-background/v1`, { method: 'POST', headers: { 'x-api-key': TEST_KEY }, body: new URLSearchParams({ transparency_handling: 'discard_alpha_layer' }) });
    await expectClipdropError(json, 400, /image_file/);
    await expectClipdropError(form, 400, /image_file/);
  }, 60_000);

  it('answers under /compat/clipdrop/ too', async () => {
    const res = await removeBg({ image_file: image() }, { 'x-api-key': TEST_KEY }, '/compat/clipdrop/remove-background/v1');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
  }, 60_000);
});

describe('transparency_handling', () => {
  it('return_input_if_non_opaque (default): a transparent input comes back unchanged, 0 credits', async () => {
    const png = await transparentPng();
    const res = await removeBg({ image_file: image(png, 'image/png') });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(res.headers.get('x-credits-consumed')).toBe('0');
    expect(Buffer.from(await res.arrayBuffer()).equals(png)).toBe(true);
    // Another Accept re-encodes the same pixels.
    const webp = await removeBg({ transparency_handling: 'return_input_if_non_opaque', image_file: image(png, 'image/png') }, { 'x-api-key': TEST_KEY, accept: 'image/webp' });
    expect(webp.headers.get('content-type')).toBe('image/webp');
    const out = await decodeRgba(new Uint8Array(await webp.arrayBuffer()));
    expect(out.format).toBe('webp');
    expect(iou(alphaOf(out.data), fx.mask)).toBeGreaterThan(0.98);
  });

  it('discard_alpha_layer drops the alpha and removes the background with the model', async () => {
    const png = await transparentPng();
    const res = await removeBg({ image_file: image(png, 'image/png'), transparency_handling: 'discard_alpha_layer' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-credits-consumed')).toBe('1');
    const out = await decodeRgba(new Uint8Array(await res.arrayBuffer()));
    expect(iou(alphaOf(out.data), fx.mask)).toBeGreaterThan(0.9);
  }, 60_000);

  it('an alpha channel that is fully opaque is not "non-opaque": the model runs', async () => {
    const opaque = await sharp(fx.bytes).ensureAlpha(1).png().toBuffer();
    expect((await sharp(opaque).metadata()).hasAlpha).toBe(true);
    const res = await removeBg({ image_file: image(opaque, 'image/png') });
    expect(res.headers.get('x-credits-consumed')).toBe('1');
    expect(iou(alphaOf((await decodeRgba(new Uint8Array(await res.arrayBuffer()))).data), fx.mask)).toBeGreaterThan(0.9);
  }, 60_000);

  it('400 for an unknown value', async () => {
    await expectClipdropError(await removeBg({ image_file: image(), transparency_handling: 'keep' }), 400, /transparency_handling/);
  });
});

describe('errors', () => {
  it('401 {"error":"No api key provided"} without a key; 403 for a wrong key', async () => {
    const none = await expectClipdropError(await removeBg({ image_file: image() }, {}), 401, /api key/i);
    expect(none).toEqual({ error: 'No api key provided' });
    await expectClipdropError(await removeBg({ image_file: image() }, { 'x-api-key': 'wrong' }), 403, /invalid or revoked/i);
  });

  it('403 for a key whose subscription is not active', async () => {
    const secret = 'bge_live_clipdrop_canceled_key_00000000';
    await s.gw.stores.keys.add(keyRecord(secret, { subscriptionStatus: 'canceled' }, { plan: 'Business' }));
    await expectClipdropError(await removeBg({ image_file: image() }, { 'x-api-key': secret }), 403, /not active/);
  });

  it('400 without image_file, for a file that is not an image, and over 25 MP', async () => {
    await expectClipdropError(await removeBg({ other: 'x' }), 400, /image_file/);
    await expectClipdropError(await removeBg({ image_file: new Blob([Buffer.from('this is not an image file at all')]) }), 400, /image/i);
    const huge = await sharp({ create: { width: 5001, height: 5001, channels: 3, background: '#808080' } }).png({ compressionLevel: 9 }).toBuffer();
    await expectClipdropError(await removeBg({ image_file: image(huge, 'image/png') }), 400, /megapixels/);
  }, 60_000);

  it('406 for an Accept it cannot produce, before the upload is read', async () => {
    for (const accept of ['image/avif', 'application/json', 'image/png;q=0']) {
      await expectClipdropError(await removeBg({ image_file: image() }, { 'x-api-key': TEST_KEY, accept }), 406, /Accept header not acceptable/);
    }
  });

  it('402 when the credits are used up, x-remaining-credits 0 on the last success', async () => {
    const ok = await removeBg({ image_file: image() }, { 'x-api-key': TINY });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-remaining-credits')).toBe('0');
    await expectClipdropError(await removeBg({ image_file: image() }, { 'x-api-key': TINY }), 402, /no remaining credits/);
  }, 60_000);

  it('429 with Retry-After over the rate limit', async () => {
    const h = { 'x-api-key': SLOW };
    await removeBg({}, h);
    await removeBg({}, h);
    const res = await removeBg({ image_file: image() }, h);
    await expectClipdropError(res, 429, /rate limit/);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });

  it('405 {"error"} for GET; 404 {"error"} for unknown paths under /compat/clipdrop/', async () => {
    const res = await fetch(`${s.url}/remove-background/v1`, { headers: { 'x-api-key': TEST_KEY } });
    await expectClipdropError(res, 405, /POST/);
    expect(res.headers.get('allow')).toBe('POST');
    const unknown = await fetch(`${s.url}/compat/clipdrop/cleanup/v1`, { method: 'POST', headers: { 'x-api-key': TEST_KEY } });
    expect(unknown.status).toBe(404);
    expect(typeof ((await unknown.json()) as { error: unknown }).error).toBe('string');
  });
});
