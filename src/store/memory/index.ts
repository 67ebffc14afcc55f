// src/store/memory/index.ts
// Single-process stores: the default when REDIS_URL is unset, so `npm start` needs nothing else running.
import type {
  ApiKeyRecord,
  CachedMask,
  KeyStore,
  MaskCache,
  RateLimitDecision,
  RateLimitStore,
  ResultStore,
  StoredResult,
  Stores,
  UsageStore,
  UsageTotals,
} from '../types.js';

export class MemoryKeyStore implements KeyStore {
  private readonly byHash = new Map<string, ApiKeyRecord>();
  private readonly byFingerprint = new Map<string, string>();

  async add(record: ApiKeyRecord): Promise<boolean> {
    if (this.byHash.has(record.hash)) return false;
    this.byHash.set(record.hash, { ...record });
    this.byFingerprint.set(record.fingerprint, record.hash);
    return true;
  }
  async findByHash(hash: string): Promise<ApiKeyRecord | undefined> {
    const r = this.byHash.get(hash);
    return r && { ...r };
  }
  async get(fingerprint: string): Promise<ApiKeyRecord | undefined> {
    const hash = this.byFingerprint.get(fingerprint);
    return hash ? this.findByHash(hash) : undefined;
  }
  async list(): Promise<ApiKeyRecord[]> {
    return [...this.byHash.values()].map((r) => ({ ...r })).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }
  async revoke(fingerprint: string, at: Date): Promise<boolean> {
    const hash = this.byFingerprint.get(fingerprint);
    const r = hash ? this.byHash.get(hash) : undefined;
    if (!r || r.revokedAt) return false;
    r.revokedAt = at.toISOString();
    return true;
  }
  async count(): Promise<number> {
    return this.byHash.size;
  }
}

const zero = (): UsageTotals => ({ images: 0, credits: 0, bytesIn: 0, bytesOut: 0 });

export class MemoryUsageStore implements UsageStore {
  private readonly totals = new Map<string, UsageTotals>();
  private entry(fp: string, period: string): UsageTotals {
    const k = `${fp}|${period}`;
    let t = this.totals.get(k);
    if (!t) this.totals.set(k, (t = zero()));
    return t;
  }
  async consume(fp: string, period: string, credits: number, allowance?: number) {
    const t = this.entry(fp, period);
    if (allowance !== undefined && t.credits + credits > allowance + 1e-9) return { ok: false, credits: t.credits };
    t.credits = round(t.credits + credits);
    return { ok: true, credits: t.credits };
  }
  async refund(fp: string, period: string, credits: number): Promise<void> {
    const t = this.entry(fp, period);
    t.credits = Math.max(0, round(t.credits - credits));
  }
  async record(fp: string, period: string, d: Omit<UsageTotals, 'credits'>): Promise<void> {
    const t = this.entry(fp, period);
    t.images += d.images;
    t.bytesIn += d.bytesIn;
    t.bytesOut += d.bytesOut;
  }
  async get(fp: string, period: string): Promise<UsageTotals> {
    return { ...(this.totals.get(`${fp}|${period}`) ?? zero()) };
  }
}

/** Credits are quarters; rounding keeps float sums exact. */
const round = (n: number) => Math.round(n * 10_000) / 10_000;

export class MemoryRateLimitStore implements RateLimitStore {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();
  private lastSweep = 0;
  async hit(key: string, limit: number, windowMs: number): Promise<RateLimitDecision> {
    const now = Date.now();
    this.sweep(now);
    let w = this.windows.get(key);
    if (!w || w.resetAt <= now) this.windows.set(key, (w = { count: 0, resetAt: now + windowMs }));
    w.count++;
    return { allowed: w.count <= limit, limit, remaining: Math.max(0, limit - w.count), resetAt: w.resetAt };
  }
  /** Expired windows are dropped so one-off keys do not accumulate. */
  private sweep(now: number): void {
    if (now - this.lastSweep < 10_000) return;
    this.lastSweep = now;
    for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k);
  }
}

/**
 * Bounded by total bytes and TTL; the least recently used entries go first when over budget
 * (a read moves an entry to the back of the Map's insertion order, so iteration order is LRU order).
 */
export class ExpiringBytesMap<V> {
  private readonly map = new Map<string, { value: V; bytes: number; expiresAt: number }>();
  private total = 0;
  constructor(private readonly maxBytes: number, private readonly sizeOf: (v: V) => number) {}

  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= Date.now()) {
      this.delete(key);
      return undefined;
    }
    this.map.delete(key);
    this.map.set(key, e);
    return e.value;
  }
  set(key: string, value: V, ttlMs: number): void {
    this.delete(key);
    const bytes = this.sizeOf(value);
    if (bytes > this.maxBytes || ttlMs <= 0) return;
    this.map.set(key, { value, bytes, expiresAt: Date.now() + ttlMs });
    this.total += bytes;
    for (const k of this.map.keys()) {
      if (this.total <= this.maxBytes) break;
      this.delete(k);
    }
  }
  /** Bytes currently held (for tests and metrics). */
  get bytes(): number {
    return this.total;
  }
  delete(key: string): void {
    const e = this.map.get(key);
    if (!e) return;
    this.total -= e.bytes;
    this.map.delete(key);
  }
}

export class MemoryResultStore implements ResultStore {
  private readonly entries: ExpiringBytesMap<StoredResult>;
  constructor(maxBytes: number) {
    this.entries = new ExpiringBytesMap(maxBytes, (v) => (v.bytes?.byteLength ?? 0) + 512);
  }
  async put(id: string, value: StoredResult, ttlSeconds: number): Promise<void> {
    this.entries.set(id, value, ttlSeconds * 1000);
  }
  async get(id: string): Promise<StoredResult | undefined> {
    return this.entries.get(id);
  }
  async delete(id: string): Promise<void> {
    this.entries.delete(id);
  }
  get heldBytes(): number {
    return this.entries.bytes;
  }
}

export class MemoryMaskCache implements MaskCache {
  private readonly entries: ExpiringBytesMap<CachedMask>;
  constructor(maxBytes: number, readonly ttlSeconds: number) {
    this.entries = new ExpiringBytesMap(maxBytes, (v) => v.data.byteLength + 64);
  }
  async get(key: string): Promise<CachedMask | undefined> {
    return this.entries.get(key);
  }
  async set(key: string, value: CachedMask): Promise<void> {
    this.entries.set(key, value, this.ttlSeconds * 1000);
  }
  get heldBytes(): number {
    return this.entries.bytes;
  }
}

export interface MemoryStoreOptions {
  resultsMaxBytes: number;
  maskCacheMaxBytes: number;
  maskCacheTtlSeconds: number;
}

export function createMemoryStores(o: MemoryStoreOptions): Stores {
  return {
    kind: 'memory',
    keys: new MemoryKeyStore(),
    usage: new MemoryUsageStore(),
    rateLimits: new MemoryRateLimitStore(),
    results: new MemoryResultStore(o.resultsMaxBytes),
    masks: new MemoryMaskCache(o.maskCacheMaxBytes, o.maskCacheTtlSeconds),
    ping: async () => undefined,
    close: async () => undefined,
  };
}
