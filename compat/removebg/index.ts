// compat/removebg/index.ts
// remove.bg (compat-apis §1, §7, §10): POST /v1.0/removebg, GET /v1.0/account, POST /v1.0/improve, key in X-Api-Key.
// Errors are {"errors":[{"title","code","detail"}]} with remove.bg's statuses: 403 auth, 402 credits, 429 rate, 400 input.
import { randomUUID } from 'node:crypto';
import type { Context, Hono } from 'hono';
import { GatewayError } from '../../src/errors.js';
import { guardStore, type Gateway } from '../../src/gateway.js';
import type { AppEnv } from '../../src/http/env.js';
import type { RemovalJob, RemovalResult } from '../../src/job.js';
import { currentPeriod, planFor } from '../../src/plans.js';
import { prefersJson } from '../accept.js';
import { admit, commonErrorHeaders } from '../mount.js';
import { decodeBase64Image, exactlyOne } from '../sources.js';
import type { CompatAdapter, RemovalRoute } from '../types.js';
import { metaOf, parseRemoveBgJob } from './parse.js';

interface RbError {
  status: number;
  code: string;
  title: string;
}

/** Gateway error codes → remove.bg's status, code and title. `details.removebg_code` overrides the code. */
function describe(err: GatewayError): RbError {
  const max = typeof err.details.max_bytes === 'number' ? err.details.max_bytes : undefined;
  const limit = max ? `${Math.round(max / (1024 * 1024))}MB` : 'the upload limit';
  switch (err.code) {
    case 'missing_api_key':
      return { status: 403, code: 'auth_failed', title: 'Missing API Key' };
    case 'invalid_api_key':
      return { status: 403, code: 'auth_failed', title: 'API Key invalid' };
    case 'subscription_inactive':
    case 'forbidden':
      return { status: 403, code: 'auth_failed', title: 'API Key not allowed' };
    case 'insufficient_credits':
      return { status: 402, code: 'insufficient_credits', title: 'Insufficient credits' };
    case 'rate_limited':
      return { status: 429, code: 'rate_limit_exceeded', title: 'Rate limit exceeded' };
    case 'missing_image':
      return { status: 400, code: 'invalid_parameter', title: 'No image given' };
    case 'multiple_images':
      return { status: 400, code: 'invalid_parameter', title: 'Multiple image sources given' };
    case 'invalid_parameter':
    case 'invalid_body':
    case 'url_not_allowed':
      return { status: 400, code: 'invalid_parameter', title: err.message };
    case 'invalid_image':
    case 'unsupported_media_type':
    case 'url_fetch_failed':
      return { status: 400, code: 'failed_to_read_image', title: 'Failed to read image' };
    case 'image_too_large':
    case 'payload_too_large':
    case 'too_many_parts':
      return { status: 400, code: 'file_too_large', title: err.details.max_pixels ? 'Image resolution too high' : `File exceeds limit of ${limit}` };
    case 'not_found':
      return { status: 404, code: 'not_found', title: 'Not found' };
    case 'method_not_allowed':
      return { status: 405, code: 'method_not_allowed', title: 'Method not allowed' };
    default:
      // Busy, shutting down, timeout: the catalogue text says what to do; an internal fault says nothing more.
      return { status: err.status, code: 'unknown_error', title: err.code === 'internal_error' || err.code === 'inference_failed' ? 'Internal error, please retry' : err.message };
  }
}

function renderRemoveBgError(err: GatewayError, c: Context<AppEnv>): Response {
  const d = describe(err);
  const code = typeof err.details.removebg_code === 'string' ? err.details.removebg_code : d.code;
  const title = typeof err.details.removebg_title === 'string' ? err.details.removebg_title : d.title;
  // Internal messages never reach clients: 5xx detail is the stable catalogue text.
  const detail = err.status >= 500 && err.code === 'internal_error' ? 'Internal server error.' : err.message;
  return new Response(JSON.stringify({ errors: [{ title, code, detail }] }), {
    status: d.status,
    headers: { 'Content-Type': 'application/json', ...commonErrorHeaders(err, c) },
  });
}

/** X-Foreground-* are in result pixels, except "relative to the input when it exceeds the limit (> 25 MP)". */
export function foregroundOf(result: RemovalResult, job: RemovalJob) {
  const fg = result.foreground;
  const big = result.input.width * result.input.height > 25_000_000 && result.width < result.input.width;
  if (!big || job.crop || job.layout) return fg;
  const k = result.input.width / result.width;
  return { left: Math.round(fg.left * k), top: Math.round(fg.top * k), width: Math.round(fg.width * k), height: Math.round(fg.height * k) };
}

async function renderRemoveBgResult(result: RemovalResult, job: RemovalJob, c: Context<AppEnv>, gw: Gateway): Promise<Response> {
  if (result.foreground.width === 0 || result.foreground.height === 0) {
    // remove.bg charges nothing for a 4xx: give the reserved credits back.
    const key = c.get('apiKey');
    if (key && result.credits > 0) await gw.stores.usage.refund(key.fingerprint, currentPeriod(), result.credits).catch(() => undefined);
    throw new GatewayError('invalid_image', {
      message: 'Could not identify foreground in image. For details and recommendations see https://www.remove.bg/supported-images.',
      details: { removebg_code: 'unknown_foreground', removebg_title: 'Could not identify foreground in image.' },
    });
  }
  const fg = foregroundOf(result, job);
  const { xType } = metaOf(job);
  const headers: Record<string, string> = {
    'X-Request-Id': c.get('requestId'),
    ...(xType ? { 'X-Type': xType } : {}),
    'X-Width': String(result.width),
    'X-Height': String(result.height),
    'X-Credits-Charged': String(result.credits),
    'X-Foreground-Top': String(fg.top),
    'X-Foreground-Left': String(fg.left),
    'X-Foreground-Width': String(fg.width),
    'X-Foreground-Height': String(fg.height),
  };
  if (prefersJson(c.req.header('accept'))) {
    const body = JSON.stringify({
      data: {
        result_b64: Buffer.from(result.bytes).toString('base64'),
        foreground_top: fg.top,
        foreground_left: fg.left,
        foreground_width: fg.width,
        foreground_height: fg.height,
      },
    });
    return new Response(body, { status: 200, headers: { ...headers, 'Content-Type': 'application/json' } });
  }
  return new Response(result.bytes, { status: 200, headers: { ...headers, 'Content-Type': result.contentType, 'Content-Length': String(result.bytes.byteLength) } });
}

const removal = (path: string): RemovalRoute => ({
  method: 'POST',
  path,
  parse: ({ c, body, gw }) => parseRemoveBgJob(body, { gw, key: c.get('apiKey')!, signal: AbortSignal.any([c.req.raw.signal, AbortSignal.timeout(gw.config.REQUEST_TIMEOUT_MS)]) }),
  render: renderRemoveBgResult,
});

/** Reported as the balance of keys whose plan has no monthly allowance (or that are never billed). */
export const UNLIMITED_CREDITS = 1_000_000_000;

export const removebg: CompatAdapter = {
  name: 'removebg',
  routes: [removal('/v1.0/removebg'), removal('/v1.0/removebg/')],
  readApiKey(c) {
    const header = c.req.header('x-api-key')?.trim();
    if (header) return header;
    // remove.bg also takes an OAuth bearer token in Authorization (partner integrations).
    const m = /^bearer\s+(.+)$/i.exec(c.req.header('authorization')?.trim() ?? '');
    return m ? m[1]!.trim() : undefined;
  },
  renderError: renderRemoveBgError,
  extraRoutes(app: Hono<AppEnv>, gw: Gateway) {
    const account = async (c: Context<AppEnv>) => {
      await admit(c, gw, removebg, false);
      const key = c.get('apiKey')!;
      const plan = planFor(gw.plans, key.plan);
      let left = UNLIMITED_CREDITS;
      if (key.mode !== 'synthetic' && plan.monthlyCredits !== null) {
        const usage = await guardStore(gw.stores.usage.get(key.fingerprint, currentPeriod()), gw.config.STORE_TIMEOUT_MS);
        left = Math.max(0, plan.monthlyCredits - usage.credits);
      }
      // Exactly the documented keys: the Ruby gem builds these objects with strict keyword arguments.
      const body = { data: { attributes: { credits: { total: left, subscription: left, payg: 0, enterprise: 0 }, api: { free_calls: 0, sizes: 'all' } } } };
      return new Response(JSON.stringify(body), { headers: { 'Content-Type': 'application/json', 'X-Request-Id': c.get('requestId') } });
    };
    app.get('/v1.0/account', account);
    app.get('/v1.0/account/', account);

    // POST /improve: remove.bg collects images to train on. We accept the submission, check it names exactly one
    // image, and keep nothing: the bytes are dropped with the request and the id refers to no stored record.
    const improve = async (c: Context<AppEnv>) => {
      const body = (await admit(c, gw, removebg, true))!;
      const found = [];
      const file = body.files.get('image_file');
      if (file) found.push({ field: 'image_file', source: { kind: 'bytes' as const, bytes: file.bytes } });
      const b64 = body.fields.get('image_file_b64');
      if (b64) found.push({ field: 'image_file_b64', source: { kind: 'bytes' as const, bytes: decodeBase64Image(b64, 'image_file_b64', gw.config.MAX_UPLOAD_BYTES) } });
      const url = body.fields.get('image_url')?.trim();
      if (url) found.push({ field: 'image_url', source: { kind: 'url' as const, url } });
      exactlyOne(found, 'image_file, image_file_b64 or image_url');
      return new Response(JSON.stringify({ id: randomUUID() }), { headers: { 'Content-Type': 'application/json', 'X-Request-Id': c.get('requestId') } });
    };
    app.post('/v1.0/improve', improve);
    app.post('/v1.0/improve/', improve);

    // Wrong methods on remove.bg's paths answer 405 in remove.bg's envelope rather than the native 404.
    const wrongMethod = (allowed: string) => (c: Context<AppEnv>) => {
      throw new GatewayError('method_not_allowed', { message: `${c.req.method} is not allowed here; use ${allowed}.`, headers: { Allow: allowed } });
    };
    for (const p of ['/v1.0/removebg', '/v1.0/improve']) app.on(['GET', 'PUT', 'PATCH', 'DELETE'], p, wrongMethod('POST'));
    app.on(['POST', 'PUT', 'PATCH', 'DELETE'], '/v1.0/account', wrongMethod('GET'));
  },
  prefixedRoutes(app: Hono<AppEnv>) {
    // Under /compat/removebg/ every unknown path is ours to answer, in remove.bg's envelope.
    app.all('*', (c) => {
      throw new GatewayError('not_found', { message: `No route for ${c.req.method} ${c.req.path}.` });
    });
  },
};
