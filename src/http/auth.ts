// src/http/auth.ts
// Finds the presented API key and resolves it to an active key record.
import type { Context } from 'hono';
import { GatewayError } from '../errors.js';
import { guardStore, type Gateway } from '../gateway.js';
import { findKey } from '../keys.js';
import type { ApiKeyRecord } from '../store/types.js';

const AUTH_SCHEMES = /^(?:bearer|token|api-key|apikey)\s+(.+)$/i;

/** x-api-key, then Authorization: Bearer|Token|Api-Key, then the legacy `api_key` query parameter. */
export function readNativeKey(c: Context): string | undefined {
  const header = c.req.header('x-api-key')?.trim();
  if (header) return header;
  const auth = c.req.header('authorization')?.trim();
  const m = auth ? AUTH_SCHEMES.exec(auth) : null;
  if (m) return m[1]!.trim();
  const q = c.req.query('api_key')?.trim();
  return q || undefined;
}

const ACTIVE = new Set(['active', 'trialing']);

export async function authenticate(gw: Gateway, presented: string | undefined): Promise<ApiKeyRecord> {
  if (!presented) throw new GatewayError('missing_api_key');
  const record = await guardStore(findKey(gw.stores.keys, presented), gw.config.STORE_TIMEOUT_MS);
  if (!record || record.revokedAt) throw new GatewayError('invalid_api_key');
  if (!ACTIVE.has(record.subscriptionStatus)) {
    throw new GatewayError('subscription_inactive', { details: { subscription_status: record.subscriptionStatus } });
  }
  return record;
}
