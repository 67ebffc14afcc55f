// test/store/keys.test.ts
// KeyStore contract, against memory and real Redis: add/find/list, revocation, idempotent seeding, atomic add.
import { describe, expect, it } from 'vitest';
import { createKey, findKey, fingerprintOf, generateSecret, hashKey, keyRecord, seedKeys } from '../../src/keys.js';
import { contract } from './harness.js';

const defaults = { plan: 'Business' };

describe('key material', () => {
  it('secrets have a recognisable prefix per mode and 256 bits of entropy; fingerprints reveal nothing', () => {
    const live = generateSecret('live');
    expect(live).toMatch(/^bge_live_[A-Za-z0-9_-]{43}$/);
    expect(generateSecret('admin')).toMatch(/^bge_admin_/);
    expect(generateSecret('synthetic')).toMatch(/^bge_test_/);
    expect(new Set(Array.from({ length: 200 }, () => generateSecret('live'))).size).toBe(200);
    const r = keyRecord(live, {}, defaults);
    expect(r.hash).toBe(hashKey(live));
    expect(r.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(r.fingerprint).toBe(fingerprintOf(r.hash));
    expect(r.fingerprint).toMatch(/^tok_fp_[0-9a-f]{20}$/);
    expect(JSON.stringify(r)).not.toContain(live);
    expect(r).toMatchObject({ mode: 'live', plan: 'Business', subscriptionStatus: 'active', billingModel: 'metered_monthly', usageUnit: 'image' });
  });
});

contract('keys', (h) => {
  it('a created key is found by its secret, by fingerprint, and listed; the secret is stored nowhere', async () => {
    const { secret, record } = await createKey(h.stores.keys, { mode: 'admin', plan: 'Free', email: 'a@example.com', label: 'ops laptop' }, defaults);
    const found = await findKey(h.stores.keys, secret);
    expect(found).toEqual(record);
    expect(await h.stores.keys.get(record.fingerprint)).toEqual(record);
    const listed = await h.stores.keys.list();
    expect(listed.map((r) => r.fingerprint)).toContain(record.fingerprint);
    expect(JSON.stringify(listed)).not.toContain(secret);
    expect(await findKey(h.stores.keys, `${secret}x`)).toBeUndefined();
    expect(await findKey(h.stores.keys, '')).toBeUndefined();
    expect(await h.stores.keys.get('tok_fp_doesnotexist')).toBeUndefined();
  });

  it('optional fields round-trip exactly (no label stays absent)', async () => {
    const { record } = await createKey(h.stores.keys, { mode: 'synthetic', subscriptionStatus: 'trialing' }, defaults);
    const got = await h.stores.keys.get(record.fingerprint);
    expect(got).toEqual(record);
    expect(got).not.toHaveProperty('label');
    expect(got).not.toHaveProperty('revokedAt');
  });

  it('revocation: once, with its time; the key still resolves (so callers can tell revoked from unknown)', async () => {
    const { secret, record } = await createKey(h.stores.keys, {}, defaults);
    const at = new Date('2026-03-04T05:06:07.000Z');
    expect(await h.stores.keys.revoke(record.fingerprint, at)).toBe(true);
    expect(await h.stores.keys.revoke(record.fingerprint, new Date())).toBe(false);
    expect(await h.stores.keys.revoke('tok_fp_nope', new Date())).toBe(false);
    expect((await findKey(h.stores.keys, secret))?.revokedAt).toBe(at.toISOString());
    expect((await h.stores.keys.list()).find((r) => r.fingerprint === record.fingerprint)?.revokedAt).toBe(at.toISOString());
  });

  it('adding an existing hash is a no-op that keeps the first record, revocation included', async () => {
    const secret = generateSecret('live');
    expect(await h.stores.keys.add(keyRecord(secret, { email: 'first@example.com' }, defaults))).toBe(true);
    const fp = fingerprintOf(hashKey(secret));
    await h.stores.keys.revoke(fp, new Date());
    const before = await h.stores.keys.count();
    expect(await seedKeys(h.stores.keys, [{ secret, account: { email: 'second@example.com' } }], defaults)).toBe(0);
    expect(await h.stores.keys.count()).toBe(before);
    const r = await h.stores.keys.get(fp);
    expect(r?.email).toBe('first@example.com');
    expect(r?.revokedAt).toBeDefined();
  });

  it('20 concurrent adds of one key: exactly one wins, and nobody ever reads a partial record', async () => {
    const secret = generateSecret('live');
    const record = keyRecord(secret, { email: 'race@example.com', label: 'race' }, defaults);
    const reads: Promise<unknown>[] = [];
    const adds = Array.from({ length: 20 }, () => {
      reads.push(h.stores.keys.findByHash(record.hash));
      return h.stores.keys.add(record);
    });
    const results = await Promise.all(adds);
    expect(results.filter(Boolean)).toHaveLength(1);
    for (const r of await Promise.all(reads)) if (r !== undefined) expect(r).toEqual(record);
    expect(await findKey(h.stores.keys, secret)).toEqual(record);
  });

  it('count and list agree, oldest first', async () => {
    const list = await h.stores.keys.list();
    expect(await h.stores.keys.count()).toBe(list.length);
    const created = list.map((r) => r.createdAt);
    expect([...created].sort()).toEqual(created);
  });
});
