// test/limits.test.ts
// Every resource limit a client can hit, each refused with its documented status and code, quickly.
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjectFixture, type Fixture } from './helpers/fixtures.js';
import { form, imageBlob, startServer, TEST_KEY, type TestServer } from './helpers/server.js';

let server: TestServer;
let fx: Fixture;
const KEY = { 'x-api-key': TEST_KEY };

beforeAll(async () => {
  server = await startServer({ MAX_JSON_BYTES: '200000', MAX_FORM_PARTS: '8', MAX_FIELD_BYTES: '2000' });
  fx = await subjectFixture({ width: 320, height: 240 });
});

afterAll(async () => {
  await server?.close();
});

const post = (init: RequestInit) => fetch(`${server.url}/v2`, { method: 'POST', ...init, headers: { ...KEY, ...(init.headers as Record<string, string>) } });

async function expectError(res: Response, status: number, code: string) {
  const body = (await res.json()) as { error: { code: string; message: string; request_id: string } };
  expect(res.status, JSON.stringify(body)).toBe(status);
  expect(body.error.code).toBe(code);
  expect(body.error.request_id).toMatch(/^req_/);
  return body.error;
}

/** A 100-byte PNG whose header claims width × height pixels: a decompression bomb's opening move. */
function pngClaiming(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 6, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.alloc(4096))), chunk('IEND', Buffer.alloc(0))]);
}

describe('limits', () => {
  it('a tiny PNG claiming 50000×50000 is refused fast, without allocating its pixels', async () => {
    const bomb = pngClaiming(50_000, 50_000);
    expect(bomb.length).toBeLessThan(200);
    const rssBefore = process.memoryUsage().rss;
    const started = performance.now();
    const err = await expectError(await post({ body: form({ image_file: imageBlob(bomb, 'image/png') }) }), 413, 'image_too_large');
    expect(performance.now() - started).toBeLessThan(1000);
    expect(err.message).toMatch(/megapixels/);
    // 2.5 gigapixels would be 10 GB of RGBA.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 * 1024 * 1024);
  });

  it('a JSON body over MAX_JSON_BYTES → 413 payload_too_large', async () => {
    const body = JSON.stringify({ image_base64: Buffer.alloc(300_000, 1).toString('base64') });
    await expectError(await post({ headers: { 'content-type': 'application/json' }, body }), 413, 'payload_too_large');
  });

  it('a url-encoded body over the limit → 413 payload_too_large', async () => {
    const body = new URLSearchParams({ image_file_b64: Buffer.alloc(300_000, 1).toString('base64') }).toString();
    await expectError(await post({ headers: { 'content-type': 'application/x-www-form-urlencoded' }, body }), 413, 'payload_too_large');
  });

  it('a form field over MAX_FIELD_BYTES → 413 payload_too_large naming the field', async () => {
    const err = await expectError(await post({ body: form({ image_base64: 'A'.repeat(5000) }) }), 413, 'payload_too_large');
    expect(err.message).toContain('image_base64');
  });

  it('more multipart parts than MAX_FORM_PARTS → 413 too_many_parts', async () => {
    const fields: Record<string, string | Blob> = { image_file: imageBlob(fx.bytes) };
    for (let i = 0; i < 20; i++) fields[`junk_${i}`] = 'x';
    await expectError(await post({ body: form(fields) }), 413, 'too_many_parts');
  });

  it('headers over 16 KB → 431 from the HTTP server, which keeps serving', async () => {
    const res = await post({ headers: { 'x-padding': 'p'.repeat(20_000) }, body: form({ image_file: imageBlob(fx.bytes) }) }).catch(() => undefined);
    if (res) expect(res.status).toBe(431);
    const ok = await post({ body: form({ image_file: imageBlob(fx.bytes) }) });
    expect(ok.status).toBe(200);
  });

  it('a request over REQUEST_TIMEOUT_MS → 504 timeout, and the server stays healthy', async () => {
    const tight = await startServer({ REQUEST_TIMEOUT_MS: '150' });
    try {
      const big = await subjectFixture({ width: 1600, height: 1200 });
      const res = await fetch(`${tight.url}/v2`, { method: 'POST', headers: KEY, body: form({ image_file: imageBlob(big.bytes) }) });
      await expectError(res, 504, 'timeout');
      expect((await fetch(`${tight.url}/v2/health`)).status).toBe(200);
    } finally {
      await tight.close();
    }
  });
});
