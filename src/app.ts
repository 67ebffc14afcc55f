// src/app.ts
// The root app: request ids, health, the native /v2 dialect and every compat adapter, plus JSON 404/405.
import { Hono } from 'hono';
import { backgroundErase, renderNativeError } from '../compat/backgrounderase/index.js';
import { adapterApp } from '../compat/mount.js';
import { VENDOR_ADAPTERS } from '../compat/index.js';
import { GatewayError, toGatewayError } from './errors.js';
import type { Gateway } from './gateway.js';
import type { AppEnv } from './http/env.js';
import { healthReport } from './http/health.js';
import { metricsHandler } from './http/metrics-route.js';
import { observe } from './http/observe.js';
import { requestId } from './http/request-id.js';

export function createApp(gw: Gateway): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use('*', requestId());
  app.use('*', observe(gw));
  app.get('/metrics', metricsHandler(gw));

  const health = async (c: import('hono').Context<AppEnv>) => {
    const { ready, body } = await healthReport(gw);
    c.header('Cache-Control', 'no-store');
    return c.json(body, ready ? 200 : 503);
  };
  app.get('/v2/health', health);
  app.get('/health', health);
  app.get('/', health);

  app.route('/', adapterApp(gw, backgroundErase));
  for (const adapter of VENDOR_ADAPTERS) {
    app.route('/', adapterApp(gw, adapter));
    app.route(`/compat/${adapter.name}`, adapterApp(gw, adapter, true));
  }

  app.notFound((c) => {
    c.set('errorCode', 'not_found');
    c.set('dialect', 'none');
    return renderNativeError(new GatewayError('not_found', { message: `No route for ${c.req.method} ${c.req.path}.` }), c);
  });
  app.onError((err, c) => {
    const e = toGatewayError(err);
    c.set('errorCode', e.code);
    if (e.status >= 500) gw.log.error({ err, requestId: c.get('requestId') }, 'request failed');
    return renderNativeError(e, c);
  });
  return app;
}
