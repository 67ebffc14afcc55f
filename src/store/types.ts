// src/store/types.ts
// Shared state behind one interface per concern. Memory implementations serve a single process;
// Redis implementations let any number of replicas share it. Both pass the same contract tests (test/store/).

export type KeyMode = 'live' | 'admin' | 'synthetic';
export type SubscriptionStatus = 'active' | 'trialing' | 'past_due' | 'canceled' | 'inactive';

export interface ApiKeyRecord {
  /** Public, stable identifier (`tok_fp_…`): safe to log and show. */
  fingerprint: string;
  /** sha256 (hex) of the secret; the secret itself is never stored. */
  hash: string;
  mode: KeyMode;
  label?: string;
  email: string;
  plan: string;
  subscriptionStatus: SubscriptionStatus;
  billingModel: string;
  usageUnit: string;
  createdAt: string;
  revokedAt?: string;
}

export interface KeyStore {
  /** Adds a key; adding an existing hash again is a no-op that returns false. */
  add(record: ApiKeyRecord): Promise<boolean>;
  findByHash(hash: string): Promise<ApiKeyRecord | undefined>;
  get(fingerprint: string): Promise<ApiKeyRecord | undefined>;
  list(): Promise<ApiKeyRecord[]>;
  /** Marks a key revoked; false when no such key or already revoked. */
  revoke(fingerprint: string, at: Date): Promise<boolean>;
  count(): Promise<number>;
}

export interface UsageTotals {
  images: number;
  credits: number;
  bytesIn: number;
  bytesOut: number;
}

export interface UsageStore {
  /**
   * Atomically adds `credits` to the period's total unless that would pass `allowance` (no allowance: always adds).
   * Returns whether it was added and the total after.
   */
  consume(fingerprint: string, period: string, credits: number, allowance?: number): Promise<{ ok: boolean; credits: number }>;
  /** Gives back credits consumed for a job that then failed. */
  refund(fingerprint: string, period: string, credits: number): Promise<void>;
  record(fingerprint: string, period: string, delta: Omit<UsageTotals, 'credits'>): Promise<void>;
  get(fingerprint: string, period: string): Promise<UsageTotals>;
}

export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Epoch milliseconds when the current window ends. */
  resetAt: number;
}

export interface RateLimitStore {
  /** Counts one request in the key's fixed window of `windowMs`. */
  hit(key: string, limit: number, windowMs: number): Promise<RateLimitDecision>;
}

export interface StoredResult {
  status: 'pending' | 'processing' | 'done' | 'failed';
  contentType?: string;
  bytes?: Uint8Array;
  /** Small JSON-able facts about the job (dimensions, error body…). */
  meta: Record<string, unknown>;
  /** The key that created it: only its owner may read it. */
  owner?: string;
}

export interface ResultStore {
  put(id: string, value: StoredResult, ttlSeconds: number): Promise<void>;
  get(id: string): Promise<StoredResult | undefined>;
  delete(id: string): Promise<void>;
}

export interface CachedMask {
  data: Uint8Array;
  size: number;
}

export interface MaskCache {
  /** 0 turns the cache off. */
  readonly ttlSeconds: number;
  get(key: string): Promise<CachedMask | undefined>;
  set(key: string, value: CachedMask): Promise<void>;
}

export interface Stores {
  kind: 'memory' | 'redis';
  keys: KeyStore;
  usage: UsageStore;
  rateLimits: RateLimitStore;
  results: ResultStore;
  masks: MaskCache;
  /** Throws when the backing store cannot be reached. */
  ping(): Promise<void>;
  /** Called each time a networked store (re)connects, e.g. to re-seed keys into a Redis that restarted empty. */
  onReconnect?(listener: () => void): void;
  close(): Promise<void>;
}
