// compat/backgrounderase/index.ts
// The native dialect: BackgroundErase /v2 (seed 003). An adapter like the others, the one with no renaming.
import type { Context, Hono } from 'hono';
import type { GatewayError } from '../../src/errors.js';
import type { Gateway } from '../../src/gateway.js';
import { readNativeKey } from '../../src/http/auth.js';
import type { ParsedBody } from '../../src/http/body.js';
import type { AppEnv } from '../../src/http/env.js';
import type { RemovalJob, RemovalResult } from '../../src/job.js';
import { prefersJson } from '../accept.js';
import { admit, commonErrorHeaders } from '../mount.js';
import type { CompatAdapter, RemovalRoute } from '../types.js';
import { accountBody } from './account.js';
import { adminRoutes } from './admin.js';
import { isLegacyMaskJob, parseNativeJob } from './parse.js';

export function renderNativeError(err: GatewayError, c: Context<AppEnv>): Response {
  const body = {
    error: { code: err.code, message: err.message, status: err.status, request_id: c.get('requestId'), details: err.details },
  };
  return new Response(JSON.stringify(body), {
    status: err.status,
    headers: { 'Content-Type': 'application/json', ...commonErrorHeaders(err, c) },
  });
}

function imageHeaders(result: RemovalResult, c: Context<AppEnv>): Record<string, string> {
  return {
    'X-Request-Id': c.get('requestId'),
    'X-Width': String(result.width),
    'X-Height': String(result.height),
    'X-Credits-Charged': String(result.credits),
    'X-Foreground-Top': String(result.foreground.top),
    'X-Foreground-Left': String(result.foreground.left),
    'X-Foreground-Width': String(result.foreground.width),
    'X-Foreground-Height': String(result.foreground.height),
    'X-Input-Width': String(result.input.width),
    'X-Input-Height': String(result.input.height),
    'X-Model': result.model,
  };
}

export function renderNativeResult(result: RemovalResult, job: RemovalJob, c: Context<AppEnv>): Response {
  const headers = imageHeaders(result, c);
  if (isLegacyMaskJob(job)) {
    return Response.json({ mask: Buffer.from(result.bytes).toString('base64') }, { headers });
  }
  if (prefersJson(c.req.header('accept'))) {
    return Response.json(
      {
        status: 'ok',
        image_base64: Buffer.from(result.bytes).toString('base64'),
        content_type: result.contentType,
        format: result.format,
        channels: job.channels,
        width: result.width,
        height: result.height,
        foreground: result.foreground,
        credits_charged: result.credits,
        request_id: c.get('requestId'),
      },
      { headers },
    );
  }
  return new Response(result.bytes, {
    headers: { ...headers, 'Content-Type': result.contentType, 'Content-Length': String(result.bytes.byteLength) },
  });
}

const removal = (path: string): RemovalRoute => ({
  method: 'POST',
  path,
  parse: ({ body, gw }) => parseNativeJob(body, gw.config.MAX_UPLOAD_BYTES),
  render: (result, job, c) => renderNativeResult(result, job, c),
});

export const backgroundErase: CompatAdapter = {
  name: 'backgrounderase',
  routes: [removal('/v2'), removal('/v2/')],
  readApiKey: readNativeKey,
  readBodyKey(body: ParsedBody) {
    const v = body.json?.api_key ?? body.fields.get('api_key');
    return typeof v === 'string' && v.trim() ? v.trim() : undefined;
  },
  renderError: renderNativeError,
  extraRoutes(app: Hono<AppEnv>, gw: Gateway) {
    app.get('/v2/account', async (c) => {
      await admit(c, gw, backgroundErase, false);
      return c.json(await accountBody(gw, c.get('apiKey')!));
    });
    adminRoutes(app, gw, backgroundErase);
  },
};
