// test/admin-keys.test.ts
// /v2/admin/keys over real HTTP: admin keys create, list and revoke; live keys 403, no/invalid key 401, all in the
// native error envelope and matching openapi.yaml.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyRecord } from '../src/keys.js';
import { expectMatchesSpec } from './helpers/openapi.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';

let s: TestServer;
const ADMIN = 'bge_admin_test_admin_key_0123456789abcdef';
const admin = { 'x-api-key': ADMIN };
const json = { 'content-type': 'application/json' };

beforeAll(async () => {
  s = await startServer({ PLANS: JSON.stringify({ Starter: { monthlyCredits: 10 } }) });
  await s.gw.stores.keys.add(keyRecord(ADMIN, { mode: 'admin', email: 'ops@example.com' }, { plan: 'Business' }));
});
afterAll(async () => s?.close());

async function expectError(res: Response, status: number, code: string, operationId: string) {
  const body = (await expectMatchesSpec(res, operationId)) as { error: { code: string; status: number; request_id: string; message: string } };
  expect(res.status).toBe(status);
  expect(body.error.code).toBe(code);
  expect(body.error.status).toBe(status);
  expect(body.error.request_id).toBe(res.headers.get('x-request-id'));
  return body.error;
}

const create = (body: unknown, headers: Record<string, string> = admin) =>
  fetch(`${s.url}/v2/admin/keys`, { method: 'POST', headers: { ...headers, ...json }, body: JSON.stringify(body) });

describe('/v2/admin/keys', () => {
  it('401 missing_api_key and invalid_api_key; 403 forbidden for a live key — on every method', async () => {
    await expectError(await fetch(`${s.url}/v2/admin/keys`), 401, 'missing_api_key', 'listKeys');
    await expectError(await fetch(`${s.url}/v2/admin/keys`, { headers: { 'x-api-key': 'bge_admin_nope' } }), 401, 'invalid_api_key', 'listKeys');
    const e = await expectError(await fetch(`${s.url}/v2/admin/keys`, { headers: { 'x-api-key': TEST_KEY } }), 403, 'forbidden', 'listKeys');
    expect(e.message).toMatch(/admin/);
    await expectError(await create({ mode: 'admin' }, { 'x-api-key': TEST_KEY }), 403, 'forbidden', 'createKey');
    await expectError(await create({}, {}), 401, 'missing_api_key', 'createKey');
    await expectError(await fetch(`${s.url}/v2/admin/keys/tok_fp_0000`, { method: 'DELETE', headers: { 'x-api-key': TEST_KEY } }), 403, 'forbidden', 'revokeKey');
    await expectError(await fetch(`${s.url}/v2/admin/keys/tok_fp_0000`, { method: 'DELETE' }), 401, 'missing_api_key', 'revokeKey');
  });

  it('create → the secret once (201, no-store); the key works at once with its account fields', async () => {
    const res = await create({ mode: 'live', plan: 'Starter', email: 'customer@example.com', label: 'customer A' });
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await expectMatchesSpec(res, 'createKey')) as { api_key: string; key: Record<string, unknown> };
    expect(body.api_key).toMatch(/^bge_live_[A-Za-z0-9_-]{43}$/);
    expect(body.key).toMatchObject({ mode: 'live', plan: 'Starter', email: 'customer@example.com', label: 'customer A', subscription_status: 'active', revoked_at: null });
    const account = await fetch(`${s.url}/v2/account`, { headers: { 'x-api-key': body.api_key } });
    expect(account.status).toBe(200);
    const a = (await account.json()) as { api_key: { fingerprint: string; mode: string }; account: { plan: string; email: string }; usage: { monthly_credits: number } };
    expect(a.api_key).toMatchObject({ fingerprint: body.key.fingerprint, mode: 'live' });
    expect(a.account).toMatchObject({ plan: 'Starter', email: 'customer@example.com' });
    expect(a.usage.monthly_credits).toBe(10);
  });

  it('defaults: an empty body makes a live key on DEFAULT_PLAN; admin and synthetic modes have their prefixes', async () => {
    const plain = (await (await fetch(`${s.url}/v2/admin/keys`, { method: 'POST', headers: admin })).json()) as { api_key: string; key: { mode: string; plan: string } };
    expect(plain.api_key).toMatch(/^bge_live_/);
    expect(plain.key).toMatchObject({ mode: 'live', plan: 'Business' });
    const adm = (await (await create({ mode: 'admin' })).json()) as { api_key: string };
    expect(adm.api_key).toMatch(/^bge_admin_/);
    // A new admin key can manage keys itself.
    expect((await fetch(`${s.url}/v2/admin/keys`, { headers: { 'x-api-key': adm.api_key } })).status).toBe(200);
    const syn = (await (await create({ mode: 'synthetic' })).json()) as { api_key: string };
    expect(syn.api_key).toMatch(/^bge_test_/);
  });

  it('bad input → 400 in the native envelope (unknown mode, plan, field, bad email, non-JSON)', async () => {
    let e = await expectError(await create({ mode: 'root' }), 400, 'invalid_parameter', 'createKey');
    expect(e.message).toContain('mode');
    e = await expectError(await create({ plan: 'Platinum' }), 400, 'invalid_parameter', 'createKey');
    expect(e.message).toContain('Platinum');
    e = await expectError(await create({ colour: 'red' }), 400, 'invalid_parameter', 'createKey');
    expect(e.message).toContain('colour');
    await expectError(await create({ email: 'not-an-email' }), 400, 'invalid_parameter', 'createKey');
    await expectError(await fetch(`${s.url}/v2/admin/keys`, { method: 'POST', headers: { ...admin, ...json }, body: '{nope' }), 400, 'invalid_body', 'createKey');
    await expectError(await fetch(`${s.url}/v2/admin/keys`, { method: 'POST', headers: { ...admin, 'content-type': 'text/plain' }, body: 'mode=admin' }), 400, 'invalid_body', 'createKey');
  });

  it('list shows every key with fingerprints and account fields, never a secret or hash', async () => {
    const made = (await (await create({ label: 'listed' })).json()) as { api_key: string; key: { fingerprint: string } };
    const res = await fetch(`${s.url}/v2/admin/keys`, { headers: admin });
    const body = (await expectMatchesSpec(res, 'listKeys')) as { keys: { fingerprint: string; label: string | null; mode: string }[] };
    expect(body.keys.find((k) => k.fingerprint === made.key.fingerprint)?.label).toBe('listed');
    expect(body.keys.some((k) => k.mode === 'admin')).toBe(true);
    const text = JSON.stringify(body);
    for (const secret of [made.api_key, ADMIN, TEST_KEY]) expect(text).not.toContain(secret);
    expect(text).not.toMatch(/[0-9a-f]{64}/);
  });

  it('revoke → the key gets 401 at once; revoking again is 200 with the first time; unknown → 404', async () => {
    const made = (await (await create({})).json()) as { api_key: string; key: { fingerprint: string } };
    const h = { 'x-api-key': made.api_key };
    expect((await fetch(`${s.url}/v2/account`, { headers: h })).status).toBe(200);
    const res = await fetch(`${s.url}/v2/admin/keys/${made.key.fingerprint}`, { method: 'DELETE', headers: admin });
    const body = (await expectMatchesSpec(res, 'revokeKey')) as { key: { revoked_at: string } };
    expect(res.status).toBe(200);
    expect(Date.parse(body.key.revoked_at)).toBeGreaterThan(Date.now() - 60_000);
    await expectError(await fetch(`${s.url}/v2/account`, { headers: h }), 401, 'invalid_api_key', 'getAccount');
    const again = (await (await fetch(`${s.url}/v2/admin/keys/${made.key.fingerprint}`, { method: 'DELETE', headers: admin })).json()) as { key: { revoked_at: string } };
    expect(again.key.revoked_at).toBe(body.key.revoked_at);
    await expectError(await fetch(`${s.url}/v2/admin/keys/tok_fp_00000000000000000000`, { method: 'DELETE', headers: admin }), 404, 'not_found', 'revokeKey');
  });

  it('admin responses carry the rate-limit headers too', async () => {
    const res = await fetch(`${s.url}/v2/admin/keys`, { headers: admin });
    expect(Number(res.headers.get('x-ratelimit-limit'))).toBeGreaterThan(0);
    expect(res.headers.get('x-ratelimit-remaining')).not.toBeNull();
  });
});
