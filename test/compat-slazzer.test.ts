// test/compat-slazzer.test.ts
// Slazzer (compat-apis §4) over real HTTP with the real model: every source, background, preview, channel, base64,
// format, the request shapes its clients send, its documented example and every documented error.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http, { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyRecord } from '../src/keys.js';
import { alphaOf, decodeRgba, iou, rgbaAt, subjectFixture, type Fixture } from './helpers/fixtures.js';
import { expectDocumented, expectMatchesSpec } from './helpers/openapi.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';

let s: TestServer;
let fx: Fixture;
let big: Fixture;
let images: Server;
let imagesUrl: string;
let blue: Buffer;
let bands: Buffer;
const KEY = { 'API-KEY': TEST_KEY };
const P = '/v2.0/remove_image_background';

beforeAll(async () => {
  s = await startServer({
    URL_FETCH_ALLOW_HOSTS: '127.0.0.1',
    PLANS: JSON.stringify({ Broke: { monthlyCredits: 0 }, One: { monthlyCredits: 1 }, Slow: { rateLimit: 1, rateWindowSeconds: 60 } }),
  });
  fx = await subjectFixture({ width: 320, height: 240 });
  big = await subjectFixture({ width: 800, height: 600 });
  blue = await sharp({ create: { width: 100, height: 80, channels: 3, background: { r: 0, g: 0, b: 255 } } }).png().toBuffer();
  // Three vertical bands, red | blue | green, 67 + 66 + 67 px wide.
  const band = Buffer.alloc(200 * 80 * 3);
  for (let p = 0; p < 200 * 80; p++) {
    const x = p % 200;
    band[p * 3 + (x < 67 ? 0 : x < 133 ? 2 : 1)] = 255;
  }
  bands = await sharp(band, { raw: { width: 200, height: 80, channels: 3 } }).png().toBuffer();
  images = createServer((req, res) => {
    if (req.url === '/subject.jpg') {
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      return res.end(fx.bytes);
    }
    if (req.url === '/bands.png') {
      res.writeHead(200, { 'content-type': 'image/png' });
      return res.end(bands);
    }
    if (req.url === '/blue.png') {
      res.writeHead(200, { 'content-type': 'image/png' });
      return res.end(blue);
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('no');
  });
  await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
  imagesUrl = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
}, 120_000);
afterAll(async () => {
  await s?.close();
  await new Promise((r) => images?.close(r));
});

const blob = (bytes: Uint8Array, type = 'image/jpeg') => new Blob([bytes], { type });
function multipart(fields: Record<string, string | Blob>): FormData {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) fd.append(k, v, ...(v instanceof Blob ? ['upload.jpg'] : []));
  return fd;
}
const post = (fields: Record<string, string | Blob>, headers: Record<string, string> = KEY, p = P) =>
  fetch(`${s.url}${p}`, { method: 'POST', headers, body: multipart(fields) });

async function ok(res: Response): Promise<Buffer> {
  expect(res.status, await res.clone().text().catch(() => '')).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}
async function expectError(res: Response, status: number, text?: string) {
  expect(res.status, await res.clone().text()).toBe(status);
  expect(res.headers.get('content-type')).toBe('application/json');
  expect(res.headers.get('x-request-id')).toMatch(/^req_/);
  expect(res.headers.get('x-credits-charged')).toBeNull();
  const body = (await expectMatchesSpec(res, 'slazzerRemoveBackground')) as { error: string };
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error.length).toBeGreaterThan(3);
  if (text) expect(body.error).toBe(text);
  return body;
}
async function expectCutout(bytes: Uint8Array, f = fx) {
  const img = await decodeRgba(bytes);
  expect(img.format).toBe('png');
  expect(img.channels).toBe(4);
  expect(img.width).toBe(f.width);
  expect(iou(alphaOf(img.data), f.mask)).toBeGreaterThan(0.8);
  return img;
}
async function addKey(plan: string): Promise<Record<string, string>> {
  const secret = `bge_live_${plan}_${Math.random().toString(36).slice(2)}_0123456789`;
  await s.gw.stores.keys.add(keyRecord(secret, { plan }, { plan: 'Business' }));
  return { 'API-KEY': secret };
}
/** Raw HTTP/1.1: exact headers (no User-Agent), optionally chunked. */
function rawRequest(p: string, headers: Record<string, string>, body: Buffer, chunked: boolean): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  const url = new URL(p, s.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: chunked ? headers : { ...headers, 'Content-Length': String(body.length) } });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    if (chunked) for (let i = 0; i < body.length; i += 4096) req.write(body.subarray(i, i + 4096));
    else req.write(body);
    req.end();
  });
}
function handMultipart(parts: [string, string | { bytes: Buffer; filename: string; type: string }][]): { body: Buffer; type: string } {
  const boundary = '----slazzerTestBoundary7MA4YWxkTrZu0gW';
  const chunks: Buffer[] = [];
  for (const [name, value] of parts) {
    if (typeof value === 'string') chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
    else {
      chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${value.filename}"\r\nContent-Type: ${value.type}\r\n\r\n`));
      chunks.push(value.bytes, Buffer.from('\r\n'));
    }
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), type: `multipart/form-data; boundary=${boundary}` };
}

describe('Slazzer dialect', () => {
  it('source_image_file → transparent PNG cutout, on both paths and under /compat/slazzer/', async () => {
    const first = await post({ source_image_file: blob(fx.bytes) });
    await expectDocumented(first, 'slazzerRemoveBackground');
    expect(first.headers.get('x-ratelimit-limit')).toMatch(/^\d+$/);
    await expectCutout(await ok(first));
    await expectCutout(await ok(await post({ source_image_file: blob(fx.bytes) }, KEY, '/api/v1/remove_image_background')));
    await expectCutout(await ok(await post({ source_image_file: blob(fx.bytes) }, { 'api-key': TEST_KEY }, `/compat/slazzer${P}`)));
  }, 120_000);

  it('hand-written multipart with empty-string fields, no User-Agent, sent chunked', async () => {
    const { body, type } = handMultipart([
      ['source_image_url', ''],
      ['source_image_base64', ''],
      ['bg_color_code', ''],
      ['crop', ''],
      ['source_image_file', { bytes: fx.bytes as Buffer, filename: 'p.jpg', type: 'image/jpeg' }],
    ]);
    const res = await rawRequest(P, { 'Api-Key': TEST_KEY, 'Content-Type': type }, body, true);
    expect(res.status, res.body.toString().slice(0, 300)).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    await expectCutout(res.body);
  }, 60_000);

  it('source_image_url from a loopback server, url-encoded and JSON bodies', async () => {
    const url = `${imagesUrl}/subject.jpg`;
    await expectCutout(await ok(await fetch(`${s.url}${P}`, { method: 'POST', headers: KEY, body: new URLSearchParams({ source_image_url: url }) })));
    await expectCutout(await ok(await fetch(`${s.url}${P}`, { method: 'POST', headers: { ...KEY, 'content-type': 'application/json' }, body: JSON.stringify({ source_image_url: url }) })));
  }, 60_000);

  it('source_image_base64 (data URL too) with output_image_format=base64 answers JSON', async () => {
    const res = await fetch(`${s.url}${P}`, {
      method: 'POST',
      headers: { ...KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ source_image_base64: `data:image/jpeg;base64,${Buffer.from(fx.bytes).toString('base64')}`, output_image_format: 'base64' }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const body = (await expectMatchesSpec(res, 'slazzerRemoveBackground')) as { output_image: string; content_type: string; width: number; height: number };
    expect(Object.keys(body).sort()).toEqual(['content_type', 'height', 'output_image', 'width']);
    expect(body.content_type).toBe('image/png');
    expect([body.width, body.height]).toEqual([fx.width, fx.height]);
    await expectCutout(Buffer.from(body.output_image, 'base64'));
  }, 60_000);

  it('bg_color_code composites an opaque colour behind the subject', async () => {
    const img = await decodeRgba(await ok(await post({ source_image_file: blob(fx.bytes), bg_color_code: '#00ff00' })));
    expect(img.channels).toBe(3);
    expect(rgbaAt(img, 2, 2)).toEqual([0, 255, 0, 255]);
    // On the subject's body (dark red): the green must not show through.
    const [r, g] = rgbaAt(img, fx.width / 2, fx.height * 0.7);
    expect(g!).toBeLessThan(60);
    expect(r!).toBeGreaterThan(g! + 30);
  }, 60_000);

  it('bg_image_url (fetched through the SSRF-safe fetcher) and bg_image_file become the background', async () => {
    // bands is 200×80 (5:2) behind a 320×240 (4:3) output: cover-fit scales it ×3 to 600×240 and, centred, crops
    // 140 px off each side, so red shows at x ≤ 60, blue at 61–258, green at x ≥ 259. A stretch would put the
    // red/blue seam near x = 107; an uncentred crop would show no red at all.
    const cases: [string, Record<string, string | Blob>][] = [
      ['bg_image_url', { bg_image_url: `${imagesUrl}/bands.png` }],
      ['bg_image_file', { bg_image_file: blob(bands, 'image/png') }],
      ['bg_image_base64', { bg_image_base64: bands.toString('base64') }],
    ];
    for (const [name, extra] of cases) {
      const img = await decodeRgba(await ok(await post({ source_image_file: blob(fx.bytes), ...extra })));
      expect([img.format, img.channels, img.width, img.height], name).toEqual(['png', 3, fx.width, fx.height]);
      expect(rgbaAt(img, 2, 2), name).toEqual([255, 0, 0, 255]);
      expect(rgbaAt(img, 50, 2), name).toEqual([255, 0, 0, 255]);
      expect(rgbaAt(img, 70, 2), name).toEqual([0, 0, 255, 255]);
      expect(rgbaAt(img, 250, 2), name).toEqual([0, 0, 255, 255]);
      expect(rgbaAt(img, 270, 2), name).toEqual([0, 255, 0, 255]);
      expect(rgbaAt(img, 317, 237), name).toEqual([0, 255, 0, 255]);
      // The subject stays on top: its dark red body, not the blue band behind it.
      const [r, , b] = rgbaAt(img, fx.width / 2, fx.height * 0.7);
      expect(r!, name).toBeGreaterThan(b! + 30);
    }
    // JPEG output carries the same background (within JPEG's error on flat colour).
    const jpg = await post({ source_image_file: blob(fx.bytes), bg_image_file: blob(bands, 'image/png'), format: 'jpg' });
    expect(jpg.headers.get('content-type')).toBe('image/jpeg');
    const j = await decodeRgba(await ok(jpg));
    const near = (got: number[], want: number[]) => want.every((v, k) => Math.abs(got[k]! - v) <= 12);
    expect(near(rgbaAt(j, 20, 20), [255, 0, 0]), String(rgbaAt(j, 20, 20))).toBe(true);
    expect(near(rgbaAt(j, 160, 20), [0, 0, 255]), String(rgbaAt(j, 160, 20))).toBe(true);
    await expectError(await post({ source_image_file: blob(fx.bytes), bg_image_url: `${imagesUrl}/missing.png` }), 400);
    await expectError(await post({ source_image_file: blob(fx.bytes), bg_image_url: `${imagesUrl}/blue.png`, bg_color_code: 'fff' }), 400);
  }, 90_000);

  it('preview caps the output at 0.25 MP for 0.25 credit (a full removal costs 1); crop trims to the subject', async () => {
    const preview = await post({ source_image_file: blob(big.bytes), preview: 'true' });
    const meta = await sharp(await ok(preview)).metadata();
    expect(meta.width! * meta.height!).toBeLessThanOrEqual(250_000);
    expect(meta.width).toBeLessThan(big.width);
    expect(preview.headers.get('x-credits-charged')).toBe('0.25');
    const full = await post({ source_image_file: blob(big.bytes), preview: 'false' });
    expect((await sharp(await ok(full)).metadata()).width).toBe(big.width);
    expect(full.headers.get('x-credits-charged')).toBe('1');
    const cropped = await sharp(await ok(await post({ source_image_file: blob(fx.bytes), crop: 'true' }))).metadata();
    expect(cropped.width).toBeLessThan(fx.width * 0.5);
    expect(cropped.width).toBeGreaterThan(fx.width * 0.25);
    await expectError(await post({ source_image_file: blob(fx.bytes), preview: 'sometimes' }), 400);
  }, 120_000);

  it('format: png (default), jpg and jpeg (flattened on white, or on bg_color_code), webp with alpha; others are 400', async () => {
    for (const [format, type] of [['jpg', 'image/jpeg'], ['JPEG', 'image/jpeg'], ['webp', 'image/webp'], ['png', 'image/png']] as const) {
      const res = await post({ source_image_file: blob(fx.bytes), format });
      expect(res.headers.get('content-type'), format).toBe(type);
      await expectDocumented(res, 'slazzerRemoveBackground');
      const img = await decodeRgba(await ok(res));
      if (type === 'image/jpeg') {
        expect([img.format, img.channels]).toEqual(['jpeg', 3]);
        expect(rgbaAt(img, 2, 2).slice(0, 3).every((v) => v > 245), String(rgbaAt(img, 2, 2))).toBe(true);
      } else {
        expect(img.channels, format).toBe(4);
        expect(iou(alphaOf(img.data), fx.mask), format).toBeGreaterThan(0.8);
      }
    }
    const onColour = await decodeRgba(await ok(await post({ source_image_file: blob(fx.bytes), format: 'jpg', bg_color_code: '0000ff' })));
    const [r, g, b] = rgbaAt(onColour, 2, 2);
    expect(b!).toBeGreaterThan(240);
    expect(r! + g!).toBeLessThan(20);
    await expectError(await post({ source_image_file: blob(fx.bytes), format: 'gif' }), 400);
  }, 120_000);

  it('a transparent PNG input stays transparent where it was, unless a colour is set', async () => {
    // The fixture's lower band (y ≥ 190, across the subject's body) made fully transparent in the upload.
    const rgb = await sharp(fx.bytes).removeAlpha().raw().toBuffer();
    const alpha = Buffer.alloc(fx.width * fx.height, 255);
    alpha.fill(0, 190 * fx.width);
    const png = await sharp(rgb, { raw: { width: fx.width, height: fx.height, channels: 3 } })
      .joinChannel(alpha, { raw: { width: fx.width, height: fx.height, channels: 1 } })
      .png()
      .toBuffer();
    const cut = await decodeRgba(await ok(await post({ source_image_file: blob(png, 'image/png') })));
    expect(rgbaAt(cut, fx.width / 2, 210)[3]).toBe(0); // the body, but transparent in the upload
    expect(rgbaAt(cut, fx.width / 2, 150)[3]).toBeGreaterThan(240); // the body above the band
    expect(rgbaAt(cut, 5, 5)[3]).toBe(0);
    const coloured = await decodeRgba(await ok(await post({ source_image_file: blob(png, 'image/png'), bg_color_code: '#00ff00' })));
    expect(rgbaAt(coloured, fx.width / 2, 210)).toEqual([0, 255, 0, 255]);
  }, 60_000);

  it("the Android SDK's request: only source_image_file, always labelled image/png, Content-Length, okhttp User-Agent", async () => {
    const { body, type } = handMultipart([['source_image_file', { bytes: fx.bytes as Buffer, filename: 'IMG_20240101_120000.jpg', type: 'image/png' }]]);
    const res = await rawRequest('/v2.0/remove_image_background', { 'API-KEY': TEST_KEY, 'User-Agent': 'okhttp/4.9.0', 'Content-Type': type }, body, false);
    expect(res.status, res.body.toString().slice(0, 300)).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    await expectCutout(res.body);
  }, 60_000);

  it('failed requests cost no credits: a one-credit key still succeeds once after several 400s, then gets 402', async () => {
    const one = await addKey('One');
    await expectError(await post({ source_image_file: blob(Buffer.from('definitely not an image')) }, one), 400);
    await expectError(await post({ source_image_url: `${imagesUrl}/missing.jpg` }, one), 400);
    await expectError(await post({ source_image_file: blob(fx.bytes), bg_image_url: `${imagesUrl}/missing.png` }, one), 400);
    const res = await post({ source_image_file: blob(fx.bytes) }, one);
    await expectCutout(await ok(res));
    expect(res.headers.get('x-credits-charged')).toBe('1');
    await expectError(await post({ source_image_file: blob(fx.bytes) }, one), 402, 'No credits remaining');
  }, 60_000);

  it('405 {"error"} with Allow for other methods on both paths; 404 {"error"} for unknown paths under /compat/slazzer/', async () => {
    for (const p of [P, '/api/v1/remove_image_background', `/compat/slazzer${P}`]) {
      const res = await fetch(`${s.url}${p}`, { headers: KEY });
      await expectError(res, 405);
      expect(res.headers.get('allow')).toBe('POST');
    }
    await expectError(await fetch(`${s.url}${P}`, { method: 'PUT', headers: KEY }), 405);
    await expectError(await fetch(`${s.url}/compat/slazzer/v2.0/nothing`, { method: 'POST', headers: KEY }), 404);
  });

  it('503 in the same envelope, with Retry-After, while the server shuts down', async () => {
    s.gw.state.shuttingDown = true;
    try {
      const res = await post({ source_image_file: blob(fx.bytes) });
      await expectError(res, 503);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    } finally {
      s.gw.state.shuttingDown = false;
    }
  });

  it('channel=alpha answers the mask', async () => {
    const bytes = await ok(await post({ source_image_file: blob(fx.bytes), channel: 'alpha' }));
    const { data, info } = await sharp(bytes).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    expect(info.width).toBe(fx.width);
    expect(iou(new Uint8Array(data), fx.mask)).toBeGreaterThan(0.8);
  }, 60_000);

  it('400s: no source, two sources, not an image, bad base64, bad enum', async () => {
    await expectError(await post({ crop: 'true' }), 400, 'Source image file not found');
    await expectError(await post({ source_image_file: blob(fx.bytes), source_image_url: `${imagesUrl}/subject.jpg` }), 400);
    await expectError(await post({ source_image_file: blob(Buffer.from('definitely not an image')) }), 400);
    await expectError(await post({ source_image_base64: '!!!not base64!!!' }), 400);
    await expectError(await post({ source_image_file: blob(fx.bytes), channel: 'cmyk' }), 400);
    await expectError(await post({ source_image_url: `${imagesUrl}/missing.jpg` }), 400);
    await expectError(await post({ source_image_url: 'http://169.254.169.254/latest/meta-data' }), 400);
    await expectError(await post({ source_image_file: blob(fx.bytes), output_image_format: 'xml' }), 400);
  }, 60_000);

  it('401 {"error":"invalid api key"} for a missing and for a wrong key alike (Slazzer documents one answer for both)', async () => {
    await expectError(await post({ source_image_file: blob(fx.bytes) }, {}), 401, 'invalid api key');
    await expectError(await post({ source_image_file: blob(fx.bytes) }, { 'API-KEY': 'bge_live_nope_0123456789abcdefghijkl' }), 401, 'invalid api key');
    // Another vendor's header is not Slazzer's.
    await expectError(await post({ source_image_file: blob(fx.bytes) }, { 'X-Api-Key': TEST_KEY }), 401, 'invalid api key');
  });

  it('401 "invalid api key" for a key whose subscription is not active (Slazzer has no other auth answer)', async () => {
    const secret = 'bge_live_slazzer_canceled_key_000000000';
    await s.gw.stores.keys.add(keyRecord(secret, { subscriptionStatus: 'canceled' }, { plan: 'Business' }));
    await expectError(await post({ source_image_file: blob(fx.bytes) }, { 'API-KEY': secret }), 401, 'invalid api key');
  });

  it('402 when the plan has no credits left', async () => {
    await expectError(await post({ source_image_file: blob(fx.bytes) }, await addKey('Broke')), 402, 'No credits remaining');
  }, 60_000);

  it('429 with Retry-After past the rate limit', async () => {
    const slow = await addKey('Slow');
    await ok(await post({ source_image_file: blob(fx.bytes) }, slow));
    const res = await post({ source_image_file: blob(fx.bytes) }, slow);
    await expectError(res, 429, 'Api rate limit crossed');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it("Slazzer's documented example (API-KEY header, source_image_file = @/path/to/image.png), and source_image_url, with curl", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'slazzer-'));
    const curl = (args: string[]) =>
      new Promise<string>((resolve, reject) => execFile('curl', ['-sS', '-w', '%{http_code}', '-H', `API-KEY: ${TEST_KEY}`, ...args, `${s.url}${P}`], (err, stdout) => (err ? reject(err) : resolve(stdout))));
    try {
      const png = await subjectFixture({ width: 320, height: 240, format: 'png' });
      const file = path.join(dir, 'image.png');
      writeFileSync(file, png.bytes);
      const out = path.join(dir, 'no-bg.png');
      expect(await curl(['-F', `source_image_file=@${file}`, '-o', out])).toBe('200');
      await expectCutout(readFileSync(out), png);
      const fromUrl = path.join(dir, 'from-url.png');
      expect(await curl(['-F', `source_image_url=${imagesUrl}/subject.jpg`, '-o', fromUrl])).toBe('200');
      await expectCutout(readFileSync(fromUrl));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

});
