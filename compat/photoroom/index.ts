// compat/photoroom/index.ts
// Photoroom's Remove Background API, Basic plan (compat-apis §2): POST /v1/segment on sdk.photoroom.com, and the
// account endpoints of image-api.photoroom.com (GET /v1/account, GET /v2/account), which collide with the native
// /v2/account and so are served only under /compat/photoroom/.
// Choices where Photoroom's docs are silent [U] (compat/README.md lists them all):
// - JSON ({"base64img"}) only when Accept names application/json and no image type (image/*, */*) at all.
// - Auth failures are 403 (the only auth status the spec documents), types from the third-party CLI's list.
// - 413/415 become 400 (the spec documents 400, 402 and 403 only); 429 and 5xx keep their status.
// - 402 uses the segment spec's {detail,status_code,type}, not the shared {"error":{"detail"}} schema.
// - x-uncertainty-score is computed from the model's mask (src/pipeline/uncertainty.ts); never -1.
import type { Context, Hono } from 'hono';
import { GatewayError } from '../../src/errors.js';
import type { Gateway } from '../../src/gateway.js';
import type { ParsedBody } from '../../src/http/body.js';
import type { AppEnv } from '../../src/http/env.js';
import { makeJob, type RemovalJob, type RemovalResult } from '../../src/job.js';
import { enumMap, readBool, readColor, readEnum } from '../fields.js';
import { admit, commonErrorHeaders } from '../mount.js';
import { creditBalance } from '../remaining-credits.js';
import type { CompatAdapter } from '../types.js';

/** Photoroom's status for each gateway code that differs from the gateway's own. */
const STATUS: Partial<Record<string, number>> = {
  missing_api_key: 403,
  invalid_api_key: 403,
  image_too_large: 400,
  payload_too_large: 400,
  too_many_parts: 400,
  unsupported_media_type: 400,
};

/** `type` for codes whose name differs from the gateway code (the rest use the code itself). */
const TYPE: Partial<Record<string, string>> = {
  missing_api_key: 'forbidden',
  subscription_inactive: 'insufficient_permissions',
  insufficient_credits: 'insufficient_credits',
  rate_limited: 'rate_limit_exceeded',
  unsupported_media_type: 'unsupported_image_format',
};

const DETAIL: Partial<Record<string, string>> = {
  missing_image: 'Please provide an image.',
  missing_api_key: 'Missing API key. Send it in the x-api-key header.',
};

export function renderPhotoroomError(err: GatewayError, c: Context<AppEnv>): Response {
  const status = STATUS[err.code] ?? err.status;
  let detail = DETAIL[err.code] ?? err.message;
  if (err.code === 'insufficient_credits') detail = `API credits exhausted. ${err.message}`;
  const body = { detail, status_code: status, type: TYPE[err.code] ?? err.code };
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...commonErrorHeaders(err, c) },
  });
}

/** The account API's own error shape: {"error":{"message"}}; a missing key is 400 "apiKey: Required". */
function renderAccountError(err: GatewayError, c: Context<AppEnv>): Response {
  const status = err.code === 'missing_api_key' ? 400 : err.code === 'invalid_api_key' ? 403 : err.status;
  const message = err.code === 'missing_api_key' ? 'apiKey: Required' : err.message;
  return new Response(JSON.stringify({ error: { message } }), {
    status,
    headers: { 'Content-Type': 'application/json', ...commonErrorHeaders(err, c) },
  });
}

const FORMATS = ['png', 'jpg', 'webp'] as const;
const SIZES = ['preview', 'medium', 'hd', 'full'] as const;

export function parsePhotoroomJob(body: ParsedBody): RemovalJob {
  const f = body.fields;
  const file = body.files.get('image_file');
  if (!file) throw new GatewayError('missing_image', { message: 'Please provide an image.' });
  const bgColor = readColor(f, 'bg_color');
  return makeJob({
    source: { kind: 'bytes', bytes: file.bytes, ...(file.filename ? { filename: file.filename } : {}) },
    format: readEnum(f, 'format', FORMATS, enumMap(FORMATS, { jpeg: 'jpg' })) ?? 'png',
    channels: readEnum(f, 'channels', ['rgba', 'alpha'], enumMap(['rgba', 'alpha'] as const)) ?? 'rgba',
    size: readEnum(f, 'size', SIZES, enumMap(SIZES)) ?? 'full',
    crop: readBool(f, 'crop') ?? false,
    despill: readBool(f, 'despill') ?? false,
    ...(bgColor ? { bgColor } : {}),
  });
}

/** Bytes whenever an image type is acceptable (the third-party CLI sends `image/png, application/json`). */
function wantsJson(accept: string | undefined): boolean {
  if (!accept) return false;
  const types = accept
    .split(',')
    .map((p) => p.trim().toLowerCase().split(';'))
    .filter(([, ...params]) => !params.some((q) => /^\s*q\s*=\s*0(?:\.0*)?\s*$/.test(q)))
    .map(([t]) => t!.trim());
  return types.includes('application/json') && !types.some((t) => t.startsWith('image/') || t === '*/*');
}

export function renderPhotoroomResult(result: RemovalResult, c: Context<AppEnv>): Response {
  const headers: Record<string, string> = {
    'x-uncertainty-score': String(result.uncertainty ?? -1),
    'X-Request-Id': c.get('requestId'),
  };
  if (wantsJson(c.req.header('accept'))) {
    return new Response(JSON.stringify({ base64img: Buffer.from(result.bytes).toString('base64') }), {
      headers: { ...headers, 'Content-Type': 'application/json' },
    });
  }
  // Sample clients compare Content-Type with exact strings: never add parameters.
  return new Response(result.bytes, {
    headers: { ...headers, 'Content-Type': result.contentType, 'Content-Length': String(result.bytes.byteLength) },
  });
}

async function account(c: Context<AppEnv>, gw: Gateway, shape: 'v1' | 'v2'): Promise<Response> {
  try {
    await admit(c, gw, photoroom, false);
    const balance = await creditBalance(gw, c.get('apiKey')!);
    if (shape === 'v1') return c.json({ credits: { available: balance.remaining, subscription: balance.allowance } });
    // One Remove-BG image is one credit at full size: the image count is the whole credits left.
    return c.json({ images: { available: Math.floor(balance.remaining), subscription: Math.floor(balance.allowance) }, plan: 'basic' });
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    c.set('errorCode', err.code);
    return renderAccountError(err, c);
  }
}

export const photoroom: CompatAdapter = {
  name: 'photoroom',
  readApiKey: (c) => c.req.header('x-api-key')?.trim() || undefined,
  renderError: renderPhotoroomError,
  routes: [
    {
      method: 'POST',
      path: '/v1/segment',
      parse: ({ body }) => parsePhotoroomJob(body),
      render: (result, _job, c) => renderPhotoroomResult(result, c),
    },
  ],
  extraRoutes(app: Hono<AppEnv>) {
    app.all('/v1/segment', () => {
      throw new GatewayError('method_not_allowed', { message: 'Use POST /v1/segment with a multipart/form-data body.', headers: { Allow: 'POST' } });
    });
  },
  prefixedRoutes(app: Hono<AppEnv>, gw: Gateway) {
    app.get('/v1/account', (c) => account(c, gw, 'v1'));
    app.get('/v2/account', (c) => account(c, gw, 'v2'));
    for (const path of ['/v1/account', '/v2/account']) {
      app.all(path, (c) => {
        c.set('errorCode', 'method_not_allowed');
        return renderAccountError(new GatewayError('method_not_allowed', { message: `Use GET ${path}.`, headers: { Allow: 'GET' } }), c);
      });
    }
    // Under /compat/photoroom/ every path is Photoroom's, so unknown ones answer in its envelope, not the native one.
    app.all('*', (c) => {
      throw new GatewayError('not_found', { message: `No route for ${c.req.method} ${c.req.path}.` });
    });
  },
};
