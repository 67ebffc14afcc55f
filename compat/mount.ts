// compat/mount.ts
// Builds one Hono sub-app per adapter: auth → rate limit → body → parse → credits → queue(runJob) → render,
// with the adapter's own error renderer scoped to its routes (so 401/429 come back in the vendor's shape).
import { Hono, type Context } from 'hono';
import { deadline } from '../src/deadline.js';
import { GatewayError, toGatewayError } from '../src/errors.js';
import type { Gateway } from '../src/gateway.js';
import { authenticate } from '../src/http/auth.js';
import { parseBody, type ParsedBody } from '../src/http/body.js';
import type { AppEnv } from '../src/http/env.js';
import { checkRateLimit, reserveCredits } from '../src/http/limits.js';
import { creditsFor, type RemovalJob, type RemovalResult } from '../src/job.js';
import { runJob } from '../src/pipeline/run-job.js';
import type { CompatAdapter, RemovalRoute } from './types.js';

/** Headers every error response carries, whatever its dialect. */
export function commonErrorHeaders(err: GatewayError, c: Context<AppEnv>): Record<string, string> {
  return {
    ...(c.get('rateLimitHeaders') ?? {}),
    ...err.headers,
    ...(err.retryAfter !== undefined ? { 'Retry-After': String(Math.max(1, Math.ceil(err.retryAfter))) } : {}),
    'X-Request-Id': c.get('requestId'),
  };
}

export function bodyLimits(gw: Gateway) {
  return {
    maxUploadBytes: gw.config.MAX_UPLOAD_BYTES,
    maxJsonBytes: gw.config.MAX_JSON_BYTES,
    maxParts: gw.config.MAX_FORM_PARTS,
    maxFieldBytes: gw.config.MAX_FIELD_BYTES,
  };
}

/** Authenticates (header key first, so unauthenticated uploads are refused before the body is read) and rate-limits. */
export async function admit(c: Context<AppEnv>, gw: Gateway, adapter: CompatAdapter, readBody: boolean): Promise<ParsedBody | undefined> {
  if (gw.state.shuttingDown) throw new GatewayError('shutting_down', { retryAfter: gw.config.QUEUE_RETRY_AFTER_SECONDS });
  let presented = adapter.readApiKey(c);
  let body: ParsedBody | undefined;
  if (!presented && adapter.readBodyKey && readBody) {
    body = await parseBody(c.req.raw, bodyLimits(gw));
    presented = adapter.readBodyKey(body);
  }
  const key = await authenticate(gw, presented);
  c.set('apiKey', key);
  const limit = await checkRateLimit(gw, key);
  c.set('rateLimitHeaders', limit.headers);
  if (readBody && !body) body = await parseBody(c.req.raw, bodyLimits(gw));
  return body;
}

/** Runs a parsed job through credits, the queue and the pipeline, recording usage on success. */
export async function execute(c: Context<AppEnv>, gw: Gateway, job: RemovalJob, bytesIn: number): Promise<RemovalResult> {
  const key = c.get('apiKey')!;
  const hold = await reserveCredits(gw, key, creditsFor(job));
  const limit = deadline(gw.config.REQUEST_TIMEOUT_MS);
  const signal = AbortSignal.any([c.req.raw.signal, limit.signal]);
  let result: RemovalResult;
  const queuedAt = performance.now();
  try {
    result = await gw.queue.run((s) => {
      gw.metrics.queueWaitSeconds.observe((performance.now() - queuedAt) / 1000);
      return runJob(job, gw.pipeline, s);
    }, signal, job.model ?? gw.engine.defaultModel);
  } catch (err) {
    await hold.release();
    if (c.req.raw.signal.aborted) throw new GatewayError('client_closed', { cause: err });
    if (signal.aborted && !(err instanceof GatewayError)) throw new GatewayError('timeout', { cause: err });
    throw err;
  } finally {
    limit.clear();
  }
  if (key.mode !== 'synthetic') {
    await gw.stores.usage
      .record(key.fingerprint, hold.period, { images: 1, bytesIn, bytesOut: result.bytes.byteLength })
      .catch((err) => gw.log.warn({ err, requestId: c.get('requestId') }, 'usage record failed'));
  }
  if (hold.credits === 0) result.credits = 0;
  c.set('timings', result.timings);
  gw.metrics.recordRemoval({ model: result.model, provider: gw.engine.provider, maskCached: result.maskCached, timings: result.timings, bytesIn, bytesOut: result.bytes.byteLength });
  return result;
}

function removalHandler(gw: Gateway, adapter: CompatAdapter, route: RemovalRoute) {
  return async function removal(c: Context<AppEnv>): Promise<Response> {
    const body = (await admit(c, gw, adapter, route.method === 'POST'))!;
    const job = await route.parse({ c, body, gw });
    const result = await execute(c, gw, job, body.bytesIn);
    return route.render(result, job, c, gw);
  };
}

/** One sub-app per mount point: `prefixed` is the /compat/<name>/ copy, which also hosts the colliding paths. */
export function adapterApp(gw: Gateway, adapter: CompatAdapter, prefixed = false): Hono<AppEnv> {
  const sub = new Hono<AppEnv>();
  sub.use('*', async function rateLimitHeaders(c, next) {
    c.set('dialect', adapter.name);
    await next();
    for (const [k, v] of Object.entries(c.get('rateLimitHeaders') ?? {})) c.res.headers.set(k, v);
  });
  for (const route of adapter.routes) sub.on(route.method, route.path, removalHandler(gw, adapter, route));
  adapter.extraRoutes?.(sub, gw);
  if (prefixed) adapter.prefixedRoutes?.(sub, gw);
  sub.onError((err, c) => {
    const e = toGatewayError(err);
    c.set('errorCode', e.code);
    if (e.status >= 500 && e.code !== 'timeout') gw.log.error({ err, code: e.code, requestId: c.get('requestId'), dialect: adapter.name }, 'request failed');
    else gw.log.debug({ code: e.code, requestId: c.get('requestId'), dialect: adapter.name }, 'request refused');
    return adapter.renderError(e, c);
  });
  return sub;
}
