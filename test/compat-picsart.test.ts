// test/compat-picsart.test.ts
// Picsart Remove Background (compat-apis §5, §10) over real HTTP with the real model: result URLs served by the
// gateway without a key until they expire, image_id reuse, mask output, stroke/shadow/canvas effects, every error.
import { execFile } from 'node:child_process';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import sharp, { type Metadata } from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { keyRecord } from '../src/keys.js';
import { iou, subjectFixture, type Fixture } from './helpers/fixtures.js';
import { expectMatchesSpec } from './helpers/openapi.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';

const run = promisify(execFile);
const TTL = 600;
let s: TestServer;
let fx: Fixture;
let bg: Buffer;
let images: Server;
let imageBase: string;
const KEY = { 'X-Picsart-API-Key': TEST_KEY, accept: 'application/json' };

beforeAll(async () => {
  s = await startServer({
    URL_FETCH_ALLOW_HOSTS: '127.0.0.1',
    RESULTS_TTL_SECONDS: String(TTL),
    MAX_UPLOAD_BYTES: String(2 * 1024 * 1024),
    PLANS: JSON.stringify({ Tiny: { monthlyCredits: 1 }, Slow: { rateLimit: 1, rateWindowSeconds: 60 } }),
  });
  fx = await subjectFixture({ width: 320, height: 240 });
  // A background picture of another size and aspect: a blue field with a yellow stripe.
  bg = await sharp({ create: { width: 400, height: 300, channels: 3, background: { r: 20, g: 60, b: 220 } } })
    .composite([{ input: await sharp({ create: { width: 400, height: 30, channels: 3, background: { r: 250, g: 220, b: 0 } } }).png().toBuffer(), top: 0, left: 0 }])
    .png()
    .toBuffer();
  images = createServer((req, res) => {
    const body = req.url?.startsWith('/bg') ? bg : fx.bytes;
    res.writeHead(200, { 'content-type': req.url?.startsWith('/bg') ? 'image/png' : 'image/jpeg' });
    res.end(body);
  });
  await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
  imageBase = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
});
afterAll(async () => {
  vi.useRealTimers();
  await s?.close();
  await new Promise((r) => images?.close(r));
});

interface Success {
  status: string;
  data: { id: string; url: string };
}

function form(fields: [string, string | Blob, string?][]): FormData {
  const fd = new FormData();
  for (const [k, v, name] of fields) {
    if (typeof v === 'string') fd.append(k, v);
    else fd.append(k, v, name ?? 'image.jpg');
  }
  return fd;
}

const jpeg = (bytes: Uint8Array = fx.bytes) => new Blob([bytes], { type: 'image/jpeg' });

function removebg(body: FormData | string, headers: Record<string, string> = KEY, path = '/tools/1.0/removebg') {
  return fetch(`${s.url}${path}`, { method: 'POST', headers, body });
}

async function success(res: Response): Promise<Success> {
  expect(res.status, await res.clone().text()).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  await expectMatchesSpec(res, 'picsartRemoveBackground');
  const body = (await res.json()) as Success;
  expect(Object.keys(body)).toEqual(['status', 'data']);
  expect(body.status).toBe('success');
  expect(Object.keys(body.data)).toEqual(['id', 'url']);
  return body;
}

/** Fetches a result URL the way clients do: no key, Accept of axios. */
async function download(url: string): Promise<Buffer> {
  const res = await fetch(url, { headers: { accept: 'application/json, text/plain, */*' } });
  expect(res.status, url).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

async function cutout(fields: [string, string | Blob, string?][]): Promise<{ body: Success; bytes: Buffer; meta: Metadata; rgba: Buffer }> {
  const body = await success(await removebg(form(fields)));
  const bytes = await download(body.data.url);
  const meta = await sharp(bytes).metadata();
  const rgba = await sharp(bytes).ensureAlpha().raw().toBuffer();
  return { body, bytes, meta, rgba };
}

const alpha = (rgba: Buffer) => new Uint8Array(rgba.length / 4).map((_, i) => rgba[i * 4 + 3]!);

async function expectError(res: Response, status: number, detail?: RegExp, operationId = 'picsartRemoveBackground') {
  expect(res.status, await res.clone().text()).toBe(status);
  await expectMatchesSpec(res, operationId);
  expect(res.headers.get('content-type')).toBe('application/json');
  expect(res.headers.get('x-picsart-correlation-id')).toMatch(/^req_/);
  const body = (await res.json()) as { message: string; detail: string; code?: number };
  expect(typeof body.message).toBe('string');
  expect(body.detail.length).toBeGreaterThan(5);
  if (status === 401) expect(body).toEqual({ code: 401, message: 'Unauthorized', detail: body.detail });
  else expect(Object.keys(body).sort()).toEqual(['detail', 'message']);
  if (detail) expect(body.detail).toMatch(detail);
  return body;
}

/** A request exactly as a bare client writes it: no User-Agent, chunked body (no Content-Length). */
function rawPost(path: string, headers: Record<string, string>, chunks: Buffer[]): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, s.url);
    const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { ...headers, 'transfer-encoding': 'chunked' } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

function multipart(boundary: string, parts: { name: string; value: string | Buffer; filename?: string; type?: string }[]): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    const disp = `form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}`;
    out.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disp}\r\n${p.type ? `Content-Type: ${p.type}\r\n` : ''}\r\n`));
    out.push(typeof p.value === 'string' ? Buffer.from(p.value) : p.value);
    out.push(Buffer.from('\r\n'));
  }
  out.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(out);
}

describe("Picsart's documented examples, pointed at localhost", () => {
  it('the curl sample (image_url, output_type=cutout, format=PNG) returns a result URL fetchable without a key', async () => {
    const { stdout } = await run('curl', [
      '-sS', '-X', 'POST', `${s.url}/tools/1.0/removebg`,
      '-H', 'accept: application/json',
      '-H', `x-picsart-api-key: ${TEST_KEY}`,
      '-H', 'content-type: multipart/form-data',
      '-F', 'output_type=cutout',
      '-F', 'format=PNG',
      '-F', `image_url=${imageBase}/13902645939997000779.jpg`,
      '-w', '\n%{http_code}',
    ]);
    const [json, code] = stdout.trim().split('\n');
    expect(code).toBe('200');
    await expectMatchesSpec(new Response(json, { status: 200, headers: { 'content-type': 'application/json' } }), 'picsartRemoveBackground');
    const body = JSON.parse(json!) as Success;
    expect(body.status).toBe('success');
    expect(body.data.id).toMatch(/^[0-9a-f-]{36}\.png$/);
    expect(body.data.url).toBe(`${s.url}/tools/1.0/results/${body.data.id}`);
    const png = await download(body.data.url);
    const meta = await sharp(png).metadata();
    expect(meta.format).toBe('png');
    expect(meta.channels).toBe(4);
    expect([meta.width, meta.height]).toEqual([fx.width, fx.height]);
    expect(iou(alpha(await sharp(png).ensureAlpha().raw().toBuffer()), fx.mask)).toBeGreaterThan(0.85);
  });

  it('the Node sample (bg_blur, scale=fit, image_url, bg_image_url, format=JPG, output_type) composes on the background image at its size', async () => {
    const { meta, rgba, body } = await cutout([
      ['bg_blur', '0'],
      ['scale', 'fit'],
      ['image_url', `${imageBase}/photo.jpeg`],
      ['bg_image_url', `${imageBase}/bg.png`],
      ['format', 'JPG'],
      ['output_type', 'cutout'],
    ]);
    expect(body.data.id).toMatch(/\.jpg$/);
    expect(meta.format).toBe('jpeg');
    // Picsart: "If left blank, the background is left at its original width/height".
    expect([meta.width, meta.height]).toEqual([400, 300]);
    const px = (x: number, y: number) => [...rgba.subarray((y * 400 + x) * 4, (y * 400 + x) * 4 + 3)];
    // Corners show the background image (yellow stripe on top, blue below); the middle shows the red subject.
    expect(px(5, 5)[1]!).toBeGreaterThan(180);
    expect(px(5, 290)[2]!).toBeGreaterThan(180);
    const centre = px(200, 200);
    expect(centre[0]!).toBeGreaterThan(centre[2]! + 20);
  });
});

describe('request shapes real clients send', () => {
  it('multipart without User-Agent, chunked, image part last, empty-string fields, lower-case header', async () => {
    const boundary = '----picsartBoundary7MA4YWxkTrZu0gW';
    const body = multipart(boundary, [
      { name: 'output_type', value: '' },
      { name: 'bg_color', value: '' },
      { name: 'format', value: 'png' },
      { name: 'size', value: 'auto' }, // sent by Picsart's n8n node; unknown to the API, ignored
      { name: 'image', value: fx.bytes, filename: 'photo.jpg', type: 'image/jpeg' },
    ]);
    const chunks = [body.subarray(0, 100), body.subarray(100, 5000), body.subarray(5000)];
    const res = await rawPost('/tools/1.0/removebg', { 'x-picsart-api-key': TEST_KEY, 'content-type': `multipart/form-data; boundary=${boundary}`, accept: 'application/json' }, chunks);
    expect(res.status, res.body).toBe(200);
    const parsed = JSON.parse(res.body) as Success;
    expect(parsed.data.id).toMatch(/\.png$/);
    expect(res.headers['x-picsart-correlation-id']).toMatch(/^req_/);
    const png = await download(parsed.data.url);
    expect((await sharp(png).metadata()).channels).toBe(4);
  });

  it('JSON body with image_url (the JSON variant) and a base64 data: URI in image_url', async () => {
    const json = await success(await fetch(`${s.url}/tools/1.0/removebg`, { method: 'POST', headers: { ...KEY, 'content-type': 'application/json' }, body: JSON.stringify({ image_url: `${imageBase}/a.jpg`, format: 'WEBP', auto_center: false, stroke_size: null }) }));
    expect(json.data.id).toMatch(/\.webp$/);
    expect((await sharp(await download(json.data.url)).metadata()).format).toBe('webp');
    const dataUri = `data:image/jpeg;base64,${fx.bytes.toString('base64')}`;
    const viaData = await success(await removebg(form([['image_url', dataUri]])));
    expect((await sharp(await download(viaData.data.url)).metadata()).format).toBe('png');
  });

  it('url-encoded bodies with image_url work too', async () => {
    const res = await fetch(`${s.url}/tools/1.0/removebg`, { method: 'POST', headers: { ...KEY, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ image_url: `${imageBase}/b.jpg`, output_type: 'mask' }).toString() });
    await success(res);
  });

  it('answers under /compat/picsart/ too, with result URLs under the same prefix', async () => {
    const body = await success(await removebg(form([['image', jpeg()]]), KEY, '/compat/picsart/tools/1.0/removebg'));
    expect(body.data.url).toBe(`${s.url}/compat/picsart/tools/1.0/results/${body.data.id}`);
    await download(body.data.url);
    const bal = await fetch(`${s.url}/compat/picsart/tools/1.0/balance`, { headers: KEY });
    expect(bal.status).toBe(200);
  });

  it('PUBLIC_BASE_URL, when configured, is the base of data.url', async () => {
    const original = s.gw.config;
    s.gw.config = Object.freeze({ ...original, PUBLIC_BASE_URL: 'https://images.example.test/bg/' });
    try {
      const body = await success(await removebg(form([['image', jpeg()]])));
      expect(body.data.url).toBe(`https://images.example.test/bg/tools/1.0/results/${body.data.id}`);
      await download(`${s.url}/tools/1.0/results/${body.data.id}`);
    } finally {
      s.gw.config = original;
    }
  });
});

describe('outputs and effects', () => {
  it('output_type=mask returns a one-channel mask of the subject', async () => {
    const { meta, bytes, body } = await cutout([['image', jpeg()], ['output_type', 'mask']]);
    expect(body.data.id).toMatch(/\.png$/);
    expect(meta.channels).toBeLessThanOrEqual(2);
    const grey = await sharp(bytes).extractChannel(0).raw().toBuffer();
    expect(iou(new Uint8Array(grey), fx.mask)).toBeGreaterThan(0.85);
  });

  it('stroke_size/stroke_color/stroke_opacity draw a visible outline just outside the subject', async () => {
    const plain = await cutout([['image', jpeg()]]);
    const stroked = await cutout([['image', jpeg()], ['stroke_size', '6'], ['stroke_color', '00ff00'], ['stroke_opacity', '100']]);
    const a0 = alpha(plain.rgba);
    let ring = 0;
    let green = 0;
    for (let i = 0; i < a0.length; i++) {
      if (a0[i]! > 10 || stroked.rgba[i * 4 + 3]! < 200) continue;
      ring++;
      const [r, g, b] = [stroked.rgba[i * 4]!, stroked.rgba[i * 4 + 1]!, stroked.rgba[i * 4 + 2]!];
      if (g > 200 && r < 60 && b < 60) green++;
    }
    expect(ring).toBeGreaterThan(500);
    expect(green / ring).toBeGreaterThan(0.9);
    // Half opacity: the ring is there but half transparent.
    const half = await cutout([['image', jpeg()], ['stroke_size', '6'], ['stroke_color', '#00ff00'], ['stroke_opacity', '50']]);
    const halfRing = [...alpha(half.rgba)].filter((v, i) => a0[i]! <= 10 && v > 100 && v < 160).length;
    expect(halfRing).toBeGreaterThan(500);
  });

  it('shadow=bottom-right puts a dark, translucent shadow below-right of the subject; custom offsets move it', async () => {
    const plain = alpha((await cutout([['image', jpeg()]])).rgba);
    const shadowed = await cutout([['image', jpeg()], ['shadow', 'bottom-right'], ['shadow_opacity', '80'], ['shadow_blur', '0']]);
    const sa = alpha(shadowed.rgba);
    let added = 0;
    let dark = 0;
    for (let i = 0; i < plain.length; i++) {
      if (plain[i]! > 10 || sa[i]! < 60) continue;
      added++;
      if (shadowed.rgba[i * 4]! < 40 && shadowed.rgba[i * 4 + 1]! < 40) dark++;
      expect(sa[i]!).toBeLessThanOrEqual(210); // 80 % opacity, never fully opaque
    }
    expect(added).toBeGreaterThan(200);
    expect(dark / added).toBeGreaterThan(0.9);
    // The shadow lies right of and below the subject: its mass is offset to the bottom-right.
    const centroid = (a: Uint8Array, w: number) => {
      let sx = 0, sy = 0, n = 0;
      for (let i = 0; i < a.length; i++) if (a[i]! > 60) { sx += i % w; sy += Math.floor(i / w); n++; }
      return [sx / n, sy / n];
    };
    const onlyShadow = sa.map((v, i) => (plain[i]! > 10 ? 0 : v));
    const [cx, cy] = centroid(onlyShadow, fx.width);
    const [px, py] = centroid(plain, fx.width);
    expect(cx).toBeGreaterThan(px!);
    expect(cy).toBeGreaterThan(py!);
    const left = alpha((await cutout([['image', jpeg()], ['shadow', 'custom'], ['shadow_offset_x', '-40'], ['shadow_offset_y', '0'], ['shadow_opacity', '80']])).rgba);
    const [lx] = centroid(left.map((v, i) => (plain[i]! > 10 ? 0 : v)), fx.width);
    expect(lx!).toBeLessThan(px!);
  });

  it('bg_width/bg_height make the canvas; scale fit keeps the whole cut-out inside, fill covers it', async () => {
    const fit = await cutout([['image', jpeg()], ['bg_width', '300'], ['bg_height', '300'], ['bg_color', '#ffffff']]);
    expect([fit.meta.width, fit.meta.height]).toEqual([300, 300]);
    // 320×240 fitted into 300×300 is 300×225, centred: white bands of ~37 px above and below.
    const at = (r: Buffer, x: number, y: number) => [...r.subarray((y * 300 + x) * 4, (y * 300 + x) * 4 + 3)];
    expect(at(fit.rgba, 150, 10)).toEqual([255, 255, 255]);
    const fill = await cutout([['image', jpeg()], ['bg_width', '300'], ['bg_height', '300'], ['scale', 'fill'], ['format', 'PNG']]);
    expect([fill.meta.width, fill.meta.height]).toEqual([300, 300]);
    const coverage = (a: Uint8Array) => a.reduce((n, v) => n + (v > 128 ? 1 : 0), 0);
    expect(coverage(alpha(fill.rgba))).toBeGreaterThan(coverage(alpha((await cutout([['image', jpeg()], ['bg_width', '300'], ['bg_height', '300']])).rgba)) * 1.2);
    const wide = await cutout([['image', jpeg()], ['bg_width', '500']]);
    expect([wide.meta.width, wide.meta.height]).toEqual([500, fx.height]);
  });

  it('auto_center moves an off-centre subject to the middle', async () => {
    const off = await subjectFixture({ width: 320, height: 240 });
    // Shift the subject to the left by padding the right side with the same backdrop colour.
    const shifted = await sharp(off.bytes).extend({ right: 160, background: '#e9eef2' }).jpeg().toBuffer();
    const plain = await cutout([['image', jpeg(shifted)]]);
    const centred = await cutout([['image', jpeg(shifted)], ['auto_center', 'true']]);
    const meanX = (a: Uint8Array, w: number) => {
      let sx = 0, n = 0;
      for (let i = 0; i < a.length; i++) if (a[i]! > 128) { sx += i % w; n++; }
      return sx / n;
    };
    expect(meanX(alpha(plain.rgba), 480)).toBeLessThan(200);
    expect(Math.abs(meanX(alpha(centred.rgba), 480) - 240)).toBeLessThan(12);
  });

  it('bg_color (named, #rgb, #rrggbbaa) and an uploaded bg_image with bg_blur', async () => {
    const named = await cutout([['image', jpeg()], ['bg_color', 'blue'], ['format', 'JPG']]);
    const [red, green, blue] = [...named.rgba.subarray(0, 3)];
    expect(red!).toBeLessThan(20);
    expect(green!).toBeLessThan(20);
    expect(blue!).toBeGreaterThan(230);
    const short = await cutout([['image', jpeg()], ['bg_color', '#0f0']]);
    expect([...short.rgba.subarray(0, 4)]).toEqual([0, 255, 0, 255]);
    const translucent = await cutout([['image', jpeg()], ['bg_color', '#ff000080']]);
    expect(translucent.rgba[3]!).toBeGreaterThan(110);
    expect(translucent.rgba[3]!).toBeLessThan(145);
    const blurred = await cutout([['image', jpeg()], ['bg_image', new Blob([bg], { type: 'image/png' }), 'bg.png'], ['bg_blur', '40'], ['format', 'PNG']]);
    const sharpBg = await cutout([['image', jpeg()], ['bg_image', new Blob([bg], { type: 'image/png' }), 'bg.png']]);
    // At the stripe's edge (y = 30) the blurred background mixes yellow into blue; the sharp one does not.
    const g = (r: Buffer, x: number, y: number) => r[(y * 400 + x) * 4 + 1]!;
    expect(g(sharpBg.rgba, 5, 40)).toBeLessThan(80);
    expect(g(blurred.rgba, 5, 40)).toBeGreaterThan(g(sharpBg.rgba, 5, 40) + 15);
  });

  it('image_id reuses a result issued earlier to the same key; other keys and unknown ids get 404', async () => {
    const first = await cutout([['image', jpeg()], ['output_type', 'cutout']]);
    const again = await cutout([['image_id', first.body.data.id], ['bg_color', '#00ff00'], ['format', 'JPG']]);
    expect([again.meta.width, again.meta.height]).toEqual([fx.width, fx.height]);
    expect(again.rgba[1]!).toBeGreaterThan(200); // the green background went in behind the reused cut-out
    // The whole result URL works as an id too, and bg_image_id takes a result as the background.
    const byUrl = await cutout([['image_id', first.body.data.url], ['format', 'PNG']]);
    expect(byUrl.meta.channels).toBe(4);
    const onBg = await cutout([['image', jpeg()], ['bg_image_id', again.body.data.id]]);
    expect([onBg.meta.width, onBg.meta.height]).toEqual([fx.width, fx.height]);
    expect(onBg.rgba[1]!).toBeGreaterThan(200); // the green of the earlier result now fills the corners
    expect(onBg.rgba[3]!).toBe(255);
    const other = 'bge_live_picsart_other_owner_key_000000';
    await s.gw.stores.keys.add(keyRecord(other, {}, { plan: 'Business' }));
    await expectError(await removebg(form([['image_id', first.body.data.id]]), { 'X-Picsart-API-Key': other }), 404, /image_id/);
    await expectError(await removebg(form([['image_id', '00000000-0000-0000-0000-000000000000.png']])), 404, /image_id/);
  });
});

describe('result URLs', () => {
  it('are served without a key, and expire after RESULTS_TTL_SECONDS with a Picsart 404', async () => {
    const body = await success(await removebg(form([['image', jpeg()]])));
    const res = await fetch(body.data.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + (TTL + 5) * 1000);
      await expectError(await fetch(body.data.url), 404, /expired/, 'picsartResult');
    } finally {
      vi.useRealTimers();
    }
    await expectError(await fetch(`${s.url}/tools/1.0/results/not-an-id.png`), 404, undefined, 'picsartResult');
  });
});

describe('balance, headers and errors', () => {
  it('GET /tools/1.0/balance answers {"credits": n} with the X-Picsart-* headers; credits drop with use; 402 when gone', async () => {
    const secret = 'bge_live_picsart_tiny_plan_key_00000000';
    await s.gw.stores.keys.add(keyRecord(secret, { plan: 'Tiny' }, { plan: 'Business' }));
    const h = { 'X-Picsart-API-Key': secret };
    const bal = await fetch(`${s.url}/tools/1.0/balance`, { headers: h });
    expect(bal.status).toBe(200);
    await expectMatchesSpec(bal, 'picsartBalance');
    expect(await bal.json()).toEqual({ credits: 1 });
    expect(bal.headers.get('x-picsart-credit-available')).toBe('1');
    const ok = await removebg(form([['image', jpeg()]]), h);
    await success(ok);
    expect(ok.headers.get('x-picsart-credit-available')).toBe('0');
    expect(await (await fetch(`${s.url}/tools/1.0/balance`, { headers: h })).json()).toEqual({ credits: 0 });
    const refused = await removebg(form([['image', jpeg()]]), h);
    await expectError(refused, 402, /credits/i);
    expect(refused.headers.get('x-picsart-credit-available')).toBe('0');
  });

  it('success responses carry every X-Picsart-* header; unlimited plans report 2147483647 credits', async () => {
    const res = await removebg(form([['image', jpeg()]]));
    await success(res);
    expect(res.headers.get('x-picsart-correlation-id')).toMatch(/^req_/);
    expect(Number(res.headers.get('x-picsart-ratelimit-limit'))).toBe(500);
    expect(Number(res.headers.get('x-picsart-ratelimit-available'))).toBeLessThan(500);
    const reset = Number(res.headers.get('x-picsart-ratelimit-reset-time'));
    expect(reset).toBeGreaterThanOrEqual(0);
    expect(reset).toBeLessThanOrEqual(60);
    expect(res.headers.get('x-picsart-credit-available')).toBe('2147483647');
  });

  it('401 without a key or with a wrong one, {code:401, message:"Unauthorized", detail}', async () => {
    await expectError(await removebg(form([['image', jpeg()]]), { accept: 'application/json' }), 401, /X-Picsart-API-Key/);
    await expectError(await removebg(form([['image', jpeg()]]), { 'X-Picsart-API-Key': 'wrong' }), 401);
    await expectError(await fetch(`${s.url}/tools/1.0/balance`), 401, undefined, 'picsartBalance');
    // remove.bg's header is not Picsart's.
    await expectError(await removebg(form([['image', jpeg()]]), { 'X-Api-Key': TEST_KEY }), 401);
  });

  it('403 {"message":"Forbidden","detail"} for a key whose subscription is not active', async () => {
    const secret = 'bge_live_picsart_canceled_key_000000000';
    await s.gw.stores.keys.add(keyRecord(secret, { subscriptionStatus: 'canceled' }, { plan: 'Business' }));
    const body = await expectError(await removebg(form([['image', jpeg()]]), { 'X-Picsart-API-Key': secret }), 403, /not active/);
    expect(body.message).toBe('Forbidden');
  });

  it('429 with Retry-After and the rate-limit headers when the plan rate is used up', async () => {
    const secret = 'bge_live_picsart_slow_plan_key_00000000';
    await s.gw.stores.keys.add(keyRecord(secret, { plan: 'Slow' }, { plan: 'Business' }));
    const h = { 'X-Picsart-API-Key': secret };
    expect((await fetch(`${s.url}/tools/1.0/balance`, { headers: h })).status).toBe(200);
    const res = await removebg(form([['image', jpeg()]]), h);
    await expectError(res, 429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(res.headers.get('x-picsart-ratelimit-available')).toBe('0');
    expect(res.headers.get('x-picsart-ratelimit-limit')).toBe('1');
  });

  it('400 for a missing image, several images, bad enums, out-of-range numbers and custom shadows without offsets', async () => {
    await expectError(await removebg(form([['format', 'PNG']])), 400, /image, image_url or image_id/);
    await expectError(await removebg(form([['image', jpeg()], ['image_url', `${imageBase}/x.jpg`]])), 400, /image, image_url/);
    await expectError(await removebg(form([['image', jpeg()], ['format', 'GIF']])), 400, /format/);
    await expectError(await removebg(form([['image', jpeg()], ['output_type', 'sticker']])), 400, /output_type/);
    await expectError(await removebg(form([['image', jpeg()], ['scale', 'stretch']])), 400, /scale/);
    await expectError(await removebg(form([['image', jpeg()], ['bg_blur', '101']])), 400, /bg_blur/);
    await expectError(await removebg(form([['image', jpeg()], ['stroke_size', '-1']])), 400, /stroke_size/);
    await expectError(await removebg(form([['image', jpeg()], ['stroke_color', 'notacolour']])), 400, /stroke_color/);
    await expectError(await removebg(form([['image', jpeg()], ['shadow', 'custom'], ['shadow_offset_x', '5']])), 400, /shadow_offset_y/);
    await expectError(await removebg(form([['image', jpeg()], ['shadow', 'diagonal']])), 400, /shadow/);
    await expectError(await removebg(form([['image', jpeg()], ['auto_center', 'maybe']])), 400, /auto_center/);
    await expectError(await removebg(form([['image', jpeg()], ['model', 'urn:air:other:model']])), 400, /model/);
    await expectError(await removebg(form([['image', jpeg()], ['bg_color', 'red'], ['bg_image_url', `${imageBase}/bg.png`]])), 400, /bg_color/);
    await expectError(await removebg(form([['image_url', 'ftp://example.com/a.jpg']])), 400, /image_url/);
    await expectError(await removebg(form([['image', new Blob([Buffer.from('not an image at all')], { type: 'image/jpeg' })]])), 400);
  });

  it('accepts both Picsart model URNs', async () => {
    await success(await removebg(form([['image', jpeg()], ['model', 'urn:air:picsart:model:picsart:sod@10.1']])));
  });

  it('415 for a body that is neither multipart, JSON nor url-encoded; 413 for an oversize upload; 405 for the wrong method', async () => {
    await expectError(await fetch(`${s.url}/tools/1.0/removebg`, { method: 'POST', headers: { ...KEY, 'content-type': 'image/jpeg' }, body: fx.bytes }), 415, /multipart/);
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    await expectError(await removebg(form([['image', new Blob([big], { type: 'image/jpeg' })]])), 413);
    const get = await fetch(`${s.url}/tools/1.0/removebg`, { headers: KEY });
    await expectError(get, 405);
    expect(get.headers.get('allow')).toBe('POST');
    await expectError(await fetch(`${s.url}/tools/1.0/balance`, { method: 'POST', headers: KEY }), 405);
    // Unknown paths under /compat/picsart/ answer in Picsart's envelope too.
    await expectError(await fetch(`${s.url}/compat/picsart/tools/1.0/upscale`, { method: 'POST', headers: KEY }), 404, /No route/);
  });

  it('400 when bg_image_url cannot be fetched, 400 for a private address not on the allow-list', async () => {
    await expectError(await removebg(form([['image', jpeg()], ['bg_image_url', 'http://127.0.0.1:1/none.png']])), 400);
    await expectError(await removebg(form([['image', jpeg()], ['bg_image_url', 'http://10.0.0.1/bg.png']])), 400, /not allowed/);
  });
});
