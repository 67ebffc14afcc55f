// compat/slazzer/index.ts
// Slazzer (compat-apis §4, seed 003): POST /v2.0/remove_image_background (and the older /api/v1/ path), key in API-KEY.
// One source of source_image_file / source_image_url / source_image_base64; answers the image bytes (transparent PNG by
// default), or with output_image_format=base64 the JSON {"output_image", "content_type", "width", "height"} (shape is
// ours: Slazzer's docs are silent [U]). Errors are {"error": message} with 400 input, 401 key, 402 credits, 429 rate.
// Slazzer documents no balance endpoint (§4: [U]), so none is served.
import type { Context, Hono } from 'hono';
import { GatewayError } from '../../src/errors.js';
import type { Gateway } from '../../src/gateway.js';
import type { ParsedBody } from '../../src/http/body.js';
import type { AppEnv } from '../../src/http/env.js';
import { makeJob, type JobSource, type RemovalJob, type RemovalResult } from '../../src/job.js';
import { enumMap, readBool, readColor, readEnum } from '../fields.js';
import { commonErrorHeaders } from '../mount.js';
import { decodeBase64Image, exactlyOne } from '../sources.js';
import type { CompatAdapter, RemovalRoute } from '../types.js';

/** Gateway error codes → Slazzer's status and message (the documented texts where §4 gives one). */
function describe(err: GatewayError): { status: number; error: string } {
  switch (err.code) {
    // Slazzer answers a missing and a wrong API-KEY alike (its SDK README: "API-KEY missing or invalid API-KEY").
    case 'missing_api_key':
    case 'invalid_api_key':
    case 'subscription_inactive':
    case 'forbidden':
      return { status: 401, error: 'invalid api key' };
    case 'insufficient_credits':
      return { status: 402, error: 'No credits remaining' };
    case 'rate_limited':
      return { status: 429, error: 'Api rate limit crossed' };
    case 'missing_image':
      return { status: 400, error: 'Source image file not found' };
    case 'not_found':
      return { status: 404, error: 'Not found' };
    // Kept as 405 (not folded into 400) so a client that used the wrong method can tell.
    case 'method_not_allowed':
      return { status: 405, error: 'Method not allowed' };
    default:
      if (err.status < 500) return { status: 400, error: err.message };
      return { status: err.status, error: err.code === 'internal_error' ? 'Internal server error' : err.message };
  }
}

function renderSlazzerError(err: GatewayError, c: Context<AppEnv>): Response {
  const d = describe(err);
  return new Response(JSON.stringify({ error: d.error }), {
    status: d.status,
    headers: { 'Content-Type': 'application/json', ...commonErrorHeaders(err, c) },
  });
}

/** Sloppy clients send every form field, empty ones included: an empty field means "not given". */
function given(fields: Map<string, string>): Map<string, string> {
  return new Map([...fields].filter(([, v]) => v.trim() !== ''));
}

const base64Outputs = new WeakSet<RemovalJob>();
const FORMATS = ['png', 'jpg', 'webp'] as const;

async function fetchBackground(gw: Gateway, url: string, signal: AbortSignal): Promise<Uint8Array> {
  if (!gw.pipeline.fetchImage) throw new GatewayError('url_not_allowed', { message: 'bg_image_url is disabled on this server.', details: { field: 'bg_image_url' } });
  try {
    return await gw.pipeline.fetchImage(url, signal);
  } catch (err) {
    if (err instanceof GatewayError) throw new GatewayError(err.code, { message: `bg_image_url: ${err.message}`, details: { ...err.details, field: 'bg_image_url' }, cause: err });
    throw err;
  }
}

export async function parseSlazzerJob(body: ParsedBody, gw: Gateway, signal: AbortSignal): Promise<RemovalJob> {
  const f = given(body.fields);
  const max = gw.config.MAX_UPLOAD_BYTES;
  const found: { field: string; source: JobSource }[] = [];
  const file = body.files.get('source_image_file');
  if (file && file.bytes.byteLength > 0) found.push({ field: 'source_image_file', source: { kind: 'bytes', bytes: file.bytes } });
  const url = f.get('source_image_url')?.trim();
  if (url) found.push({ field: 'source_image_url', source: { kind: 'url', url } });
  const b64 = f.get('source_image_base64');
  if (b64) found.push({ field: 'source_image_base64', source: { kind: 'bytes', bytes: decodeBase64Image(b64, 'source_image_base64', max) } });
  const source = exactlyOne(found, 'source_image_file, source_image_url or source_image_base64');

  const bgColor = readColor(f, 'bg_color_code');
  const bgFile = body.files.get('bg_image_file');
  const bgUrl = f.get('bg_image_url')?.trim();
  const bgB64 = f.get('bg_image_base64');
  const bgGiven = [bgColor && 'bg_color_code', bgFile && bgFile.bytes.byteLength > 0 && 'bg_image_file', bgUrl && 'bg_image_url', bgB64 && 'bg_image_base64'].filter(Boolean);
  if (bgGiven.length > 1) throw new GatewayError('invalid_parameter', { message: `Send at most one background; got ${bgGiven.join(', ')}.`, details: { fields: bgGiven } });

  const channels = readEnum(f, 'channel', ['rgba', 'alpha'], enumMap(['rgba', 'alpha'] as const)) ?? 'rgba';
  if (channels === 'alpha' && bgGiven.length) throw new GatewayError('invalid_parameter', { message: 'channel=alpha returns the mask only: drop the background fields.', details: { field: 'channel' } });
  const output = readEnum(f, 'output_image_format', ['binary', 'base64'], enumMap(['binary', 'base64'] as const, { file: 'binary' }));
  const format = readEnum(f, 'format', FORMATS, enumMap<(typeof FORMATS)[number]>(FORMATS, { jpeg: 'jpg' })) ?? 'png';

  let bgImage: Uint8Array | undefined;
  if (bgFile && bgFile.bytes.byteLength > 0) bgImage = bgFile.bytes;
  else if (bgB64) bgImage = decodeBase64Image(bgB64, 'bg_image_base64', max);
  else if (bgUrl) bgImage = await fetchBackground(gw, bgUrl, signal);

  const job = makeJob({
    source,
    format,
    channels,
    size: readBool(f, 'preview') ? 'preview' : 'full',
    crop: readBool(f, 'crop') ?? false,
    ...(bgColor ? { bgColor } : {}),
    ...(bgImage ? { bgImage } : {}),
  });
  if (output === 'base64') base64Outputs.add(job);
  return job;
}

function renderSlazzerResult(result: RemovalResult, job: RemovalJob, c: Context<AppEnv>): Response {
  const headers = { 'X-Request-Id': c.get('requestId'), 'X-Credits-Charged': String(result.credits) };
  if (base64Outputs.has(job)) {
    const body = JSON.stringify({ output_image: Buffer.from(result.bytes).toString('base64'), content_type: result.contentType, width: result.width, height: result.height });
    return new Response(body, { status: 200, headers: { ...headers, 'Content-Type': 'application/json' } });
  }
  return new Response(result.bytes, { status: 200, headers: { ...headers, 'Content-Type': result.contentType, 'Content-Length': String(result.bytes.byteLength) } });
}

const PATHS = ['/v2.0/remove_image_background', '/api/v1/remove_image_background'] as const;

const removal = (path: string): RemovalRoute => ({
  method: 'POST',
  path,
  parse: ({ c, body, gw }) => parseSlazzerJob(body, gw, AbortSignal.any([c.req.raw.signal, AbortSignal.timeout(gw.config.REQUEST_TIMEOUT_MS)])),
  render: renderSlazzerResult,
});

export const slazzer: CompatAdapter = {
  name: 'slazzer',
  routes: PATHS.map(removal),
  // Header names are case-insensitive: API-KEY, api-key and Api-Key all arrive here.
  readApiKey: (c) => c.req.header('api-key')?.trim() || undefined,
  renderError: renderSlazzerError,
  extraRoutes(app: Hono<AppEnv>) {
    // Other methods on Slazzer's paths answer in Slazzer's {"error"} shape, not the native 404 envelope (an object
    // under "error", which a Slazzer client reading a string would mis-parse).
    for (const path of PATHS) {
      app.all(path, () => {
        throw new GatewayError('method_not_allowed', { message: `Use POST ${path} with a multipart/form-data body.`, headers: { Allow: 'POST' } });
      });
    }
  },
  prefixedRoutes(app: Hono<AppEnv>) {
    // Under /compat/slazzer/ every path is Slazzer's to answer, so unknown ones get its envelope too.
    app.all('*', (c) => {
      throw new GatewayError('not_found', { message: `No route for ${c.req.method} ${c.req.path}.` });
    });
  },
};
