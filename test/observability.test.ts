// test/observability.test.ts
// Operators' view: Prometheus metrics behind an optional token, and one structured access-log line per request
// that never carries a key or a query string.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjectFixture, type Fixture } from './helpers/fixtures.js';
import { form, imageBlob, startServer, TEST_KEY, type TestServer } from './helpers/server.js';

const METRICS_TOKEN = 'scrape-token-for-tests';
const lines: Record<string, unknown>[] = [];
const raw: string[] = [];
let server: TestServer;
let fx: Fixture;

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  const log = pino({ level: 'info', redact: { paths: ['apiKey', 'secret', 'key'], censor: '[redacted]' } }, sink);
  server = await startServer({ METRICS_TOKEN }, { log });
  fx = await subjectFixture({ width: 320, height: 240 });
});

afterAll(async () => {
  await server?.close();
});

const scrape = async () => {
  const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return res.text();
};

describe('/metrics', () => {
  it('needs the token when one is configured', async () => {
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
  });

  it('counts requests, errors, inference, queue and store health', async () => {
    const ok = await fetch(`${server.url}/v2`, { method: 'POST', headers: { 'x-api-key': TEST_KEY }, body: form({ image_file: imageBlob(fx.bytes) }) });
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
    const again = await fetch(`${server.url}/v2`, { method: 'POST', headers: { 'x-api-key': TEST_KEY }, body: form({ image_file: imageBlob(fx.bytes), format: 'webp' }) });
    expect(again.status).toBe(200);
    await again.arrayBuffer();
    expect((await fetch(`${server.url}/v2`, { method: 'POST', body: form({ image_file: imageBlob(fx.bytes) }) })).status).toBe(401);
    const text = await scrape();
    expect(text).toMatch(/bgw_http_requests_total\{route="\/v2",dialect="backgrounderase",status="200"\} 2/);
    expect(text).toMatch(/bgw_http_requests_total\{route="\/v2",dialect="backgrounderase",status="401"\} 1/);
    expect(text).toMatch(/bgw_errors_total\{code="missing_api_key",dialect="backgrounderase"\} 1/);
    expect(text).toMatch(/bgw_inference_seconds_count\{model="u2net",provider="cpu"\} 1/);
    expect(text).toMatch(/bgw_mask_cache_total\{result="hit"\} 1/);
    expect(text).toMatch(/bgw_queue_wait_seconds_count 2/);
    expect(text).toMatch(/bgw_queue_jobs\{state="concurrency"\} \d+/);
    expect(text).toMatch(/bgw_store_up 1/);
    expect(text).toMatch(/bgw_pipeline_stage_seconds_count\{stage="encode"\} 2/);
    expect(text).toMatch(/bgw_process_resident_memory_bytes \d+/);
  });

  it('labels unknown paths as one route, so clients cannot blow up cardinality', async () => {
    for (const p of ['/nope/1', '/nope/2', '/nope/3']) expect((await fetch(server.url + p)).status).toBe(404);
    const text = await scrape();
    expect(text).toMatch(/bgw_http_requests_total\{route="unmatched",dialect="none",status="404"\} 3/);
    expect(text).not.toContain('/nope/');
  });
});

describe('access log', () => {
  it('one JSON line per request with id, dialect, route, status, sizes and stage timings', async () => {
    const res = await fetch(`${server.url}/v2`, {
      method: 'POST',
      headers: { 'x-api-key': TEST_KEY, 'x-request-id': 'trace-abc-123' },
      body: form({ image_file: imageBlob(fx.bytes), size: 'preview' }),
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const line = lines.find((l) => l.requestId === 'trace-abc-123');
    expect(line).toMatchObject({ msg: 'request', method: 'POST', path: '/v2', route: '/v2', dialect: 'backgrounderase', status: 200 });
    expect(line!.ms).toBeGreaterThan(0);
    expect(line!.bytesOut).toBeGreaterThan(0);
    expect(Object.keys(line!.timings as object)).toEqual(expect.arrayContaining(['decode', 'infer', 'matte', 'encode']));
    expect(String(line!.keyFingerprint)).toMatch(/^tok_fp_/);
  });

  it('never logs a key, from a header, the query string or a JSON body', async () => {
    const secret = 'bge_live_never_log_me_0123456789abcdef';
    await fetch(`${server.url}/v2?api_key=${secret}`, { method: 'POST', body: form({ image_file: imageBlob(fx.bytes) }) });
    await fetch(`${server.url}/v2`, { method: 'POST', headers: { 'x-api-key': secret }, body: form({ image_file: imageBlob(fx.bytes) }) });
    await fetch(`${server.url}/v2`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ api_key: secret, image: fx.bytes.toString('base64') }) });
    await fetch(`${server.url}/v2`, { method: 'POST', headers: { 'x-api-key': TEST_KEY }, body: form({ image_file: imageBlob(fx.bytes) }) });
    await new Promise((r) => setTimeout(r, 50));
    expect(raw.length).toBeGreaterThan(3);
    for (const line of raw) {
      expect(line).not.toContain(secret);
      expect(line).not.toContain(TEST_KEY);
      expect(line).not.toContain('api_key=');
    }
    expect(lines.filter((l) => l.status === 401).length).toBeGreaterThanOrEqual(3);
  });
});
