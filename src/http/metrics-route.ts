// src/http/metrics-route.ts
// GET /metrics in Prometheus text format; with METRICS_TOKEN set, scrapers must send it as a Bearer token.
import { timingSafeEqual } from 'node:crypto';
import type { Handler } from 'hono';
import type { Gateway } from '../gateway.js';
import type { AppEnv } from './env.js';

function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (!presented) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export const metricsHandler = (gw: Gateway): Handler<AppEnv> =>
  async function metrics(c) {
    const expected = gw.config.METRICS_TOKEN;
    if (expected && !tokenMatches(c.req.header('authorization')?.replace(/^Bearer\s+/i, ''), expected)) {
      c.header('WWW-Authenticate', 'Bearer realm="metrics"');
      return c.text('metrics token required\n', 401);
    }
    c.header('Cache-Control', 'no-store');
    return c.body(await gw.metrics.registry.metrics(), 200, { 'Content-Type': gw.metrics.registry.contentType });
  };
