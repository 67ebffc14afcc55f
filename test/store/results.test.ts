// test/store/results.test.ts
// ResultStore contract, against memory and real Redis: bytes + metadata + status round-trip, TTL, delete,
// and the memory implementation's total-bytes bound.
import { expect, it } from 'vitest';
import { MemoryResultStore } from '../../src/store/memory/index.js';
import type { StoredResult } from '../../src/store/types.js';
import { contract, sleep } from './harness.js';

let n = 0;
const id = () => `job_${Date.now()}_${n++}`;
const bytes = (len: number, fill = 7) => {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + fill) & 0xff;
  return b;
};

contract('results', (h) => {
  it('round-trips bytes (binary-safe), content type, metadata, status and owner', async () => {
    const k = id();
    const value: StoredResult = { status: 'done', contentType: 'image/png', bytes: bytes(70_000), meta: { width: 64, nested: { a: [1, 'x'] } }, owner: 'tok_fp_abc' };
    await h.stores.results.put(k, value, 60);
    const got = await h.stores.results.get(k);
    expect(got?.status).toBe('done');
    expect(got?.contentType).toBe('image/png');
    expect(got?.meta).toEqual(value.meta);
    expect(got?.owner).toBe('tok_fp_abc');
    expect(Buffer.from(got!.bytes!).equals(Buffer.from(value.bytes!))).toBe(true);
  });

  it('a pending entry without bytes, then replaced by its result (old fields do not linger)', async () => {
    const k = id();
    await h.stores.results.put(k, { status: 'pending', meta: { progress: 0 }, owner: 'tok_fp_x' }, 60);
    expect(await h.stores.results.get(k)).toEqual({ status: 'pending', meta: { progress: 0 }, owner: 'tok_fp_x' });
    await h.stores.results.put(k, { status: 'failed', meta: { error: 'boom' } }, 60);
    const got = await h.stores.results.get(k);
    expect(got).toEqual({ status: 'failed', meta: { error: 'boom' } });
  });

  it('unknown ids and deleted entries are undefined', async () => {
    expect(await h.stores.results.get(id())).toBeUndefined();
    const k = id();
    await h.stores.results.put(k, { status: 'done', meta: {} }, 60);
    await h.stores.results.delete(k);
    expect(await h.stores.results.get(k)).toBeUndefined();
    await h.stores.results.delete(id());
  });

  it('entries expire after their TTL', async () => {
    const k = id();
    await h.stores.results.put(k, { status: 'done', bytes: bytes(10), meta: {} }, 1);
    expect(await h.stores.results.get(k)).toBeDefined();
    await sleep(1300);
    expect(await h.stores.results.get(k)).toBeUndefined();
  });

  it.runIf(h.kind === 'memory')('memory: bounded by total bytes, the oldest go first, an oversized entry is not kept', async () => {
    const store = new MemoryResultStore(20_000);
    const ids = Array.from({ length: 6 }, id);
    for (const k of ids) await store.put(k, { status: 'done', bytes: bytes(4_000), meta: {} }, 60);
    expect(store.heldBytes).toBeLessThanOrEqual(20_000);
    // 4 000 + 512 bytes of bookkeeping each: four fit.
    const present = await Promise.all(ids.map(async (k) => (await store.get(k)) !== undefined));
    expect(present).toEqual([false, false, true, true, true, true]);
    const huge = id();
    await store.put(huge, { status: 'done', bytes: bytes(30_000), meta: {} }, 60);
    expect(await store.get(huge)).toBeUndefined();
    expect(await store.get(ids[5]!)).toBeDefined();
    expect(store.heldBytes).toBeLessThanOrEqual(20_000);
  });
});
