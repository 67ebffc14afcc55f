// src/keys.ts
// API key lifecycle: generate, hash, fingerprint, seed. The secret is shown once and never stored or logged.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ApiKeyRecord, KeyMode, KeyStore, SubscriptionStatus } from './store/types.js';

export const KEY_PREFIX: Record<KeyMode, string> = { live: 'bge_live_', admin: 'bge_admin_', synthetic: 'bge_test_' };

export function hashKey(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Derived from the hash, so it identifies a key without revealing anything usable. */
export function fingerprintOf(hash: string): string {
  return `tok_fp_${createHash('sha256').update(`fp:${hash}`).digest('hex').slice(0, 20)}`;
}

/** 32 random bytes (256 bits) after a recognisable prefix, so leaked keys are easy to scan for. */
export function generateSecret(mode: KeyMode): string {
  return KEY_PREFIX[mode] + randomBytes(32).toString('base64url');
}

export interface KeyAccount {
  mode?: KeyMode;
  label?: string;
  email?: string;
  plan?: string;
  subscriptionStatus?: SubscriptionStatus;
  billingModel?: string;
  usageUnit?: string;
}

export function keyRecord(secret: string, account: KeyAccount, defaults: { plan: string }, now = new Date()): ApiKeyRecord {
  const hash = hashKey(secret);
  return {
    fingerprint: fingerprintOf(hash),
    hash,
    mode: account.mode ?? 'live',
    ...(account.label ? { label: account.label } : {}),
    email: account.email ?? 'owner@localhost',
    plan: account.plan ?? defaults.plan,
    subscriptionStatus: account.subscriptionStatus ?? 'active',
    billingModel: account.billingModel ?? 'metered_monthly',
    usageUnit: account.usageUnit ?? 'image',
    createdAt: now.toISOString(),
  };
}

export async function createKey(store: KeyStore, account: KeyAccount, defaults: { plan: string }): Promise<{ secret: string; record: ApiKeyRecord }> {
  const secret = generateSecret(account.mode ?? 'live');
  const record = keyRecord(secret, account, defaults);
  await store.add(record);
  return { secret, record };
}

/** Looks a presented key up by its hash; the final comparison is constant-time. */
export async function findKey(store: KeyStore, presented: string): Promise<ApiKeyRecord | undefined> {
  const hash = hashKey(presented);
  const record = await store.findByHash(hash);
  if (!record) return undefined;
  const a = Buffer.from(record.hash, 'hex');
  const b = Buffer.from(hash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b) ? record : undefined;
}

/**
 * A keys file holds one key per line: `SECRET [mode] [plan] [email]`, or a JSON array of
 * `{key, mode?, plan?, email?, label?, subscription_status?}`. Blank lines and `#` comments are skipped.
 */
export async function readKeysFile(file: string): Promise<{ secret: string; account: KeyAccount }[]> {
  const text = await readFile(file, 'utf8');
  if (text.trimStart().startsWith('[')) {
    const items = JSON.parse(text) as Record<string, string>[];
    return items.map((i) => ({
      secret: String(i.key),
      account: {
        ...(i.mode ? { mode: i.mode as KeyMode } : {}),
        ...(i.plan ? { plan: i.plan } : {}),
        ...(i.email ? { email: i.email } : {}),
        ...(i.label ? { label: i.label } : {}),
        ...(i.subscription_status ? { subscriptionStatus: i.subscription_status as SubscriptionStatus } : {}),
      },
    }));
  }
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [secret, mode, plan, email] = l.split(/\s+/);
      return {
        secret: secret!,
        account: { ...(mode ? { mode: mode as KeyMode } : {}), ...(plan ? { plan } : {}), ...(email ? { email } : {}) },
      };
    });
}

/** Adds seed keys (API_KEYS, KEYS_FILE); keys already present keep their record, including a revocation. */
export async function seedKeys(store: KeyStore, seeds: { secret: string; account: KeyAccount }[], defaults: { plan: string }): Promise<number> {
  let added = 0;
  for (const s of seeds) if (await store.add(keyRecord(s.secret, s.account, defaults))) added++;
  return added;
}
