// test/compat-removebg.test.ts
// remove.bg dialect (compat-apis §1, §7, §10) over real HTTP with the real model: the request shapes real clients
// send, every documented field, the headers, JSON mode, zip, the documented errors, /account and /improve.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http, { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { unzipSync } from 'fflate';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foregroundOf } from '../compat/removebg/index.js';
import { makeJob, type RemovalResult } from '../src/job.js';
import { keyRecord } from '../src/keys.js';
import { subjectBox } from '../src/pipeline/compose.js';
import { outputSize } from '../src/pipeline/sizes.js';
import { alphaOf, decodeRgba, iou, subjectFixture, type Fixture } from './helpers/fixtures.js';
import { expectDocumented, expectMatchesSpec } from './helpers/openapi.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';

let s: TestServer;
let fx: Fixture;
let big: Fixture;
let images: Server;
let imagesUrl: string;
let blue: Buffer;
let green: Buffer;
const KEY = { 'X-Api-Key': TEST_KEY };
const MB = 1024 * 1024;

beforeAll(async () => {
  s = await startServer({
    URL_FETCH_ALLOW_HOSTS: '127.0.0.1',
    MAX_UPLOAD_BYTES: String(2 * MB),
    PLANS: JSON.stringify({ Tiny: { monthlyCredits: 1 }, Broke: { monthlyCredits: 0 }, Slow: { rateLimit: 1, rateWindowSeconds: 60 } }),
  });
  fx = await subjectFixture({ width: 320, height: 240 });
  big = await subjectFixture({ width: 640, height: 480 });
  blue = await sharp({ create: { width: 100, height: 80, channels: 3, background: { r: 0, g: 0, b: 255 } } }).png().toBuffer();
  green = await sharp({ create: { width: 50, height: 50, channels: 3, background: { r: 0, g: 200, b: 0 } } }).jpeg().toBuffer();
  images = createServer((req, res) => {
    if (req.url === '/subject.jpg') {
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      return res.end(fx.bytes);
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

const post = (fields: Record<string, string | Blob>, headers: Record<string, string> = KEY, p = '/v1.0/removebg') =>
  fetch(`${s.url}${p}`, { method: 'POST', headers, body: multipart(fields) });

async function ok(res: Response): Promise<Buffer> {
  expect(res.status, await res.clone().text().catch(() => '')).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

async function expectError(res: Response, status: number, code: string) {
  const text = await res.clone().text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get('content-type')).toBe('application/json');
  const body = JSON.parse(text) as { errors: { title: string; code: string; detail: string }[] };
  expect(Object.keys(body)).toEqual(['errors']);
  expect(body.errors).toHaveLength(1);
  const e = body.errors[0]!;
  expect(typeof e.title).toBe('string');
  expect(e.title.length).toBeGreaterThan(3);
  expect(e.code).toBe(code);
  expect(typeof e.detail).toBe('string');
  expect(res.headers.get('x-credits-charged')).toBeNull();
  return e;
}

async function addKey(plan: string): Promise<Record<string, string>> {
  const secret = `bge_live_${plan}_${Math.random().toString(36).slice(2)}_0123456789`;
  await s.gw.stores.keys.add(keyRecord(secret, { plan }, { plan: 'Business' }));
  return { 'X-Api-Key': secret };
}

/** A raw HTTP/1.1 request: exact headers (no User-Agent unless given), optionally chunked, body as given. */
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
    if (chunked) {
      for (let i = 0; i < body.length; i += 4096) req.write(body.subarray(i, i + 4096));
    } else req.write(body);
    req.end();
  });
}

/** A multipart body built by hand, parts in the given order (as the CLI and Go clients write them). */
function handMultipart(parts: [string, string | { bytes: Buffer; filename: string; type: string }][]): { body: Buffer; type: string } {
  const boundary = '----removebgTestBoundary7MA4YWxkTrZu0gW';
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

const pixel = (img: { data: Buffer; width: number }, x: number, y: number) => {
  const o = (y * img.width + x) * 4;
  return [img.data[o]!, img.data[o + 1]!, img.data[o + 2]!, img.data[o + 3]!];
};

describe('the documented curl example, pointed at localhost', () => {
  it('curl -H X-API-Key -F image_file=@file.jpg -F size=auto -f …/v1.0/removebg -o no-bg.png', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'removebg-'));
    try {
      writeFileSync(path.join(dir, 'file.jpg'), fx.bytes);
      const out = path.join(dir, 'no-bg.png');
      const headersFile = path.join(dir, 'headers.txt');
      await new Promise<void>((resolve, reject) =>
        execFile(
          'curl',
          ['-sS', '-H', `X-API-Key: ${TEST_KEY}`, '-F', `image_file=@${path.join(dir, 'file.jpg')}`, '-F', 'size=auto', '-f', `${s.url}/v1.0/removebg`, '-o', out, '-D', headersFile],
          (err) => (err ? reject(err) : resolve()),
        ),
      );
      const headers = readFileSync(headersFile, 'utf8').toLowerCase();
      expect(headers).toContain('content-type: image/png');
      // A 320×240 image is already preview-sized: size=auto serves it whole at the preview price.
      expect(headers).toContain('x-credits-charged: 0.25');
      expect(headers).toContain('x-width: 320');
      expect(headers).toContain('x-type: other');
      const img = await decodeRgba(readFileSync(out));
      expect([img.width, img.height, img.channels]).toEqual([320, 240, 4]);
      expect(iou(alphaOf(img.data), fx.mask)).toBeGreaterThan(0.9);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe("remove.bg's documented Node sample (fetch + FormData: size first, then the fs.openAsBlob file)", () => {
  it('answers the PNG bytes that the sample writes to no-bg.png', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'removebg-node-'));
    try {
      const inputPath = path.join(dir, 'file.jpg');
      writeFileSync(inputPath, fx.bytes);
      // The sample, with only the host changed.
      const removeBg = async (fileBlob: Blob) => {
        const formData = new FormData();
        formData.append('size', 'auto');
        formData.append('image_file', fileBlob);
        const response = await fetch(`${s.url}/v1.0/removebg`, { method: 'POST', headers: { 'X-Api-Key': TEST_KEY }, body: formData });
        if (response.ok) return { data: await response.arrayBuffer(), headers: response.headers };
        throw new Error(`${response.status}: ${response.statusText} ${await response.text()}`);
      };
      const { openAsBlob } = await import('node:fs');
      const result = await removeBg(await openAsBlob(inputPath));
      writeFileSync(path.join(dir, 'no-bg.png'), Buffer.from(result.data));
      expect(result.headers.get('content-type')).toBe('image/png');
      const img = await decodeRgba(readFileSync(path.join(dir, 'no-bg.png')));
      expect([img.format, img.width, img.height, img.channels]).toEqual(['png', 320, 240, 4]);
      expect(iou(alphaOf(img.data), fx.mask)).toBeGreaterThan(0.9);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('request shapes real clients send', () => {
  it('Go client shape: image_file last, empty-string fields, no User-Agent, chunked without Content-Length', async () => {
    const { body, type } = handMultipart([
      ['size', ''],
      ['type', ''],
      ['roi', ''],
      ['crop', ''],
      ['crop_margin', ''],
      ['scale', ''],
      ['position', ''],
      ['bg_color', ''],
      ['bg_image_url', ''],
      ['channels', ''],
      ['format', 'zip'],
      ['image_url', ''],
      // Go's multipart.CreateFormFile labels every file application/octet-stream.
      ['image_file', { bytes: fx.bytes, filename: 'photo.jpg', type: 'application/octet-stream' }],
    ]);
    const res = await rawRequest('/v1.0/removebg', { 'x-api-key': TEST_KEY, 'Content-Type': type }, body, true);
    expect(res.status, res.body.toString().slice(0, 300)).toBe(200);
    expect(res.headers['content-type']).toBe('application/zip');
    expect(res.headers['x-credits-charged']).toBe('0.25');
    expect(Object.keys(unzipSync(res.body)).sort()).toEqual(['alpha.png', 'color.jpg']);
  }, 60_000);

  it('image_file first with options after it (wrapper, Go, Ruby order)', async () => {
    const { body, type } = handMultipart([
      ['image_file', { bytes: fx.bytes, filename: 'photo.jpg', type: 'image/jpeg' }],
      ['size', 'preview'],
      ['format', 'png'],
      ['crop', 'false'],
    ]);
    const res = await rawRequest('/v1.0/removebg', { 'X-API-Key': TEST_KEY, 'Content-Type': type }, body, false);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
  }, 60_000);

  it('official Node CLI: image_file first, then size=auto, format=zip, type=auto (superagent multipart)', async () => {
    const { body, type } = handMultipart([
      ['image_file', { bytes: fx.bytes, filename: 'plate.jpg', type: 'image/jpeg' }],
      ['size', 'auto'],
      ['format', 'zip'],
      ['type', 'auto'],
    ]);
    const res = await rawRequest('/v1.0/removebg', { 'X-Api-Key': TEST_KEY, 'User-Agent': 'remove-bg-cli/2.0', 'Content-Type': type }, body, false);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/zip');
    expect(Object.keys(unzipSync(res.body)).sort()).toEqual(['alpha.png', 'color.jpg']);
  }, 60_000);

  it('Python removebg (brilam): its full default field set, multipart for files and url-encoded for base64', async () => {
    const defaults = {
      size: 'regular',
      type: 'auto',
      type_level: 'none',
      format: 'auto',
      roi: '0 0 100% 100%',
      crop: 'false',
      scale: 'original',
      position: 'original',
      channels: 'rgba',
      add_shadow: 'false',
      semitransparency: 'true',
    };
    const file = await post({ image_file: blob(fx.bytes), ...defaults });
    const img = await decodeRgba(await ok(file));
    expect(file.headers.get('content-type')).toBe('image/png');
    expect(file.headers.get('x-type')).toBeNull();
    expect(file.headers.get('x-credits-charged')).toBe('0.25');
    expect(iou(alphaOf(img.data), fx.mask)).toBeGreaterThan(0.9);
    const b64 = await fetch(`${s.url}/v1.0/removebg`, {
      method: 'POST',
      headers: { 'X-Api-Key': TEST_KEY, 'Content-Type': 'application/x-www-form-urlencoded', 'User-Agent': 'python-requests/2.32.3' },
      body: new URLSearchParams({ ...defaults, crop: 'true', crop_margin: '10px', bg_color: 'green', image_file_b64: fx.bytes.toString('base64') }).toString(),
    });
    expect(b64.headers.get('content-type')).toBe('image/jpeg');
    await ok(b64);
    expect(Number(b64.headers.get('x-width'))).toBeLessThan(320);
  }, 60_000);

  it('Ruby gem: multipart image_file with size=auto and format=zip (save_bandwidth upgrade of png)', async () => {
    const fd = new FormData();
    fd.append('size', 'auto');
    fd.append('format', 'zip');
    fd.append('image_file', blob(fx.bytes), 'image.jpg');
    const res = await fetch(`${s.url}/v1.0/removebg`, { method: 'POST', headers: { 'X-Api-Key': TEST_KEY, 'User-Agent': 'remove-bg-ruby-2.0.0' }, body: fd });
    expect(res.headers.get('content-type')).toBe('application/zip');
    const files = unzipSync(await ok(res));
    const [c, a] = await Promise.all([sharp(files['color.jpg']!).metadata(), sharp(files['alpha.png']!).metadata()]);
    expect([c.width, c.height]).toEqual([a.width, a.height]);
    expect(res.headers.get('x-type')).toBe('other');
  }, 60_000);

  it('npm remove.bg: JSON body with image_file_b64, Accept: application/json → {"data":{…}} plus the X-* headers', async () => {
    const res = await fetch(`${s.url}/v1.0/removebg`, {
      method: 'POST',
      headers: { 'X-Api-Key': TEST_KEY, Accept: 'application/json', 'Content-Type': 'application/json' },
      body: JSON.stringify({ image_file_b64: fx.bytes.toString('base64'), size: 'regular' }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('x-credits-charged')).toBe('0.25');
    expect(res.headers.get('x-width')).toBe('320');
    expect(res.headers.get('x-height')).toBe('240');
    const body = (await res.json()) as { data: Record<string, unknown> };
    expect(Object.keys(body)).toEqual(['data']);
    expect(Object.keys(body.data).sort()).toEqual(['foreground_height', 'foreground_left', 'foreground_top', 'foreground_width', 'result_b64']);
    const img = await decodeRgba(Buffer.from(body.data.result_b64 as string, 'base64'));
    const box = subjectBox(alphaOf(img.data), img.width, img.height);
    expect(body.data.foreground_left).toBe(box.left);
    expect(body.data.foreground_top).toBe(box.top);
    expect(body.data.foreground_width).toBe(box.width);
    expect(body.data.foreground_height).toBe(box.height);
    expect(res.headers.get('x-foreground-width')).toBe(String(box.width));
    expect(res.headers.get('x-foreground-top')).toBe(String(box.top));
  }, 60_000);

  it('raw bytes without Accept, with */* and with image/*; JSON only when application/json is preferred', async () => {
    for (const accept of [undefined, '*/*', 'image/*', 'image/png, application/json;q=0.5']) {
      const res = await post({ image_file: blob(fx.bytes) }, { ...KEY, ...(accept ? { Accept: accept } : {}) });
      expect(res.headers.get('content-type'), accept).toBe('image/png');
      await ok(res);
      expect(res.headers.get('retry-after')).toBeNull();
    }
    const res = await post({ image_file: blob(fx.bytes) }, { ...KEY, Accept: 'application/json; charset=utf-8' });
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(Object.keys(((await res.json()) as { data: object }).data)).toContain('result_b64');
  }, 60_000);

  it('accepts a base64 image under image_file in a JSON body (seen in drop-in servers\' examples)', async () => {
    const res = await fetch(`${s.url}/v1.0/removebg`, {
      method: 'POST',
      headers: { ...KEY, 'Content-Type': 'application/json' },
      body: JSON.stringify({ image_file: `data:image/jpeg;base64,${fx.bytes.toString('base64')}`, format: 'jpg' }),
    });
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    await ok(res);
  }, 60_000);

  it('JSON body with image_url and JSON booleans/numbers (crop: false, shadow_opacity: 50)', async () => {
    const res = await fetch(`${s.url}/v1.0/removebg`, {
      method: 'POST',
      headers: { 'x-api-key': TEST_KEY, 'Content-Type': 'application/json' },
      body: JSON.stringify({ image_url: `${imagesUrl}/subject.jpg`, crop: false, size: 'preview', semitransparency: true, format: 'png' }),
    });
    const img = await decodeRgba(await ok(res));
    expect(img.width).toBe(320);
  }, 60_000);

  it('Ruby gem / PHP: application/x-www-form-urlencoded with image_url', async () => {
    const res = await fetch(`${s.url}/v1.0/removebg`, {
      method: 'POST',
      headers: { 'X-Api-Key': TEST_KEY, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ image_url: `${imagesUrl}/subject.jpg`, size: 'auto', type: 'auto', format: 'png' }).toString(),
    });
    expect(res.headers.get('content-type')).toBe('image/png');
    const img = await decodeRgba(await ok(res));
    expect(iou(alphaOf(img.data), fx.mask)).toBeGreaterThan(0.9);
  }, 60_000);

  it('url-encoded body with image_file_b64 (PHP mtownsend/remove-bg base64 shape)', async () => {
    const res = await fetch(`${s.url}/v1.0/removebg`, {
      method: 'POST',
      headers: { 'X-Api-Key': TEST_KEY, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ image_file_b64: fx.bytes.toString('base64'), size: 'small' }).toString(),
    });
    await ok(res);
    expect(res.headers.get('x-credits-charged')).toBe('0.25');
  }, 60_000);

  it('answers under /compat/removebg/ too, and reads Authorization: Bearer', async () => {
    const res = await post({ image_file: blob(fx.bytes) }, { Authorization: `Bearer ${TEST_KEY}` }, '/compat/removebg/v1.0/removebg');
    await ok(res);
    expect(res.headers.get('x-width')).toBe('320');
  }, 60_000);
});

describe('output: format, channels, zip, headers', () => {
  it('zip holds exactly color.jpg (RGB) and alpha.png (grey matte, white = subject)', async () => {
    const res = await post({ image_file: blob(fx.bytes), format: 'zip' });
    expect(res.headers.get('content-type')).toBe('application/zip');
    await expectDocumented(res, 'removebgRemoveBackground');
    const files = unzipSync(await ok(res));
    expect(Object.keys(files).sort()).toEqual(['alpha.png', 'color.jpg']);
    const color = await sharp(files['color.jpg']!).metadata();
    expect([color.format, color.channels, color.width, color.height]).toEqual(['jpeg', 3, 320, 240]);
    const alpha = await sharp(files['alpha.png']!).metadata();
    expect([alpha.format, alpha.channels, alpha.width]).toEqual(['png', 1, 320]);
    const matte = await sharp(files['alpha.png']!).extractChannel(0).raw().toBuffer();
    expect(iou(new Uint8Array(matte), fx.mask)).toBeGreaterThan(0.9);
  }, 60_000);

  it('format auto: PNG for a cut-out, JPG with an opaque bg_color; webp and jpg on request', async () => {
    const auto = await post({ image_file: blob(fx.bytes) });
    expect(auto.headers.get('content-type')).toBe('image/png');
    await ok(auto);
    const withBg = await post({ image_file: blob(fx.bytes), bg_color: 'fff' });
    expect(withBg.headers.get('content-type')).toBe('image/jpeg');
    await ok(withBg);
    const webp = await post({ image_file: blob(fx.bytes), format: 'webp' });
    expect(webp.headers.get('content-type')).toBe('image/webp');
    expect((await decodeRgba(await ok(webp))).format).toBe('webp');
    const jpg = await post({ image_file: blob(fx.bytes), format: 'jpg' });
    expect(jpg.headers.get('content-type')).toBe('image/jpeg');
    const img = await decodeRgba(await ok(jpg));
    expect(pixel(img, 2, 2).slice(0, 3).every((v) => v > 245)).toBe(true);
  }, 60_000);

  it('channels=alpha gives the grey matte', async () => {
    const res = await post({ image_file: blob(fx.bytes), channels: 'alpha' });
    const bytes = await ok(res);
    const meta = await sharp(bytes).metadata();
    expect(meta.channels).toBe(1);
    const matte = await sharp(bytes).extractChannel(0).raw().toBuffer();
    expect(iou(new Uint8Array(matte), fx.mask)).toBeGreaterThan(0.9);
  }, 60_000);

  it('bg_color in every documented form: 6-digit, 3-digit, 8-digit with alpha, 4-digit with alpha, colour name', async () => {
    const cases: [string, number[], number][] = [
      ['81d4fa', [0x81, 0xd4, 0xfa], 255],
      ['f00', [255, 0, 0], 255],
      ['00ff0080', [0, 255, 0], 128],
      ['00f8', [0, 0, 255], 136],
      ['red', [255, 0, 0], 255],
      ['#00ff00', [0, 255, 0], 255],
    ];
    for (const [color, rgb, alpha] of cases) {
      const res = await post({ image_file: blob(fx.bytes), bg_color: color, format: 'png' });
      const img = await decodeRgba(await ok(res));
      const p = pixel(img, 3, 3);
      for (let i = 0; i < 3; i++) expect(Math.abs(p[i]! - rgb[i]!), `${color} channel ${i}`).toBeLessThanOrEqual(2);
      expect(Math.abs(p[3]! - alpha), color).toBeLessThanOrEqual(2);
    }
    await expectError(await post({ image_file: blob(fx.bytes), bg_color: 'notacolour' }), 400, 'invalid_parameter');
  }, 60_000);

  it('size: aliases, caps and credit cost (preview 0.25, medium/hd/full/4k/50MP 1, auto by size)', async () => {
    const preview = await post({ image_file: blob(big.bytes), size: 'preview', format: 'png' });
    const p = await decodeRgba(await ok(preview));
    expect(p.width * p.height).toBeLessThanOrEqual(250_000);
    expect(p.width).toBeGreaterThan(560);
    expect(preview.headers.get('x-credits-charged')).toBe('0.25');
    expect(preview.headers.get('x-width')).toBe(String(p.width));
    for (const size of ['full', '4k', '50MP', 'medium', 'hd', 'auto']) {
      const res = await post({ image_file: blob(big.bytes), size });
      await ok(res);
      expect(res.headers.get('x-credits-charged'), size).toBe('1');
      expect(res.headers.get('x-width'), size).toBe('640');
    }
    for (const size of ['small', 'regular']) {
      const res = await post({ image_file: blob(big.bytes), size });
      await ok(res);
      expect(res.headers.get('x-credits-charged'), size).toBe('0.25');
    }
    await expectError(await post({ image_file: blob(big.bytes), size: 'huge' }), 400, 'invalid_parameter');
  }, 120_000);

  it('type and type_level drive X-Type; type_level=none omits it', async () => {
    const cases: [Record<string, string>, string | null][] = [
      [{ type: 'person' }, 'person'],
      [{ type: 'product', type_level: '1' }, 'product'],
      [{ type: 'transportation', type_level: '1' }, 'car'],
      [{ type: 'transportation', type_level: '2' }, 'transportation'],
      [{ type: 'graphic', type_level: 'latest' }, 'graphics'],
      [{ type: 'animal', type_level: 'none' }, null],
      [{}, 'other'],
    ];
    for (const [fields, xType] of cases) {
      const res = await post({ image_file: blob(fx.bytes), ...fields });
      await ok(res);
      expect(res.headers.get('x-type'), JSON.stringify(fields)).toBe(xType);
    }
    await expectError(await post({ image_file: blob(fx.bytes), type: 'spaceship' }), 400, 'invalid_parameter');
    await expectError(await post({ image_file: blob(fx.bytes), type_level: '3' }), 400, 'invalid_parameter');
  }, 60_000);

  it('semitransparency=false leaves only opaque or clear pixels', async () => {
    const soft = alphaOf((await decodeRgba(await ok(await post({ image_file: blob(fx.bytes) })))).data);
    expect(soft.some((a) => a > 0 && a < 255)).toBe(true);
    const hard = alphaOf((await decodeRgba(await ok(await post({ image_file: blob(fx.bytes), semitransparency: 'false' })))).data);
    expect(hard.every((a) => a === 0 || a === 255)).toBe(true);
  }, 60_000);
});

describe('size caps', () => {
  it('full caps JPG/WebP/ZIP at 25 MP and PNG at 10 MP; 50MP at 50 MP; never upscales', () => {
    expect(outputSize(8000, 6000, { size: 'full', maxPixels: 25_000_000 }, 100_000_000)).toMatchObject({ width: 5773, height: 4330 });
    const png = outputSize(8000, 6000, { size: 'full', maxPixels: 10_000_000 }, 100_000_000);
    expect(png.width * png.height).toBeLessThanOrEqual(10_000_000);
    expect(png.width * png.height).toBeGreaterThan(9_990_000);
    expect(outputSize(8000, 6000, { size: 'full', maxPixels: 50_000_000 }, 100_000_000)).toMatchObject({ width: 8000, height: 6000, scale: 1 });
    expect(outputSize(300, 200, { size: 'full', maxPixels: 10_000_000 }, 100_000_000)).toMatchObject({ width: 300, height: 200, scale: 1 });
  });
});

describe('foreground coordinates', () => {
  it('are in result pixels, but relative to the input when the input exceeds 25 MP', () => {
    const job = makeJob({ source: { kind: 'bytes', bytes: new Uint8Array(1) } });
    const result = (input: [number, number], size: [number, number]) =>
      ({ width: size[0], height: size[1], input: { width: input[0], height: input[1], type: 'jpeg' }, foreground: { left: 10, top: 20, width: 100, height: 50 } }) as unknown as RemovalResult;
    expect(foregroundOf(result([4000, 3000], [577, 433]), job)).toEqual({ left: 10, top: 20, width: 100, height: 50 });
    expect(foregroundOf(result([8000, 6000], [4000, 3000]), job)).toEqual({ left: 20, top: 40, width: 200, height: 100 });
  });
});

describe('geometry: roi, crop, crop_margin, scale, position', () => {
  it('roi keeps the subject inside the region only (percent and px)', async () => {
    for (const roi of ['0% 0% 50% 100%', '0px 0px 160px 240px']) {
      const img = await decodeRgba(await ok(await post({ image_file: blob(fx.bytes), roi })));
      const a = alphaOf(img.data);
      let right = 0;
      for (let y = 0; y < 240; y++) for (let x = 161; x < 320; x++) right += a[y * 320 + x]!;
      expect(right, roi).toBe(0);
      expect(a[150 * 320 + 140]!, roi).toBeGreaterThan(200);
    }
    await expectError(await post({ image_file: blob(fx.bytes), roi: '0 0 50%' }), 400, 'invalid_parameter');
    await expectError(await post({ image_file: blob(fx.bytes), roi: '50% 0% 10% 100%' }), 400, 'invalid_parameter');
  }, 60_000);

  it('crop trims to the subject; crop_margin adds px or % per side (1, 2 or 4 values)', async () => {
    const plain = await post({ image_file: blob(fx.bytes), crop: 'true' });
    await ok(plain);
    const w = Number(plain.headers.get('x-width'));
    const h = Number(plain.headers.get('x-height'));
    expect(w).toBeLessThan(200);
    expect(h).toBeLessThan(240);
    const dims = async (crop_margin: string) => {
      const res = await post({ image_file: blob(fx.bytes), crop: 'true', crop_margin });
      await ok(res);
      return [Number(res.headers.get('x-width')), Number(res.headers.get('x-height'))];
    };
    expect(await dims('10px')).toEqual([w + 20, Math.min(240, h + 20)]);
    expect(await dims('5px 20px')).toEqual([w + 40, Math.min(240, h + 10)]);
    expect(await dims('0px 10px 0px 0px')).toEqual([w + 10, h]);
    const [pw] = await dims('10%');
    expect(Math.abs(pw! - (w + 2 * Math.round(w * 0.1)))).toBeLessThanOrEqual(1);
    // Without crop=true the margin has no effect.
    const uncropped = await post({ image_file: blob(fx.bytes), crop_margin: '30px' });
    await ok(uncropped);
    expect(uncropped.headers.get('x-width')).toBe('320');
    // Each side is capped at 50 % of the subject (or 500 px), clamped rather than refused.
    const [w50] = await dims('0px 50% 0px 0px');
    expect(w50).toBe(w + Math.round(w * 0.5));
    expect(await dims('0px 80% 0px 0px')).toEqual([w50, h]);
    await expectError(await post({ image_file: blob(fx.bytes), crop: 'true', crop_margin: '1px 2px 3px' }), 400, 'invalid_parameter');
    await expectError(await post({ image_file: blob(fx.bytes), crop: 'maybe' }), 400, 'invalid_parameter');
  }, 60_000);

  it('crop_margin in px is capped at 500 per side (on a canvas wide enough to show it)', async () => {
    // 2400×300: the figure's right edge is near x = 1585, so 600 px would still fit inside the image.
    const wide = await subjectFixture({ width: 2400, height: 300 });
    const width = async (crop_margin: string) => {
      const res = await post({ image_file: blob(wide.bytes), size: 'full', format: 'jpg', crop: 'true', crop_margin });
      await ok(res);
      return Number(res.headers.get('x-width'));
    };
    const w = await width('0px');
    expect(await width('0px 400px 0px 0px')).toBe(w + 400);
    expect(await width('0px 600px 0px 0px')).toBe(w + 500);
  }, 60_000);

  it('scale shrinks the subject and centres it; position places it', async () => {
    const full = await decodeRgba(await ok(await post({ image_file: blob(fx.bytes) })));
    const fullBox = subjectBox(alphaOf(full.data), 320, 240);
    const res = await post({ image_file: blob(fx.bytes), scale: '50%' });
    const img = await decodeRgba(await ok(res));
    expect([img.width, img.height]).toEqual([320, 240]);
    const box = subjectBox(alphaOf(img.data), 320, 240);
    // Fit into 50 % of the canvas: the box's height is the binding side here.
    expect(Math.abs(box.height - 120)).toBeLessThanOrEqual(2);
    expect(box.height).toBeLessThan(fullBox.height);
    expect(Math.abs(box.left + box.width / 2 - 160)).toBeLessThanOrEqual(2);
    expect(Math.abs(box.top + box.height / 2 - 120)).toBeLessThanOrEqual(2);
    expect(res.headers.get('x-foreground-height')).toBe(String(box.height));

    const corner = subjectBox(alphaOf((await decodeRgba(await ok(await post({ image_file: blob(fx.bytes), scale: '40%', position: '0% 0%' })))).data), 320, 240);
    expect(corner.left).toBeLessThanOrEqual(1);
    expect(corner.top).toBeLessThanOrEqual(1);
    const right = subjectBox(alphaOf((await decodeRgba(await ok(await post({ image_file: blob(fx.bytes), position: '100%' })))).data), 320, 240);
    expect(right.left + right.width).toBeGreaterThanOrEqual(319);
    expect(right.top + right.height).toBeGreaterThanOrEqual(239);
    expect(right.width).toBe(fullBox.width);
    await expectError(await post({ image_file: blob(fx.bytes), scale: '5%' }), 400, 'invalid_parameter');
    await expectError(await post({ image_file: blob(fx.bytes), position: 'left' }), 400, 'invalid_parameter');
  }, 60_000);
});

describe('shadows', () => {
  /** Mean brightness of a band just right of the subject and of one just below it, on a white jpg. */
  async function shadowBands(fields: Record<string, string>) {
    const img = await decodeRgba(await ok(await post({ image_file: blob(fx.bytes), format: 'jpg', ...fields })));
    const cut = alphaOf((await decodeRgba(await ok(await post({ image_file: blob(fx.bytes), format: 'png' })))).data);
    const box = subjectBox(cut, 320, 240);
    const mean = (x0: number, x1: number, y0: number, y1: number) => {
      let sum = 0, n = 0;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
        if (cut[y * 320 + x]! > 8) continue;
        const p = pixel(img, x, y);
        sum += (p[0]! + p[1]! + p[2]!) / 3;
        n++;
      }
      return n ? sum / n : 255;
    };
    const bottom = box.top + box.height;
    return {
      right: mean(box.left + box.width, Math.min(320, box.left + box.width + 8), box.top + Math.round(box.height / 2), bottom),
      below: mean(box.left + 10, box.left + box.width - 10, bottom, Math.min(240, bottom + 6)),
    };
  }

  it('no shadow by default: white beside the subject', async () => {
    const none = await shadowBands({});
    expect(none.right).toBeGreaterThan(245);
  }, 60_000);

  it('shadow_type=drop casts visibly dark pixels beside the subject; shadow_opacity scales it', async () => {
    const strong = await shadowBands({ shadow_type: 'drop', shadow_opacity: '90' });
    expect(strong.right).toBeLessThan(200);
    const faint = await shadowBands({ shadow_type: 'drop', shadow_opacity: '20' });
    expect(faint.right).toBeGreaterThan(strong.right + 20);
    expect(faint.right).toBeLessThan(250);
    const zero = await shadowBands({ shadow_type: 'drop', shadow_opacity: '0' });
    expect(zero.right).toBeGreaterThan(245);
  }, 60_000);

  it('add_shadow=true (deprecated) gives the car shadow under the subject; per-type shadow_type[person]=3D works', async () => {
    const car = await shadowBands({ add_shadow: 'true', type: 'car' });
    expect(car.below).toBeLessThan(235);
    const person = await shadowBands({ type: 'person', 'shadow_type[person]': '3D' });
    expect(Math.min(person.right, person.below)).toBeLessThan(235);
    // shadow_type=auto for a product is a drop shadow.
    const product = await shadowBands({ type: 'product', shadow_type: 'auto' });
    expect(product.right).toBeLessThan(220);
    // add_shadow only ever applied to cars.
    const notCar = await shadowBands({ add_shadow: 'true', type: 'person' });
    expect(notCar.right).toBeGreaterThan(245);
    await expectError(await post({ image_file: blob(fx.bytes), shadow_type: 'neon' }), 400, 'invalid_parameter');
    await expectError(await post({ image_file: blob(fx.bytes), shadow_type: 'drop', shadow_opacity: '150' }), 400, 'invalid_parameter');
  }, 60_000);

  it('JSON bodies take per-type shadows as objects: {"shadow_type":{"car":"car"},"shadow_opacity":{"car":90}}', async () => {
    const res = await fetch(`${s.url}/v1.0/removebg`, {
      method: 'POST',
      headers: { ...KEY, 'Content-Type': 'application/json' },
      body: JSON.stringify({ image_file_b64: fx.bytes.toString('base64'), type: 'car', format: 'jpg', shadow_type: { car: 'car' }, shadow_opacity: { car: 90 } }),
    });
    const img = await decodeRgba(await ok(res));
    const plain = await decodeRgba(await ok(await post({ image_file: blob(fx.bytes), format: 'jpg' })));
    let darker = 0;
    for (let i = 0; i < img.data.length; i += 4) if (img.data[i]! < plain.data[i]! - 30) darker++;
    expect(darker).toBeGreaterThan(100);
  }, 60_000);

  it('the zip carries the shadow in its matte', async () => {
    const files = unzipSync(await ok(await post({ image_file: blob(fx.bytes), format: 'zip', shadow_type: 'drop', shadow_opacity: '90' })));
    const matte = await sharp(files['alpha.png']!).extractChannel(0).raw().toBuffer();
    const plain = await sharp(unzipSync(await ok(await post({ image_file: blob(fx.bytes), format: 'zip' })))['alpha.png']!).extractChannel(0).raw().toBuffer();
    let extra = 0;
    for (let i = 0; i < matte.length; i++) if (matte[i]! > plain[i]! + 40) extra++;
    expect(extra).toBeGreaterThan(200);
  }, 60_000);
});

describe('backgrounds', () => {
  it('bg_image_url is fetched (SSRF-safe fetcher; loopback allowed in this test) and cover-fitted', async () => {
    const res = await post({ image_file: blob(fx.bytes), bg_image_url: `${imagesUrl}/blue.png` });
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    const img = await decodeRgba(await ok(res));
    const [r, g, b] = pixel(img, 2, 2);
    expect(b).toBeGreaterThan(230);
    expect(r! + g!).toBeLessThan(30);
    // The subject stays on top.
    const [sr, , sb] = pixel(img, 160, 150);
    expect(sr).toBeGreaterThan(sb! + 20);
  }, 60_000);

  it('bg_image_file (multipart) works; a bad bg_image_url and mixed bg_* are 400', async () => {
    const fd = new FormData();
    fd.append('bg_image_file', blob(green), 'green.jpg');
    fd.append('image_file', blob(fx.bytes), 'subject.jpg');
    fd.append('format', 'png');
    const res = await fetch(`${s.url}/v1.0/removebg`, { method: 'POST', headers: KEY, body: fd });
    const img = await decodeRgba(await ok(res));
    const [r, g, b, a] = pixel(img, 2, 2);
    expect(a).toBe(255);
    expect(g).toBeGreaterThan(180);
    expect(r! + b!).toBeLessThan(40);
    await expectError(await post({ image_file: blob(fx.bytes), bg_image_url: `${imagesUrl}/missing.png` }), 400, 'failed_to_read_image');
    await expectError(await post({ image_file: blob(fx.bytes), bg_color: 'fff', bg_image_url: `${imagesUrl}/blue.png` }), 400, 'invalid_parameter');
  }, 60_000);
});

describe('errors', () => {
  it('403 for a missing or invalid key, in the errors envelope with a title', async () => {
    const missing = await expectError(await post({ image_file: blob(fx.bytes) }, {}), 403, 'auth_failed');
    expect(missing.title).toBe('Missing API Key');
    const invalid = await expectError(await post({ image_file: blob(fx.bytes) }, { 'X-Api-Key': 'nope' }), 403, 'auth_failed');
    expect(invalid.title).toBe('API Key invalid');
    await expectError(await fetch(`${s.url}/v1.0/account`, { headers: { 'X-Api-Key': 'nope' } }), 403, 'auth_failed');
    await expectError(await fetch(`${s.url}/v1.0/improve`, { method: 'POST' }), 403, 'auth_failed');
  });

  it('403 auth_failed for a key whose subscription is not active', async () => {
    const secret = 'bge_live_removebg_canceled_key_000000000';
    await s.gw.stores.keys.add(keyRecord(secret, { subscriptionStatus: 'canceled' }, { plan: 'Business' }));
    const e = await expectError(await post({ image_file: blob(fx.bytes) }, { 'X-Api-Key': secret }), 403, 'auth_failed');
    expect(e.title).toBe('API Key not allowed');
    await expectError(await fetch(`${s.url}/v1.0/account`, { headers: { 'X-Api-Key': secret } }), 403, 'auth_failed');
  });

  it('402 insufficient_credits, and size=auto falls back to a preview when less than a credit is left', async () => {
    const broke = await addKey('Broke');
    await expectError(await post({ image_file: blob(fx.bytes) }, broke), 402, 'insufficient_credits');
    const tiny = await addKey('Tiny');
    const first = await post({ image_file: blob(big.bytes), size: 'preview' }, tiny);
    await ok(first);
    expect(first.headers.get('x-credits-charged')).toBe('0.25');
    const auto = await post({ image_file: blob(big.bytes), size: 'auto' }, tiny);
    await ok(auto);
    expect(auto.headers.get('x-credits-charged')).toBe('0.25');
    expect(Number(auto.headers.get('x-width')) * Number(auto.headers.get('x-height'))).toBeLessThanOrEqual(250_000);
    await expectError(await post({ image_file: blob(big.bytes), size: 'full' }, tiny), 402, 'insufficient_credits');
    const account = (await (await fetch(`${s.url}/v1.0/account`, { headers: tiny })).json()) as { data: { attributes: { credits: { total: number } } } };
    expect(account.data.attributes.credits.total).toBe(0.5);
  }, 60_000);

  it('429 with Retry-After and X-RateLimit-* when the rate limit is passed', async () => {
    const slow = await addKey('Slow');
    const first = await post({ image_file: blob(fx.bytes) }, slow);
    await ok(first);
    expect(first.headers.get('x-ratelimit-limit')).toBe('1');
    expect(first.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(Number(first.headers.get('x-ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000);
    const res = await post({ image_file: blob(fx.bytes) }, slow);
    await expectError(res, 429, 'rate_limit_exceeded');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(res.headers.get('x-ratelimit-remaining')).toBe('0');
  }, 60_000);

  it('400s: no image, two images, unreadable image, file too large, unfetchable image_url, bad JSON', async () => {
    await expectError(await post({ size: 'preview' }), 400, 'invalid_parameter');
    await expectError(await post({ image_file: blob(fx.bytes), image_url: `${imagesUrl}/subject.jpg` }), 400, 'invalid_parameter');
    await expectError(await post({ image_file: blob(Buffer.from('definitely not an image')) }), 400, 'failed_to_read_image');
    const tooLarge = await expectError(await post({ image_file: blob(Buffer.alloc(3 * MB, 1)) }), 400, 'file_too_large');
    expect(tooLarge.title).toBe('File exceeds limit of 2MB');
    await expectError(await post({ image_url: `${imagesUrl}/missing.jpg` }), 400, 'failed_to_read_image');
    await expectError(await post({ image_url: 'http://169.254.169.254/latest/meta-data' }), 400, 'invalid_parameter');
    await expectError(
      await fetch(`${s.url}/v1.0/removebg`, { method: 'POST', headers: { ...KEY, 'Content-Type': 'application/json' }, body: '{"image_url":' }),
      400,
      'invalid_parameter',
    );
    await expectError(await post({ image_file: blob(fx.bytes), format: 'gif' }), 400, 'invalid_parameter');
    await expectError(await post({ image_file: blob(fx.bytes), channels: 'rgb' }), 400, 'invalid_parameter');
  }, 60_000);

  it('5xx in the same envelope: 503 unknown_error with Retry-After while shutting down', async () => {
    s.gw.state.shuttingDown = true;
    try {
      const res = await post({ image_file: blob(fx.bytes) });
      await expectError(res, 503, 'unknown_error');
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    } finally {
      s.gw.state.shuttingDown = false;
    }
  });

  it('405 for a wrong method on remove.bg paths, 404 for unknown paths under /compat/removebg/, both in the errors envelope', async () => {
    const get = await fetch(`${s.url}/v1.0/removebg`, { headers: KEY });
    await expectError(get, 405, 'method_not_allowed');
    expect(get.headers.get('allow')).toBe('POST');
    await expectError(await fetch(`${s.url}/v1.0/account`, { method: 'POST', headers: KEY }), 405, 'method_not_allowed');
    await expectError(await fetch(`${s.url}/compat/removebg/v1.0/nothing`, { headers: KEY }), 404, 'not_found');
  });

  it('400 unknown_foreground when nothing is left to cut out, with the credits given back', async () => {
    const tiny = await addKey('Tiny');
    const res = await post({ image_file: blob(fx.bytes), roi: '0px 0px 4px 4px', size: 'full' }, tiny);
    const e = await expectError(res, 400, 'unknown_foreground');
    expect(e.title).toBe('Could not identify foreground in image.');
    const account = (await (await fetch(`${s.url}/v1.0/account`, { headers: tiny })).json()) as { data: { attributes: { credits: { total: number } } } };
    expect(account.data.attributes.credits.total).toBe(1);
  }, 60_000);
});

describe('GET /v1.0/account and POST /v1.0/improve', () => {
  it('account has exactly the documented keys', async () => {
    const tiny = await addKey('Tiny');
    for (const p of ['/v1.0/account', '/compat/removebg/v1.0/account']) {
      const res = await fetch(`${s.url}${p}`, { headers: tiny });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json');
      const body = (await expectMatchesSpec(res, 'removebgAccount')) as { data: { attributes: { credits: Record<string, number>; api: Record<string, unknown> } } };
      expect(Object.keys(body)).toEqual(['data']);
      expect(Object.keys(body.data)).toEqual(['attributes']);
      expect(Object.keys(body.data.attributes).sort()).toEqual(['api', 'credits']);
      expect(Object.keys(body.data.attributes.credits).sort()).toEqual(['enterprise', 'payg', 'subscription', 'total']);
      expect(Object.keys(body.data.attributes.api).sort()).toEqual(['free_calls', 'sizes']);
      expect(body.data.attributes.credits).toEqual({ total: 1, subscription: 1, payg: 0, enterprise: 0 });
      expect(body.data.attributes.api).toEqual({ free_calls: 0, sizes: 'all' });
    }
    const unlimited = (await (await fetch(`${s.url}/v1.0/account`, { headers: KEY })).json()) as { data: { attributes: { credits: { total: number } } } };
    expect(unlimited.data.attributes.credits.total).toBeGreaterThan(1000);
  });

  it('improve accepts one image (file, b64 or url) with image_filename and tag, answers {"id"} and keeps nothing', async () => {
    const res = await post({ image_file: blob(fx.bytes), image_filename: 'bad-result.jpg', tag: 'hair' }, KEY, '/v1.0/improve');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const body = (await res.json()) as Record<string, string>;
    expect(Object.keys(body)).toEqual(['id']);
    expect(body.id).toMatch(/^[0-9a-f-]{36}$/);
    const json = await fetch(`${s.url}/v1.0/improve`, {
      method: 'POST',
      headers: { ...KEY, 'Content-Type': 'application/json' },
      body: JSON.stringify({ image_url: `${imagesUrl}/subject.jpg`, tag: 'x' }),
    });
    expect(json.status).toBe(200);
    expect(((await json.json()) as { id: string }).id).not.toBe(body.id);
    await expectError(await post({ tag: 'x' }, KEY, '/v1.0/improve'), 400, 'invalid_parameter');
    const prefixed = await post({ image_file_b64: fx.bytes.toString('base64') }, KEY, '/compat/removebg/v1.0/improve');
    expect(prefixed.status).toBe(200);
    expect(Object.keys((await prefixed.json()) as object)).toEqual(['id']);
  });
});
