// src/http/observe.ts
// One access-log line and the request metrics per response. The path is logged without its query string
// (legacy clients put api_key there) and nothing from the body or headers is logged.
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { Gateway } from '../gateway.js';
import type { AppEnv } from './env.js';

/**
 * The registered pattern of the handler that answered (read after `next()`, when the route index points at it),
 * so label cardinality stays bounded whatever paths clients invent. Not the last matched route: every adapter
 * sub-app mounted at `/` adds a `/*` middleware that matches after the real handler.
 */
function routeLabel(c: Parameters<MiddlewareHandler<AppEnv>>[0]): string {
  const path = routePath(c);
  return !path || path === '*' || path.endsWith('/*') ? 'unmatched' : path;
}

export const observe = (gw: Gateway): MiddlewareHandler<AppEnv> =>
  async function observe(c, next) {
    const started = performance.now();
    await next();
    const seconds = (performance.now() - started) / 1000;
    const route = routeLabel(c);
    const dialect = c.get('dialect') ?? 'none';
    const status = c.res.status;
    gw.metrics.requests.inc({ route, dialect, status: String(status) });
    gw.metrics.requestSeconds.observe({ route, dialect }, seconds);
    const errorCode = c.get('errorCode');
    if (errorCode) gw.metrics.errors.inc({ code: errorCode, dialect });
    if (route === '/metrics' || (route === '/v2/health' && status === 200)) return;
    const line = {
      requestId: c.get('requestId'),
      method: c.req.method,
      path: c.get('logPath') ?? c.req.path,
      route,
      dialect,
      status,
      ms: Math.round(seconds * 10000) / 10,
      bytesIn: Number(c.req.header('content-length')) || undefined,
      bytesOut: Number(c.res.headers.get('content-length')) || undefined,
      ...(errorCode ? { code: errorCode } : {}),
      ...(c.get('apiKey') ? { keyFingerprint: c.get('apiKey')!.fingerprint } : {}),
      ...(c.get('timings') ? { timings: c.get('timings') } : {}),
    };
    if (status >= 500) gw.log.warn(line, 'request');
    else gw.log.info(line, 'request');
  };
