// test/compat-slazzer.test.ts
// Slazzer (compat-apis §4) over real HTTP with the real model: every source, background, preview, channel, base64, errors.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http, { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyRecord } from '../src/keys.js';
import { alphaOf, decodeRgba, iou, rgbaAt, subjectFixture, type Fixture } from './helpers/fixtures.js';
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
    PLANS: JSON.stringify({ Broke: { monthlyCredits: 0 }, Slow: { rateLimit: 1, rateWindowSeconds: 60 } }),
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
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  const body = (await res.json()) as { error: string };
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
    await expectCutout(await ok(await post({ source_image_file: blob(fx.bytes) })));
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
    const body = (await res.json()) as { output_image: string; content_type: string; width: number; height: number };
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

  it('preview caps the output at 0.25 MP; crop trims to the subject; format=jpg', async () => {
    const meta = await sharp(await ok(await post({ source_image_file: blob(big.bytes), preview: 'true' }))).metadata();
    expect(meta.width! * meta.height!).toBeLessThanOrEqual(250_000);
    expect(meta.width).toBeLessThan(big.width);
    const cropped = await sharp(await ok(await post({ source_image_file: blob(fx.bytes), crop: 'true' }))).metadata();
    expect(cropped.width).toBeLessThan(fx.width);
    const res = await post({ source_image_file: blob(fx.bytes), format: 'jpg', bg_color_code: 'ffffff' });
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect((await sharp(await ok(res)).metadata()).format).toBe('jpeg');
  }, 120_000);

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
  }, 60_000);

  it('401 missing and invalid key', async () => {
    await expectError(await post({ source_image_file: blob(fx.bytes) }, {}), 401);
    await expectError(await post({ source_image_file: blob(fx.bytes) }, { 'API-KEY': 'bge_live_nope_0123456789abcdefghijkl' }), 401, 'invalid api key');
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

  it("Slazzer's documented curl example, pointed at localhost", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'slazzer-'));
    try {
      const file = path.join(dir, 'photo.jpg');
      const out = path.join(dir, 'out.png');
      writeFileSync(file, fx.bytes);
      const code = await new Promise<string>((resolve, reject) =>
        execFile('curl', ['-sS', '-w', '%{http_code}', '-H', `API-KEY: ${TEST_KEY}`, '-F', `source_image_file=@${file}`, '-o', out, `${s.url}${P}`], (err, stdout) => (err ? reject(err) : resolve(stdout))),
      );
      expect(code).toBe('200');
      const { readFileSync } = await import('node:fs');
      await expectCutout(readFileSync(out));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
