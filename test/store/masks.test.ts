// test/store/masks.test.ts
// MaskCache contract, against memory and real Redis: round-trip, TTL, and the memory LRU's byte bound.
import { expect, it } from 'vitest';
import { MemoryMaskCache } from '../../src/store/memory/index.js';
import { createRedisStores } from '../../src/store/redis/index.js';
import { contract, deletePrefix, REDIS_URL, sleep, uniquePrefix } from './harness.js';

let n = 0;
const key = () => `m${Date.now()}${n++}`;
const mask = (len: number, fill = 0) => {
  const d = new Uint8Array(len);
  for (let i = 0; i < len; i++) d[i] = (i + fill) & 0xff;
  return d;
};

contract(
  'masks',
  (h) => {
    it('round-trips data (binary-safe, including zero bytes) and size', async () => {
      const k = key();
      const data = mask(320 * 320);
      await h.stores.masks.set(k, { data, size: 320 });
      const got = await h.stores.masks.get(k);
      expect(got?.size).toBe(320);
      expect(Buffer.from(got!.data).equals(Buffer.from(data))).toBe(true);
      expect(await h.stores.masks.get(key())).toBeUndefined();
    });

    it('a second set replaces the first', async () => {
      const k = key();
      await h.stores.masks.set(k, { data: mask(100, 1), size: 10 });
      await h.stores.masks.set(k, { data: mask(400, 2), size: 20 });
      const got = await h.stores.masks.get(k);
      expect(got?.size).toBe(20);
      expect(got?.data.byteLength).toBe(400);
      expect(got?.data[0]).toBe(2);
    });

    it('entries expire after the cache TTL', async () => {
      const k = key();
      await h.stores.masks.set(k, { data: mask(64), size: 8 });
      expect(await h.stores.masks.get(k)).toBeDefined();
      await sleep(1300);
      expect(await h.stores.masks.get(k)).toBeUndefined();
    });

    it.runIf(h.kind === 'memory')('memory: a byte-bounded LRU (a read keeps an entry; the least recently used goes)', async () => {
      // Each entry is 1 000 + 64 bytes: three fit in 3 300.
      const cache = new MemoryMaskCache(3_300, 60);
      const [a, b, c, d] = [key(), key(), key(), key()];
      await cache.set(a, { data: mask(1000), size: 1 });
      await cache.set(b, { data: mask(1000), size: 2 });
      await cache.set(c, { data: mask(1000), size: 3 });
      expect(await cache.get(a)).toBeDefined(); // a is now the most recently used
      await cache.set(d, { data: mask(1000), size: 4 });
      expect(await cache.get(b)).toBeUndefined();
      expect((await Promise.all([a, c, d].map((k) => cache.get(k)))).map((m) => m?.size)).toEqual([1, 3, 4]);
      expect(cache.heldBytes).toBeLessThanOrEqual(3_300);
      await cache.set(key(), { data: mask(5_000), size: 5 });
      expect(cache.heldBytes).toBeLessThanOrEqual(3_300);
      expect(await cache.get(d)).toBeDefined();
    });
  },
  { maskCacheTtlSeconds: 1 },
);

it('MASK_CACHE_TTL_SECONDS=0 disables the cache in both implementations', async () => {
  const prefix = uniquePrefix('masks-off');
  const memory = new MemoryMaskCache(1 << 20, 0);
  const redis = await createRedisStores({ url: REDIS_URL, prefix, timeoutMs: 2000, maskCacheTtlSeconds: 0 });
  try {
    for (const cache of [memory, redis.masks]) {
      await cache.set('k', { data: mask(10), size: 1 });
      expect(await cache.get('k')).toBeUndefined();
    }
  } finally {
    await redis.close();
    await deletePrefix(REDIS_URL, prefix);
  }
});
