// test/v2.test.ts
// POST /v2, /v2/account and health over real HTTP on 127.0.0.1, with the real model: BackgroundErase's contract (seed 003).
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyRecord } from '../src/keys.js';
import { alphaOf, decodeRgba, iou, subjectFixture, type Fixture } from './helpers/fixtures.js';
import { expectDocumented, expectMatchesSpec } from './helpers/openapi.js';
import { form, imageBlob, startServer, TEST_KEY, type TestServer } from './helpers/server.js';

const run = promisify(execFile);
let s: TestServer;
let fx: Fixture;
let images: Server;
let imagesUrl: string;
const KEY = { 'x-api-key': TEST_KEY };

beforeAll(async () => {
  s = await startServer({ MAX_UPLOAD_BYTES: String(3 * 1024 * 1024), URL_FETCH_ALLOW_HOSTS: '127.0.0.1', PLANS: JSON.stringify({ Tiny: { rateLimit: 2, rateWindowSeconds: 60 }, Capped: { monthlyCredits: 1 } }) });
  fx = await subjectFixture();
  images = createServer((req, res) => {
    if (req.url === '/subject.jpg') {
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      res.end(fx.bytes);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
  imagesUrl = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await s?.close();
  await new Promise((r) => images?.close(r));
});

const post = (init: RequestInit & { query?: string } = {}) =>
  fetch(`${s.url}/v2${init.query ?? ''}`, { method: 'POST', ...init, headers: { ...KEY, ...(init.headers as Record<string, string>) } });

async function expectCutout(res: Response, type = 'image/png'): Promise<Uint8Array> {
  expect(res.status, await res.clone().text().then((t) => t.slice(0, 200))).toBe(200);
  expect(res.headers.get('content-type')).toBe(type);
  const bytes = new Uint8Array(await res.arrayBuffer());
  expect(Number(res.headers.get('x-width'))).toBeGreaterThan(0);
  expect(Number(res.headers.get('x-height'))).toBeGreaterThan(0);
  expect(res.headers.get('x-request-id')).toMatch(/^req_/);
  return bytes;
}

async function expectError(res: Response, status: number, code: string, operationId = 'removeBackground') {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await expectMatchesSpec(res, operationId)) as { error: { code: string; message: string; status: number; request_id: string } };
  expect(body.error.code).toBe(code);
  expect(body.error.status).toBe(status);
  expect(body.error.request_id).toBe(res.headers.get('x-request-id'));
  expect(body.error.message).not.toMatch(/at .*\.ts:\d+|node_modules|vips/);
  return body.error;
}

describe('routes and health', () => {
  it.each(['/v2/health', '/health', '/'])('%s reports readiness without a key', async (route) => {
    const res = await fetch(`${s.url}${route}`);
    expect(res.status).toBe(200);
    const body = (await expectMatchesSpec(res, route === '/' ? 'rootHealth' : route === '/health' ? 'healthAlias' : 'health')) as Record<string, unknown>;
    expect(body).toMatchObject({ status: 'ok', model: 'u2net', execution_provider: 'cpu', store: { kind: 'memory', reachable: true } });
    expect((body.queue as { concurrency: number }).concurrency).toBeGreaterThan(0);
  });

  it('POST /v2/ works like /v2', async () => {
    const res = await fetch(`${s.url}/v2/`, { method: 'POST', headers: KEY, body: form({ image_file: imageBlob(fx.bytes) }) });
    await expectCutout(res);
  });

  it('unknown routes answer 404 in the native envelope', async () => {
    const res = await fetch(`${s.url}/v3/nothing`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_found');
  });
});

describe('authentication', () => {
  const upload = () => form({ image_file: imageBlob(fx.bytes) });
  it.each([
    ['x-api-key', { 'X-API-Key': TEST_KEY }],
    ['Bearer', { Authorization: `Bearer ${TEST_KEY}` }],
    ['Token', { Authorization: `Token ${TEST_KEY}` }],
    ['Api-Key', { Authorization: `Api-Key ${TEST_KEY}` }],
  ])('accepts %s', async (_name, headers) => {
    const res = await fetch(`${s.url}/v2/account`, { headers });
    expect(res.status).toBe(200);
  });

  it('accepts the legacy api_key in the query string and the JSON body', async () => {
    expect((await fetch(`${s.url}/v2/account?api_key=${TEST_KEY}`)).status).toBe(200);
    const res = await fetch(`${s.url}/v2`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ api_key: TEST_KEY, image_base64: fx.bytes.toString('base64') }),
    });
    await expectCutout(res);
  });

  it('missing key → 401 missing_api_key, before the body is read', async () => {
    await expectError(await fetch(`${s.url}/v2`, { method: 'POST', body: upload() }), 401, 'missing_api_key');
    await expectError(await fetch(`${s.url}/v2/account`), 401, 'missing_api_key', 'getAccount');
  });

  it('unknown or revoked key → 401 invalid_api_key', async () => {
    await expectError(await fetch(`${s.url}/v2`, { method: 'POST', headers: { 'x-api-key': 'nope' }, body: upload() }), 401, 'invalid_api_key');
    const secret = 'bge_live_revoked_key_for_tests_000000000';
    const record = keyRecord(secret, {}, { plan: 'Business' });
    await s.gw.stores.keys.add(record);
    await s.gw.stores.keys.revoke(record.fingerprint, new Date());
    await expectError(await fetch(`${s.url}/v2/account`, { headers: { 'x-api-key': secret } }), 401, 'invalid_api_key', 'getAccount');
  });

  it('a key whose subscription is not active → 403', async () => {
    const secret = 'bge_live_canceled_key_for_tests_0000000';
    await s.gw.stores.keys.add(keyRecord(secret, { subscriptionStatus: 'canceled' }, { plan: 'Business' }));
    const err = await expectError(await fetch(`${s.url}/v2`, { method: 'POST', headers: { 'x-api-key': secret }, body: upload() }), 403, 'subscription_inactive');
    expect(err.message).toMatch(/not active/);
  });
});

describe('inputs', () => {
  it('image_file works as the last part, after the options', async () => {
    const fd = new FormData();
    fd.append('format', 'webp');
    fd.append('size', 'full');
    fd.append('image_file', imageBlob(fx.bytes), 'input.jpg');
    const bytes = await expectCutout(await post({ body: fd }), 'image/webp');
    expect(iou(alphaOf((await decodeRgba(bytes)).data), fx.mask)).toBeGreaterThan(0.9);
  });

  it('image_url in multipart, JSON and url-encoded bodies', async () => {
    const url = `${imagesUrl}/subject.jpg`;
    await expectCutout(await post({ body: form({ image_url: url }) }));
    await expectCutout(await post({ headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image_url: url }) }));
    await expectCutout(await post({ headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ image_url: url }).toString() }));
  });

  it('image_base64 (multipart and JSON, data-URL prefix accepted) and image_file_b64', async () => {
    const b64 = fx.bytes.toString('base64');
    await expectCutout(await post({ body: form({ image_base64: b64 }) }));
    await expectCutout(await post({ headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image_base64: `data:image/jpeg;base64,${b64}` }) }));
    await expectCutout(await post({ body: form({ image_file_b64: b64 }) }));
  });

  it('legacy JSON image answers {"mask": base64 PNG}', async () => {
    const res = await post({ headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: fx.bytes.toString('base64') }) });
    expect(res.status).toBe(200);
    const body = (await expectMatchesSpec(res, 'removeBackground')) as { mask: string };
    const mask = Buffer.from(body.mask, 'base64');
    const meta = await sharp(mask).metadata();
    expect([meta.format, meta.channels, meta.width]).toEqual(['png', 1, fx.width]);
    expect(iou(await sharp(mask).extractChannel(0).raw().toBuffer(), fx.mask)).toBeGreaterThan(0.9);
  });

  it('raw body with options from the query string', async () => {
    const res = await post({ headers: { 'content-type': 'image/jpeg' }, body: fx.bytes, query: '?format=jpg&bg_color=ff0000' });
    const bytes = await expectCutout(res, 'image/jpeg');
    const { data } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
    expect(data[0]).toBeGreaterThan(230);
    expect(data[1]).toBeLessThan(30);
    await expectCutout(await post({ headers: { 'content-type': 'application/octet-stream' }, body: fx.bytes }));
  });

  it('a chunked upload without Content-Length works', async () => {
    const fd = form({ image_file: imageBlob(fx.bytes), format: 'png' });
    const encoded = new Response(fd);
    const bytes = new Uint8Array(await encoded.arrayBuffer());
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 16_384) controller.enqueue(bytes.subarray(i, i + 16_384));
        controller.close();
      },
    });
    const res = await post({ headers: { 'content-type': encoded.headers.get('content-type')! }, body: stream, duplex: 'half' } as RequestInit);
    await expectCutout(res);
  });

  it('empty-string fields count as unset', async () => {
    const res = await post({ body: form({ image_file: imageBlob(fx.bytes), size: '', crop: '', bg_color: '', format: '', image_url: '' }) });
    const bytes = await expectCutout(res);
    expect((await sharp(bytes).metadata()).width).toBe(fx.width);
  });

  it('no image → 400 missing_image; two → 400 multiple_images', async () => {
    await expectError(await post({ body: form({ format: 'png' }) }), 400, 'missing_image');
    await expectError(await post({}), 400, 'missing_image');
    const err = await expectError(await post({ body: form({ image_file: imageBlob(fx.bytes), image_base64: fx.bytes.toString('base64') }) }), 400, 'multiple_images');
    expect(err.message).toMatch(/image_file, image_base64/);
  });

  it('bad base64 and undecodable bytes → 400 invalid_image; SVG → 415', async () => {
    await expectError(await post({ body: form({ image_base64: '###not base64###' }) }), 400, 'invalid_image');
    await expectError(await post({ body: form({ image_file: imageBlob(Buffer.from('GIF89a but not really a gif'), 'image/gif') }) }), 400, 'invalid_image');
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');
    await expectError(await post({ body: form({ image_file: imageBlob(svg, 'image/svg+xml') }) }), 415, 'unsupported_media_type');
  });

  it('malformed JSON → 400 invalid_body', async () => {
    await expectError(await post({ headers: { 'content-type': 'application/json' }, body: '{"image_url": ' }), 400, 'invalid_body');
  });
});

describe('options', () => {
  it.each([
    ['png', 'image/png'],
    ['PNG', 'image/png'],
    ['jpg', 'image/jpeg'],
    ['jpeg', 'image/jpeg'],
    ['webp', 'image/webp'],
    ['bmp', 'image/bmp'],
    ['tiff', 'image/tiff'],
    ['tif', 'image/tiff'],
    ['gif', 'image/gif'],
  ])('format=%s → %s', async (format, type) => {
    const res = await post({ body: form({ image_file: imageBlob(fx.bytes), format }) });
    await expectCutout(res, type);
    await expectDocumented(res, 'removeBackground');
  });

  it('channels=alpha gives a one-channel mask', async () => {
    const bytes = await expectCutout(await post({ body: form({ image_file: imageBlob(fx.bytes), channels: 'ALPHA' }) }));
    expect((await sharp(bytes).metadata()).channels).toBe(1);
  });

  it('size caps without upscaling; X-Width/X-Height say the result size', async () => {
    const res = await post({ body: form({ image_file: imageBlob(fx.bytes), size: 'preview' }) });
    const bytes = await expectCutout(res);
    const meta = await sharp(bytes).metadata();
    expect(meta.width! * meta.height!).toBeLessThanOrEqual(250_000);
    expect([Number(res.headers.get('x-width')), Number(res.headers.get('x-height'))]).toEqual([meta.width, meta.height]);
    expect(res.headers.get('x-credits-charged')).toBe('0.25');
    for (const size of ['medium', 'hd', 'full', 'auto']) {
      const r = await post({ body: form({ image_file: imageBlob(fx.bytes), size }) });
      expect(r.headers.get('x-width')).toBe(String(fx.width));
      await r.arrayBuffer();
    }
  });

  it('crop, bg_color and despill', async () => {
    const cropped = await post({ body: form({ image_file: imageBlob(fx.bytes), crop: 'yes' }) });
    await expectCutout(cropped);
    expect(Number(cropped.headers.get('x-width'))).toBeLessThan(fx.width * 0.5);
    const flat = await expectCutout(await post({ body: form({ image_file: imageBlob(fx.bytes), bg_color: '#00ff00', despill: 'on' }) }));
    const { data } = await sharp(flat).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    expect([data[0], data[1], data[2], data[3]]).toEqual([0, 255, 0, 255]);
  });

  it('a bad value → 400 invalid_parameter naming the field and the allowed values', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ format: 'svg' }, /format.*png, jpg, jpeg, webp, bmp, tiff, tif, gif/],
      [{ channels: 'rgb' }, /channels.*rgba, alpha/],
      [{ size: 'huge' }, /size.*preview, medium, hd, full, auto/],
      [{ crop: 'maybe' }, /crop.*true, false/],
      [{ despill: '2' }, /despill/],
      [{ bg_color: 'not-a-colour' }, /bg_color/],
    ];
    for (const [fields, message] of cases) {
      const err = await expectError(await post({ body: form({ image_file: imageBlob(fx.bytes), ...fields }) }), 400, 'invalid_parameter');
      expect(err.message).toMatch(message);
    }
  });

  it('unknown fields are ignored', async () => {
    await expectCutout(await post({ body: form({ image_file: imageBlob(fx.bytes), flavour: 'vanilla' }) }));
  });
});

describe('responses', () => {
  it('keeps a sane incoming X-Request-Id and replaces an unsafe one', async () => {
    const kept = await fetch(`${s.url}/health`, { headers: { 'x-request-id': 'trace-123.abc' } });
    expect(kept.headers.get('x-request-id')).toBe('trace-123.abc');
    const replaced = await fetch(`${s.url}/health`, { headers: { 'x-request-id': 'bad id with spaces <script>' } });
    expect(replaced.headers.get('x-request-id')).toMatch(/^req_/);
  });

  it('JSON mode when Accept prefers application/json', async () => {
    const res = await post({ headers: { accept: 'application/json' }, body: form({ image_file: imageBlob(fx.bytes), format: 'webp' }) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await expectMatchesSpec(res, 'removeBackground')) as { image_base64: string; format: string; width: number; height: number };
    expect([body.format, body.width, body.height]).toEqual(['webp', fx.width, fx.height]);
    expect((await sharp(Buffer.from(body.image_base64, 'base64')).metadata()).format).toBe('webp');
    const images = await post({ headers: { accept: 'image/*, application/json;q=0.5' }, body: form({ image_file: imageBlob(fx.bytes) }) });
    await expectCutout(images);
  });

  it('/v2/account has the seed shape plus this period\'s usage', async () => {
    const res = await fetch(`${s.url}/v2/account`, { headers: KEY });
    const body = (await expectMatchesSpec(res, 'getAccount')) as { api_key: Record<string, unknown>; account: Record<string, unknown>; usage: { images: number; credits: number } };
    expect(body.api_key).toMatchObject({ valid: true, mode: 'live' });
    expect(body.api_key.fingerprint).toMatch(/^tok_fp_/);
    expect(body.account).toEqual({ email: expect.any(String), plan: 'Business', subscription_status: 'active', billing_model: 'metered_monthly', usage_unit: 'image' });
    expect(body.usage.images).toBeGreaterThan(5);
    expect(JSON.stringify(body)).not.toContain(TEST_KEY);
  });
});

describe('limits', () => {
  it('an upload over the limit → 413 image_too_large while it streams in, before it is buffered', async () => {
    const head = new TextEncoder().encode('--b\r\nContent-Disposition: form-data; name="image_file"; filename="big.jpg"\r\nContent-Type: image/jpeg\r\n\r\n');
    const attempt = async () => {
      let sent = 0;
      const chunk = new Uint8Array(64 * 1024).fill(7);
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(head);
        },
        async pull(c) {
          if (sent > 200 * 1024 * 1024) return c.close();
          sent += chunk.length;
          c.enqueue(chunk);
          await new Promise((r) => setTimeout(r, 0));
        },
      });
      const res = await post({ headers: { 'content-type': 'multipart/form-data; boundary=b' }, body: stream, duplex: 'half' } as RequestInit).catch((e: unknown) => e as Error);
      return { res, sent };
    };
    // The server answers and closes while the client is still sending; now and then the client's next write
    // meets the reset before it has read the answer (EPIPE). The server must still have stopped reading early,
    // and a retry must see the 413 itself.
    for (let i = 0; i < 3; i++) {
      const { res, sent } = await attempt();
      expect(sent).toBeLessThan(50 * 1024 * 1024);
      if (res instanceof Response) {
        await expectError(res, 413, 'image_too_large');
        return;
      }
      expect(String((res as Error & { cause?: { code?: string } }).cause?.code ?? res)).toMatch(/EPIPE|ECONNRESET|UND_ERR_SOCKET/);
    }
    throw new Error('three uploads over the limit never received the 413');
  });

  it('a declared Content-Length over the limit is refused at once', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 1);
    await expectError(await post({ headers: { 'content-type': 'image/jpeg' }, body: big }), 413, 'image_too_large');
  });

  it('too many pixels → 413 image_too_large', async () => {
    const tight = await startServer({ MAX_INPUT_PIXELS: '10000' });
    try {
      const res = await fetch(`${tight.url}/v2`, { method: 'POST', headers: KEY, body: form({ image_file: imageBlob(fx.bytes) }) });
      const err = await expectError(res, 413, 'image_too_large');
      expect(err.message).toMatch(/megapixels/);
    } finally {
      await tight.close();
    }
  });

  it('429 rate_limited with Retry-After and X-RateLimit-* headers', async () => {
    const secret = 'bge_live_tiny_plan_key_for_tests_000000';
    await s.gw.stores.keys.add(keyRecord(secret, { plan: 'Tiny' }, { plan: 'Business' }));
    const h = { 'x-api-key': secret };
    const first = await fetch(`${s.url}/v2/account`, { headers: h });
    expect(first.headers.get('x-ratelimit-limit')).toBe('2');
    expect(first.headers.get('x-ratelimit-remaining')).toBe('1');
    await fetch(`${s.url}/v2/account`, { headers: h });
    const limited = await fetch(`${s.url}/v2`, { method: 'POST', headers: h, body: form({ image_file: imageBlob(fx.bytes) }) });
    await expectError(limited, 429, 'rate_limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(Number(limited.headers.get('x-ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000);
  });

  it('402 insufficient_credits once the monthly allowance is used, before inference', async () => {
    const secret = 'bge_live_capped_plan_key_for_tests_00000';
    await s.gw.stores.keys.add(keyRecord(secret, { plan: 'Capped' }, { plan: 'Business' }));
    const h = { 'x-api-key': secret };
    await expectCutout(await fetch(`${s.url}/v2`, { method: 'POST', headers: h, body: form({ image_file: imageBlob(fx.bytes) }) }));
    const before = s.gw.engine.runs;
    const other = await sharp(fx.bytes).flop().jpeg().toBuffer();
    await expectError(await fetch(`${s.url}/v2`, { method: 'POST', headers: h, body: form({ image_file: imageBlob(other) }) }), 402, 'insufficient_credits');
    expect(s.gw.engine.runs).toBe(before);
  });
});

describe("the seed's own clients", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bgw-seed-'));
    await writeFile(path.join(dir, 'input.jpg'), fx.bytes);
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('the Node.js example runs verbatim with only the URL and key changed', async () => {
    const example = `import { readFile, writeFile } from "node:fs/promises";

const apiKey = process.env.BACKGROUND_ERASE_API_KEY;
const input = await readFile("./input.jpg");

const form = new FormData();
form.append("image_file", new Blob([input], { type: "image/jpeg" }), "input.jpg");
form.append("format", "png");
form.append("channels", "rgba");
form.append("size", "full");

const response = await fetch("${s.url}/v2", {
  method: "POST",
  headers: { "x-api-key": apiKey },
  body: form
});

if (!response.ok) {
  throw new Error(await response.text());
}

await writeFile("./output.png", Buffer.from(await response.arrayBuffer()));
`;
    await writeFile(path.join(dir, 'example.mjs'), example);
    await run(process.execPath, ['example.mjs'], { cwd: dir, env: { ...process.env, BACKGROUND_ERASE_API_KEY: TEST_KEY } });
    const out = await readFile(path.join(dir, 'output.png'));
    const img = await decodeRgba(out);
    expect([img.format, img.width, img.height]).toEqual(['png', fx.width, fx.height]);
    expect(iou(alphaOf(img.data), fx.mask)).toBeGreaterThan(0.9);
  });

  it('curl -f as in the seed writes the PNG, and fails with exit 22 on a bad key', async () => {
    const args = (key: string) => ['-sS', '-f', `${s.url}/v2`, '-H', `x-api-key: ${key}`, '-F', `image_file=@${path.join(dir, 'input.jpg')}`, '-F', 'format=png', '-F', 'channels=rgba', '-F', 'size=full', '-o', path.join(dir, 'curl.png')];
    await run('curl', args(TEST_KEY));
    expect((await sharp(await readFile(path.join(dir, 'curl.png'))).metadata()).format).toBe('png');
    const failed = await run('curl', args('wrong')).catch((e: { code: number }) => e);
    expect((failed as { code: number }).code).toBe(22);
    const mask = ['-sS', '-f', `${s.url}/v2`, '-H', `x-api-key: ${TEST_KEY}`, '-F', `image_file=@${path.join(dir, 'input.jpg')}`, '-F', 'channels=alpha', '-F', 'format=png', '-o', path.join(dir, 'mask.png')];
    await run('curl', mask);
    expect((await sharp(await readFile(path.join(dir, 'mask.png'))).metadata()).channels).toBe(1);
  });
});
