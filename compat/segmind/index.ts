// compat/segmind/index.ts
// Segmind background-eraser (seed 004, compat-apis §6): sync POST /v1/background-eraser and the async v2 queue
// (submit → GET /v2/requests/{id}/status → GET /v2/requests/{id}) on the shared job runner.
// Choices where Segmind's docs are silent [U]: v1 answers the image bytes (clients read it as an arraybuffer),
// or {"image": base64} with base64=true; v2 `output` is a URL we serve (or the base64 string with base64=true) that,
// like Segmind's media URLs, needs no key (the request id is the capability); errors are
// {"error": message, "code", "request_id"}; a result URL polled before completion answers 202 + status.
// Statuses are the seed's list only: credits 406, anything "temporarily unavailable" (busy, store down, shutting
// down; 503 elsewhere) 502, a malformed or oversized body (413/415 elsewhere) 400.
import type { Context, Hono } from 'hono';
import { GatewayError } from '../../src/errors.js';
import type { Gateway } from '../../src/gateway.js';
import type { ParsedBody } from '../../src/http/body.js';
import type { AppEnv } from '../../src/http/env.js';
import { JobRunner, type JobRecord } from '../../src/jobs/runner.js';
import { makeJob, type JobSource, type RemovalJob, type RemovalResult } from '../../src/job.js';
import { readBool, readInt } from '../fields.js';
import { admit, commonErrorHeaders } from '../mount.js';
import { creditBalance } from '../remaining-credits.js';
import { decodeBase64Image } from '../sources.js';
import type { CompatAdapter } from '../types.js';

/** The seed's status list has no 402, 413, 415 or 503: each maps onto the documented code that means the same. */
const STATUS: Partial<Record<number, number>> = { 402: 406, 413: 400, 415: 400, 503: 502 };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const base64Outputs = new WeakSet<RemovalJob>();

/** The headers Segmind clients read [S], from the gateway's own X-RateLimit-* (absent on unlimited plans). */
function rateHeaders(c: Context<AppEnv>, extra: Record<string, string> = {}): Record<string, string> {
  const rl = { ...(c.get('rateLimitHeaders') ?? {}), ...extra };
  const out: Record<string, string> = {};
  if (rl['X-RateLimit-Remaining'] !== undefined) out['x-rate-limit-remaining'] = rl['X-RateLimit-Remaining'];
  if (rl['X-RateLimit-Reset'] !== undefined) out['x-rate-limit-reset-at-utc'] = new Date(Number(rl['X-RateLimit-Reset']) * 1000).toISOString();
  return out;
}

async function successHeaders(c: Context<AppEnv>, gw: Gateway): Promise<Record<string, string>> {
  const key = c.get('apiKey');
  const credits = key ? await creditBalance(gw, key).catch(() => undefined) : undefined;
  return {
    'X-Request-Id': c.get('requestId'),
    ...rateHeaders(c),
    ...(credits ? { 'x-remaining-credits': String(credits.remaining) } : {}),
  };
}

function renderSegmindError(err: GatewayError, c: Context<AppEnv>): Response {
  const status = STATUS[err.status] ?? err.status;
  return new Response(JSON.stringify({ error: err.message, code: err.code, request_id: c.get('requestId') }), {
    status,
    headers: { 'Content-Type': 'application/json', ...commonErrorHeaders(err, c), ...rateHeaders(c, err.headers) },
  });
}

function parseSegmindJob(body: ParsedBody, maxBytes: number): RemovalJob {
  const f = body.fields;
  const image = f.get('image');
  const file = body.files.get('image');
  let source: JobSource;
  if (file) source = { kind: 'bytes', bytes: file.bytes };
  else if (image && /^https?:\/\//i.test(image.trim())) source = { kind: 'url', url: image.trim() };
  else if (image) source = { kind: 'bytes', bytes: decodeBase64Image(image, 'image', maxBytes) };
  else if (body.raw) source = { kind: 'bytes', bytes: body.raw.bytes };
  else throw new GatewayError('missing_image', { message: 'image is required: a URL or a base64-encoded image.' });
  // The model page marks return_mask required with default true: the mask is the default output.
  const returnMask = readBool(f, 'return_mask') ?? true;
  const job = makeJob({
    source,
    format: 'png',
    channels: returnMask ? 'alpha' : 'rgba',
    size: 'full',
    invertMask: readBool(f, 'invert_mask') ?? false,
    grow: readInt(f, 'grow_mask', 0, 50) ?? 0,
  });
  if (readBool(f, 'base64')) base64Outputs.add(job);
  return job;
}

function jobUrls(c: Context<AppEnv>, gw: Gateway, id: string) {
  const base = (gw.config.PUBLIC_BASE_URL ?? new URL(c.req.url).origin).replace(/\/$/, '');
  const prefix = c.req.path.startsWith('/compat/segmind') ? '/compat/segmind' : '';
  const root = `${base}${prefix}/v2/requests/${id}`;
  return { status_url: `${root}/status`, response_url: root, output_url: `${root}/output` };
}

const STATE = { queued: 'QUEUED', processing: 'PROCESSING', completed: 'COMPLETED', failed: 'FAILED' } as const;

/** The body of both the status and the result URL once a request has ended (Segmind serves a FAILED one twice). */
function resultBody(c: Context<AppEnv>, gw: Gateway, r: JobRecord) {
  const body: Record<string, unknown> = { request_id: r.id, status: STATE[r.state] };
  if (r.state === 'completed' && r.result) {
    body.output = r.extra.base64 ? Buffer.from(r.result.bytes).toString('base64') : jobUrls(c, gw, r.id).output_url;
    body.metrics = { inference_time: Math.round(r.result.inferMs) / 1000, total_time: Math.round(r.result.totalMs) / 1000, cost: r.result.credits };
  }
  if (r.state === 'failed') {
    body.error = r.error?.message ?? 'failed';
    body.detail = r.error;
    body.metrics = { inference_time: 0, cost: 0 };
  }
  return body;
}

function notFound(gw: Gateway, id: string): GatewayError {
  return new GatewayError('not_found', { message: `Request ${id.slice(0, 80)} not found or expired (results are kept ${gw.config.RESULTS_TTL_SECONDS} s).` });
}

export const segmind: CompatAdapter = {
  name: 'segmind',
  readApiKey: (c) => c.req.header('x-api-key') ?? undefined,
  renderError: renderSegmindError,
  routes: [
    {
      method: 'POST',
      path: '/v1/background-eraser',
      parse: ({ body, gw }) => parseSegmindJob(body, gw.config.MAX_UPLOAD_BYTES),
      async render(result: RemovalResult, job: RemovalJob, c: Context<AppEnv>, gw: Gateway) {
        const headers = await successHeaders(c, gw);
        if (base64Outputs.has(job)) return c.json({ image: Buffer.from(result.bytes).toString('base64') }, 200, headers);
        return new Response(result.bytes, { status: 200, headers: { ...headers, 'Content-Type': result.contentType, 'Content-Length': String(result.bytes.byteLength) } });
      },
    },
  ],
  extraRoutes(app: Hono<AppEnv>, gw: Gateway) {
    const runner = new JobRunner(gw);
    const isSegmind = (r: JobRecord | undefined) => (r?.extra.dialect === 'segmind' ? r : undefined);
    app.post('/v2/background-eraser', async (c) => {
      const body = (await admit(c, gw, segmind, true))!;
      const job = parseSegmindJob(body, gw.config.MAX_UPLOAD_BYTES);
      const record = await runner.submit(c.get('apiKey')!, job, { dialect: 'segmind', base64: base64Outputs.has(job) });
      const urls = jobUrls(c, gw, record.id);
      return c.json({ request_id: record.id, status: 'QUEUED', status_url: urls.status_url, response_url: urls.response_url }, 200, await successHeaders(c, gw));
    });
    const find = async (c: Context<AppEnv>) => {
      await admit(c, gw, segmind, false);
      const id = c.req.param('id') ?? '';
      const record = UUID.test(id) ? isSegmind(await runner.get(id, c.get('apiKey')!.fingerprint)) : undefined;
      if (!record) throw notFound(gw, id);
      return record;
    };
    app.get('/v2/requests/:id/status', async (c) => {
      const r = await find(c);
      // The SDK reads `status` here and, on FAILED, `error`: a FAILED request answers exactly its result body.
      if (r.state === 'failed') return c.json(resultBody(c, gw, r), 422);
      return c.json({ request_id: r.id, status: STATE[r.state] });
    });
    app.get('/v2/requests/:id', async (c) => {
      const r = await find(c);
      const status = r.state === 'failed' ? 422 : r.state === 'completed' ? 200 : 202;
      return c.json(resultBody(c, gw, r), status);
    });
    // Segmind's `output` is a media URL fetched without a key; here the unguessable request id is the capability.
    app.get('/v2/requests/:id/output', async (c) => {
      const id = c.req.param('id');
      const r = UUID.test(id) ? isSegmind(await runner.find(id)) : undefined;
      if (!r) throw notFound(gw, id);
      if (r.state !== 'completed' || !r.result) return c.json(resultBody(c, gw, r), r.state === 'failed' ? 422 : 202);
      return new Response(r.result.bytes, { headers: { 'Content-Type': r.result.contentType, 'Content-Length': String(r.result.bytes.byteLength), 'X-Request-Id': c.get('requestId') } });
    });
  },
  prefixedRoutes(app: Hono<AppEnv>) {
    // Segmind answers 404 "Model or endpoint not found" for any other slug; at the root those paths belong to
    // other dialects (or the gateway's own 404), so only the /compat/segmind/ mount can claim them.
    app.all('*', (c) => {
      throw new GatewayError('not_found', { message: `Model or endpoint not found: ${c.req.method} ${c.req.path.replace(/^\/compat\/segmind/, '')}.` });
    });
  },
};
