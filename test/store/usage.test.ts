// test/store/usage.test.ts
// UsageStore contract, against memory and real Redis: atomic consume under an allowance, quarter credits, refunds.
import { expect, it } from 'vitest';
import { contract } from './harness.js';

let n = 0;
const fp = () => `tok_fp_usage${Date.now()}${n++}`;

contract('usage', (h) => {
  it('starts at zero and records images and bytes per key and period', async () => {
    const k = fp();
    expect(await h.stores.usage.get(k, '2026-12')).toEqual({ images: 0, credits: 0, bytesIn: 0, bytesOut: 0 });
    await h.stores.usage.record(k, '2026-12', { images: 1, bytesIn: 1000, bytesOut: 4000 });
    await h.stores.usage.record(k, '2026-12', { images: 2, bytesIn: 10, bytesOut: 20 });
    expect(await h.stores.usage.get(k, '2026-12')).toEqual({ images: 3, credits: 0, bytesIn: 1010, bytesOut: 4020 });
    expect(await h.stores.usage.get(k, '2027-01')).toEqual({ images: 0, credits: 0, bytesIn: 0, bytesOut: 0 });
    expect(await h.stores.usage.get(fp(), '2026-12')).toEqual({ images: 0, credits: 0, bytesIn: 0, bytesOut: 0 });
  });

  it('quarter credits add up exactly (0.25 × 7 + 1 × 3 = 4.75)', async () => {
    const k = fp();
    for (let i = 0; i < 7; i++) expect((await h.stores.usage.consume(k, '2026-12', 0.25)).ok).toBe(true);
    for (let i = 0; i < 3; i++) await h.stores.usage.consume(k, '2026-12', 1);
    expect((await h.stores.usage.get(k, '2026-12')).credits).toBe(4.75);
  });

  it('consume refuses what would pass the allowance and reports the total; an exact fit is allowed', async () => {
    const k = fp();
    expect(await h.stores.usage.consume(k, 'p', 1, 1.5)).toEqual({ ok: true, credits: 1 });
    expect(await h.stores.usage.consume(k, 'p', 1, 1.5)).toEqual({ ok: false, credits: 1 });
    expect(await h.stores.usage.consume(k, 'p', 0.25, 1.5)).toEqual({ ok: true, credits: 1.25 });
    expect(await h.stores.usage.consume(k, 'p', 0.25, 1.5)).toEqual({ ok: true, credits: 1.5 });
    expect(await h.stores.usage.consume(k, 'p', 0.25, 1.5)).toEqual({ ok: false, credits: 1.5 });
    expect(await h.stores.usage.consume(k, 'p', 0.25, 0)).toEqual({ ok: false, credits: 1.5 });
    expect((await h.stores.usage.get(k, 'p')).credits).toBe(1.5);
  });

  it('50 concurrent consume() calls against an allowance of 10 never overshoot: exactly 10 succeed', async () => {
    const k = fp();
    const results = await Promise.all(Array.from({ length: 50 }, () => h.stores.usage.consume(k, 'p', 1, 10)));
    expect(results.filter((r) => r.ok)).toHaveLength(10);
    expect((await h.stores.usage.get(k, 'p')).credits).toBe(10);
    // Every answer's total is one a serial run would have produced.
    for (const r of results) expect(r.credits).toBeLessThanOrEqual(10);
  });

  it('50 concurrent quarter-credit consumes against 3.5 stop at exactly 3.5 (14 succeed)', async () => {
    const k = fp();
    const results = await Promise.all(Array.from({ length: 50 }, () => h.stores.usage.consume(k, 'p', 0.25, 3.5)));
    expect(results.filter((r) => r.ok)).toHaveLength(14);
    expect((await h.stores.usage.get(k, 'p')).credits).toBe(3.5);
  });

  it('without an allowance everything is counted, concurrently too', async () => {
    const k = fp();
    await Promise.all(Array.from({ length: 40 }, () => h.stores.usage.consume(k, 'p', 0.25)));
    expect((await h.stores.usage.get(k, 'p')).credits).toBe(10);
  });

  it('refund gives credits back (so a failed job frees its allowance) and never goes below zero', async () => {
    const k = fp();
    await h.stores.usage.consume(k, 'p', 1, 1);
    expect((await h.stores.usage.consume(k, 'p', 1, 1)).ok).toBe(false);
    await h.stores.usage.refund(k, 'p', 1);
    expect((await h.stores.usage.get(k, 'p')).credits).toBe(0);
    expect((await h.stores.usage.consume(k, 'p', 1, 1)).ok).toBe(true);
    await h.stores.usage.refund(k, 'p', 5);
    expect((await h.stores.usage.get(k, 'p')).credits).toBe(0);
    await h.stores.usage.refund(fp(), 'p', 1);
  });

  it('periods are independent', async () => {
    const k = fp();
    await h.stores.usage.consume(k, '2026-11', 1, 1);
    expect((await h.stores.usage.consume(k, '2026-12', 1, 1)).ok).toBe(true);
    expect((await h.stores.usage.get(k, '2026-11')).credits).toBe(1);
  });
});
