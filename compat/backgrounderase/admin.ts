// compat/backgrounderase/admin.ts
// /v2/admin/keys: admin-mode keys create, list and revoke API keys over HTTP. Errors use the native /v2 envelope.
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { GatewayError, invalidParameter } from '../../src/errors.js';
import { guardStore, type Gateway } from '../../src/gateway.js';
import { parseBody } from '../../src/http/body.js';
import type { AppEnv } from '../../src/http/env.js';
import { createKey } from '../../src/keys.js';
import type { ApiKeyRecord } from '../../src/store/types.js';
import { admit, bodyLimits } from '../mount.js';
import type { CompatAdapter } from '../types.js';

/** What the API shows of a key: everything but its hash (the secret is never stored at all). */
export function keyView(r: ApiKeyRecord) {
  return {
    fingerprint: r.fingerprint,
    mode: r.mode,
    label: r.label ?? null,
    email: r.email,
    plan: r.plan,
    subscription_status: r.subscriptionStatus,
    billing_model: r.billingModel,
    usage_unit: r.usageUnit,
    created_at: r.createdAt,
    revoked_at: r.revokedAt ?? null,
  };
}

const createSchema = z
  .object({
    mode: z.enum(['live', 'admin', 'synthetic']).optional(),
    plan: z.string().min(1).max(100).optional(),
    email: z.email().max(320).optional(),
    label: z.string().max(200).optional(),
    subscription_status: z.enum(['active', 'trialing', 'past_due', 'canceled', 'inactive']).optional(),
  })
  .strict();

async function requireAdmin(c: Context<AppEnv>, gw: Gateway, adapter: CompatAdapter) {
  await admit(c, gw, adapter, false);
  const key = c.get('apiKey')!;
  if (key.mode !== 'admin') throw new GatewayError('forbidden', { message: 'Only admin keys may manage API keys.', details: { mode: key.mode } });
  return key;
}

export function adminRoutes(app: Hono<AppEnv>, gw: Gateway, adapter: CompatAdapter): void {
  const t = gw.config.STORE_TIMEOUT_MS;

  app.get('/v2/admin/keys', async (c) => {
    await requireAdmin(c, gw, adapter);
    const keys = await guardStore(gw.stores.keys.list(), t);
    return c.json({ status: 'ok', keys: keys.map(keyView) });
  });

  app.post('/v2/admin/keys', async (c) => {
    await requireAdmin(c, gw, adapter);
    const body = await parseBody(c.req.raw, bodyLimits(gw));
    if (body.kind !== 'json' && body.kind !== 'none') throw new GatewayError('invalid_body', { message: 'Send a JSON object (Content-Type: application/json).' });
    const parsed = createSchema.safeParse(body.json ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const field = issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : 'body');
      throw new GatewayError('invalid_parameter', { message: `Invalid value for ${field}: ${issue.message}.`, details: { field } });
    }
    const p = parsed.data;
    if (p.plan !== undefined && !gw.plans[p.plan]) throw invalidParameter('plan', `one of ${Object.keys(gw.plans).join(', ')}`, p.plan);
    const { secret, record } = await guardStore(
      createKey(
        gw.stores.keys,
        {
          ...(p.mode ? { mode: p.mode } : {}),
          ...(p.plan ? { plan: p.plan } : {}),
          ...(p.email ? { email: p.email } : {}),
          ...(p.label ? { label: p.label } : {}),
          ...(p.subscription_status ? { subscriptionStatus: p.subscription_status } : {}),
        },
        { plan: gw.config.DEFAULT_PLAN },
      ),
      t,
    );
    gw.log.info({ fingerprint: record.fingerprint, mode: record.mode, by: c.get('apiKey')!.fingerprint, requestId: c.get('requestId') }, 'api key created');
    c.header('Cache-Control', 'no-store');
    return c.json({ status: 'ok', api_key: secret, key: keyView(record) }, 201);
  });

  app.delete('/v2/admin/keys/:fingerprint', async (c) => {
    await requireAdmin(c, gw, adapter);
    const fp = c.req.param('fingerprint');
    const existing = await guardStore(gw.stores.keys.get(fp), t);
    if (!existing) throw new GatewayError('not_found', { message: `No API key with fingerprint ${fp}.`, details: { fingerprint: fp } });
    // Revoking twice is not an error: the key stays revoked with its first time.
    if (!existing.revokedAt) await guardStore(gw.stores.keys.revoke(fp, new Date()), t);
    const after = (await guardStore(gw.stores.keys.get(fp), t)) ?? existing;
    gw.log.info({ fingerprint: fp, by: c.get('apiKey')!.fingerprint, requestId: c.get('requestId') }, 'api key revoked');
    return c.json({ status: 'ok', key: keyView(after) });
  });
}
