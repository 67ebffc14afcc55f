// src/http/request-id.ts
// Every response carries X-Request-Id; a sane incoming one is kept so traces join up across services.
import { randomBytes } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from './env.js';

const SANE = /^[A-Za-z0-9._:\-]{1,128}$/;

export function newRequestId(): string {
  return `req_${randomBytes(12).toString('base64url')}`;
}

export const requestId = (): MiddlewareHandler<AppEnv> =>
  async function requestId(c, next) {
    const incoming = c.req.header('x-request-id');
    const id = incoming && SANE.test(incoming) ? incoming : newRequestId();
    c.set('requestId', id);
    c.header('X-Request-Id', id);
    await next();
    c.res.headers.set('X-Request-Id', id);
  };
