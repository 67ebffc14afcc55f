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

/** One key to seed: a secret (API_KEYS, operator-written files) or only its sha256 (files the keys CLI writes). */
export interface KeySeed {
  secret?: string;
  hash?: string;
  account: KeyAccount;
  createdAt?: string;
  revokedAt?: string;
}

const MODES = new Set<KeyMode>(['live', 'admin', 'synthetic']);
const HASH_TOKEN = /^sha256:([0-9a-f]{64})$/;

/**
 * One line of a keys file: `SECRET|sha256:HEX [mode] [plan] [email] [label=…] [status=…] [created=ISO] [revoked=ISO]`.
 * Values of named tokens are percent-encoded. Returns undefined for blank lines and `#` comments.
 */
export function parseKeyLine(line: string): KeySeed | undefined {
  const l = line.trim();
  if (!l || l.startsWith('#')) return undefined;
  const tokens = l.split(/\s+/);
  const first = tokens.shift()!;
  const named: Record<string, string> = {};
  const positional: string[] = [];
  for (const t of tokens) {
    const m = /^(label|status|created|revoked)=(.*)$/.exec(t);
    if (m) named[m[1]!] = decodeURIComponent(m[2]!);
    else positional.push(t);
  }
  const [mode, plan, email] = positional;
  if (mode && !MODES.has(mode as KeyMode)) throw new Error(`keys file: unknown mode ${JSON.stringify(mode)} (expected live, admin or synthetic)`);
  const hash = HASH_TOKEN.exec(first)?.[1];
  return {
    ...(hash ? { hash } : { secret: first }),
    account: {
      ...(mode ? { mode: mode as KeyMode } : {}),
      ...(plan ? { plan } : {}),
      ...(email ? { email } : {}),
      ...(named.label ? { label: named.label } : {}),
      ...(named.status ? { subscriptionStatus: named.status as SubscriptionStatus } : {}),
    },
    ...(named.created ? { createdAt: named.created } : {}),
    ...(named.revoked ? { revokedAt: named.revoked } : {}),
  };
}

/** The line the keys CLI appends for a new key: its hash, never its secret. */
export function formatKeyLine(r: ApiKeyRecord): string {
  const enc = (v: string) => encodeURIComponent(v);
  return [
    `sha256:${r.hash}`,
    r.mode,
    r.plan,
    r.email,
    ...(r.label ? [`label=${enc(r.label)}`] : []),
    ...(r.subscriptionStatus !== 'active' ? [`status=${enc(r.subscriptionStatus)}`] : []),
    `created=${enc(r.createdAt)}`,
    ...(r.revokedAt ? [`revoked=${enc(r.revokedAt)}`] : []),
  ].join(' ');
}

/** A JSON keys file entry: `{key | hash, mode?, plan?, email?, label?, subscription_status?, created_at?, revoked_at?}`. */
export function parseKeyJson(i: Record<string, unknown>): KeySeed {
  const str = (k: string) => (typeof i[k] === 'string' && i[k] ? (i[k] as string) : undefined);
  const hash = str('hash')?.replace(/^sha256:/, '');
  if (!hash && !str('key')) throw new Error('keys file: every entry needs "key" or "hash"');
  if (hash && !/^[0-9a-f]{64}$/.test(hash)) throw new Error('keys file: "hash" must be 64 hex digits (sha256 of the key)');
  const mode = str('mode');
  if (mode && !MODES.has(mode as KeyMode)) throw new Error(`keys file: unknown mode ${JSON.stringify(mode)}`);
  return {
    ...(hash ? { hash } : { secret: str('key')! }),
    account: {
      ...(mode ? { mode: mode as KeyMode } : {}),
      ...(str('plan') ? { plan: str('plan')! } : {}),
      ...(str('email') ? { email: str('email')! } : {}),
      ...(str('label') ? { label: str('label')! } : {}),
      ...(str('subscription_status') ? { subscriptionStatus: str('subscription_status') as SubscriptionStatus } : {}),
    },
    ...(str('created_at') ? { createdAt: str('created_at')! } : {}),
    ...(str('revoked_at') ? { revokedAt: str('revoked_at')! } : {}),
  };
}

/**
 * A keys file is either lines (see parseKeyLine) or a JSON array (see parseKeyJson). Entries may carry the secret
 * or only its sha256; the keys CLI writes hashes only, so a leaked file leaks no usable key.
 */
export async function readKeysFile(file: string): Promise<KeySeed[]> {
  const text = await readFile(file, 'utf8');
  if (text.trimStart().startsWith('[')) return (JSON.parse(text) as Record<string, unknown>[]).map(parseKeyJson);
  return text.split('\n').flatMap((l) => parseKeyLine(l) ?? []);
}

/** The record a seed stands for. */
export function seedRecord(seed: KeySeed, defaults: { plan: string }): ApiKeyRecord {
  const base = seed.secret !== undefined ? keyRecord(seed.secret, seed.account, defaults) : keyRecord('', seed.account, defaults);
  const hash = seed.secret !== undefined ? base.hash : seed.hash!;
  return {
    ...base,
    hash,
    fingerprint: fingerprintOf(hash),
    ...(seed.createdAt ? { createdAt: seed.createdAt } : {}),
    ...(seed.revokedAt ? { revokedAt: seed.revokedAt } : {}),
  };
}

/**
 * Adds seed keys (API_KEYS, KEYS_FILE); keys already present keep their record, except that a revocation in the
 * file is applied to them too (so revoking in KEYS_FILE also works when the store is Redis).
 */
export async function seedKeys(store: KeyStore, seeds: KeySeed[], defaults: { plan: string }): Promise<number> {
  let added = 0;
  for (const s of seeds) {
    const record = seedRecord(s, defaults);
    if (await store.add(record)) added++;
    else if (record.revokedAt) await store.revoke(record.fingerprint, new Date(record.revokedAt));
  }
  return added;
}
