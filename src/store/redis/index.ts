// src/store/redis/index.ts
// ioredis implementations: any number of replicas share keys, usage, limits, results and cached masks.
// One Redis at REDIS_URL (redis:// or rediss://). Not Cluster-safe: multi-key scripts use no hash tags (see README).
import { Redis, type RedisOptions, type Result } from 'ioredis';
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
import { ADD_KEY, CONSUME_CREDITS, RATE_HIT, REFUND_CREDITS, REVOKE_KEY } from './scripts.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    bgwConsume(key: string, credits: string, allowance: string, ttl: string): Result<[number, number], Context>;
    bgwRefund(key: string, credits: string): Result<number, Context>;
    bgwRateHit(key: string, windowMs: string): Result<[number, number], Context>;
    bgwRevoke(key: string, at: string): Result<number, Context>;
    bgwAddKey(hashKey: string, fpKey: string, indexKey: string, ...args: string[]): Result<number, Context>;
  }
}

/** Usage hashes outlive their month by a quarter so late account reads still see it. */
const USAGE_TTL_SECONDS = 120 * 24 * 3600;

const KEY_FIELDS = ['fingerprint', 'hash', 'mode', 'label', 'email', 'plan', 'subscriptionStatus', 'billingModel', 'usageUnit', 'createdAt', 'revokedAt'] as const;

function toRecord(h: Record<string, string>): ApiKeyRecord | undefined {
  if (!h.hash) return undefined;
  const r: Record<string, string> = {};
  for (const f of KEY_FIELDS) if (h[f] !== undefined && h[f] !== '') r[f] = h[f];
  return r as unknown as ApiKeyRecord;
}

export class RedisKeyStore implements KeyStore {
  constructor(private readonly redis: Redis, private readonly prefix: string) {}
  private hashKey(hash: string) {
    return `${this.prefix}key:${hash}`;
  }
  private fpKey(fp: string) {
    return `${this.prefix}keyfp:${fp}`;
  }
  private get indexKey() {
    return `${this.prefix}keys`;
  }
  async add(record: ApiKeyRecord): Promise<boolean> {
    const pairs: string[] = [];
    for (const f of KEY_FIELDS) {
      const v = record[f];
      if (v !== undefined) pairs.push(f, String(v));
    }
    return (await this.redis.bgwAddKey(this.hashKey(record.hash), this.fpKey(record.fingerprint), this.indexKey, record.hash, record.fingerprint, ...pairs)) === 1;
  }
  async findByHash(hash: string): Promise<ApiKeyRecord | undefined> {
    return toRecord(await this.redis.hgetall(this.hashKey(hash)));
  }
  async get(fingerprint: string): Promise<ApiKeyRecord | undefined> {
    const hash = await this.redis.get(this.fpKey(fingerprint));
    return hash ? this.findByHash(hash) : undefined;
  }
  async list(): Promise<ApiKeyRecord[]> {
    const hashes = await this.redis.smembers(this.indexKey);
    if (hashes.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const h of hashes) pipe.hgetall(this.hashKey(h));
    const rows = (await pipe.exec()) ?? [];
    return rows
      .map(([, v]) => toRecord((v ?? {}) as Record<string, string>))
      .filter((r): r is ApiKeyRecord => r !== undefined)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }
  async revoke(fingerprint: string, at: Date): Promise<boolean> {
    const hash = await this.redis.get(this.fpKey(fingerprint));
    if (!hash) return false;
    return (await this.redis.bgwRevoke(this.hashKey(hash), at.toISOString())) === 1;
  }
  async count(): Promise<number> {
    return this.redis.scard(this.indexKey);
  }
}

export class RedisUsageStore implements UsageStore {
  constructor(private readonly redis: Redis, private readonly prefix: string) {}
  private key(fp: string, period: string) {
    return `${this.prefix}usage:${fp}:${period}`;
  }
  async consume(fp: string, period: string, credits: number, allowance?: number) {
    const [ok, total] = await this.redis.bgwConsume(this.key(fp, period), String(credits), allowance === undefined ? '' : String(allowance), String(USAGE_TTL_SECONDS));
    return { ok: ok === 1, credits: total / 10_000 };
  }
  async refund(fp: string, period: string, credits: number): Promise<void> {
    await this.redis.bgwRefund(this.key(fp, period), String(credits));
  }
  async record(fp: string, period: string, d: Omit<UsageTotals, 'credits'>): Promise<void> {
    const k = this.key(fp, period);
    await this.redis.multi().hincrby(k, 'images', d.images).hincrby(k, 'bytesIn', d.bytesIn).hincrby(k, 'bytesOut', d.bytesOut).expire(k, USAGE_TTL_SECONDS).exec();
  }
  async get(fp: string, period: string): Promise<UsageTotals> {
    const h = await this.redis.hgetall(this.key(fp, period));
    const n = (v: string | undefined) => (v ? Number(v) : 0);
    return { images: n(h.images), credits: Math.round(n(h.credits) * 10_000) / 10_000, bytesIn: n(h.bytesIn), bytesOut: n(h.bytesOut) };
  }
}

export class RedisRateLimitStore implements RateLimitStore {
  constructor(private readonly redis: Redis, private readonly prefix: string) {}
  async hit(key: string, limit: number, windowMs: number): Promise<RateLimitDecision> {
    const [count, ttl] = await this.redis.bgwRateHit(`${this.prefix}${key}`, String(windowMs));
    return { allowed: count <= limit, limit, remaining: Math.max(0, limit - count), resetAt: Date.now() + ttl };
  }
}

export class RedisResultStore implements ResultStore {
  constructor(private readonly redis: Redis, private readonly prefix: string) {}
  private key(id: string) {
    return `${this.prefix}result:${id}`;
  }
  async put(id: string, value: StoredResult, ttlSeconds: number): Promise<void> {
    const fields: Record<string, string | Buffer> = { status: value.status, meta: JSON.stringify(value.meta) };
    if (value.contentType) fields.contentType = value.contentType;
    if (value.owner) fields.owner = value.owner;
    if (value.bytes) fields.bytes = Buffer.from(value.bytes.buffer, value.bytes.byteOffset, value.bytes.byteLength);
    await this.redis.multi().del(this.key(id)).hset(this.key(id), fields).expire(this.key(id), ttlSeconds).exec();
  }
  async get(id: string): Promise<StoredResult | undefined> {
    const h = await this.redis.hgetallBuffer(this.key(id));
    if (!h.status) return undefined;
    return {
      status: h.status.toString() as StoredResult['status'],
      meta: JSON.parse(h.meta?.toString() ?? '{}') as Record<string, unknown>,
      ...(h.contentType ? { contentType: h.contentType.toString() } : {}),
      ...(h.owner ? { owner: h.owner.toString() } : {}),
      ...(h.bytes ? { bytes: h.bytes } : {}),
    };
  }
  async delete(id: string): Promise<void> {
    await this.redis.del(this.key(id));
  }
}

export class RedisMaskCache implements MaskCache {
  constructor(private readonly redis: Redis, private readonly prefix: string, readonly ttlSeconds: number) {}
  async get(key: string): Promise<CachedMask | undefined> {
    const v = await this.redis.getBuffer(`${this.prefix}mask:${key}`);
    if (!v || v.length < 5) return undefined;
    return { size: v.readUInt32LE(0), data: new Uint8Array(v.buffer, v.byteOffset + 4, v.length - 4) };
  }
  async set(key: string, value: CachedMask): Promise<void> {
    if (this.ttlSeconds <= 0) return;
    const head = Buffer.alloc(4);
    head.writeUInt32LE(value.size, 0);
    await this.redis.set(`${this.prefix}mask:${key}`, Buffer.concat([head, value.data]), 'EX', this.ttlSeconds);
  }
}

export interface RedisStoreOptions {
  url: string;
  prefix: string;
  timeoutMs: number;
  maskCacheTtlSeconds: number;
  redisOptions?: RedisOptions;
}

export function defineScripts(redis: Redis): void {
  redis.defineCommand('bgwConsume', { numberOfKeys: 1, lua: CONSUME_CREDITS });
  redis.defineCommand('bgwRefund', { numberOfKeys: 1, lua: REFUND_CREDITS });
  redis.defineCommand('bgwRateHit', { numberOfKeys: 1, lua: RATE_HIT });
  redis.defineCommand('bgwRevoke', { numberOfKeys: 1, lua: REVOKE_KEY });
  redis.defineCommand('bgwAddKey', { numberOfKeys: 3, lua: ADD_KEY });
}

export async function createRedisStores(o: RedisStoreOptions): Promise<Stores> {
  const redis = new Redis(o.url, {
    // Fail fast: a request must get 503 store_unavailable, not wait on an offline queue.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: Math.max(o.timeoutMs, 1000),
    commandTimeout: o.timeoutMs,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    lazyConnect: true,
    ...o.redisOptions,
  });
  redis.on('error', () => undefined); // surfaced per request as store_unavailable and by health
  defineScripts(redis);
  await redis.connect().catch(() => undefined); // start even if Redis is down; health reports it
  return {
    kind: 'redis',
    keys: new RedisKeyStore(redis, o.prefix),
    usage: new RedisUsageStore(redis, o.prefix),
    rateLimits: new RedisRateLimitStore(redis, o.prefix),
    results: new RedisResultStore(redis, o.prefix),
    masks: new RedisMaskCache(redis, o.prefix, o.maskCacheTtlSeconds),
    ping: async () => {
      await redis.ping();
    },
    onReconnect: (listener) => {
      redis.on('ready', listener);
    },
    close: async () => {
      redis.disconnect();
    },
  };
}
