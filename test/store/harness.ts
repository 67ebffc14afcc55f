// test/store/harness.ts
// Runs one contract suite against both implementations: memory, and real Redis at REDIS_URL under a unique prefix
// that is deleted afterwards.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe } from 'vitest';
import { createMemoryStores, type MemoryStoreOptions } from '../../src/store/memory/index.js';
import { createRedisStores } from '../../src/store/redis/index.js';
import type { Stores } from '../../src/store/types.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export const uniquePrefix = (what = 'test') => `bgwtest:${what}:${Date.now().toString(36)}${randomBytes(4).toString('hex')}:`;

/** Deletes every key under the prefix (SCAN, never KEYS). */
export async function deletePrefix(url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  redis.disconnect();
  return deleted;
}

export async function countPrefix(url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    n += keys.length;
  } while (cursor !== '0');
  redis.disconnect();
  return n;
}

export interface ContractOptions extends Partial<MemoryStoreOptions> {}

export interface StoreHandle {
  readonly kind: 'memory' | 'redis';
  /** The stores, built in beforeAll. */
  readonly stores: Stores;
}

/**
 * `describe`s the suite once per implementation. Each gets fresh stores; the Redis one its own prefix, removed after.
 */
export function contract(name: string, suite: (h: StoreHandle) => void, o: ContractOptions = {}): void {
  const options: MemoryStoreOptions = {
    resultsMaxBytes: o.resultsMaxBytes ?? 1 << 20,
    maskCacheMaxBytes: o.maskCacheMaxBytes ?? 1 << 20,
    maskCacheTtlSeconds: o.maskCacheTtlSeconds ?? 60,
  };
  for (const kind of ['memory', 'redis'] as const) {
    describe(`${name} (${kind})`, () => {
      const handle = { kind } as { kind: 'memory' | 'redis'; stores: Stores };
      const prefix = uniquePrefix(name.replace(/\W+/g, '-'));
      beforeAll(async () => {
        handle.stores =
          kind === 'memory'
            ? createMemoryStores(options)
            : await createRedisStores({ url: REDIS_URL, prefix, timeoutMs: 2000, maskCacheTtlSeconds: options.maskCacheTtlSeconds });
        await handle.stores.ping();
      });
      afterAll(async () => {
        await handle.stores?.close();
        if (kind === 'redis') await deletePrefix(REDIS_URL, prefix);
      });
      suite(handle);
    });
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
