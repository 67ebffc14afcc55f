// test/store/rate-limits.test.ts
// RateLimitStore contract, against memory and real Redis: fixed window, atomic counting, window expiry.
import { expect, it } from 'vitest';
import { contract, sleep } from './harness.js';

let n = 0;
const key = () => `rl:test${Date.now()}${n++}`;

contract('rate-limits', (h) => {
  it('counts down remaining, refuses past the limit, and reports the window end', async () => {
    const k = key();
    const before = Date.now();
    const a = await h.stores.rateLimits.hit(k, 3, 60_000);
    expect(a).toMatchObject({ allowed: true, limit: 3, remaining: 2 });
    expect(a.resetAt).toBeGreaterThanOrEqual(before + 59_000);
    expect(a.resetAt).toBeLessThanOrEqual(Date.now() + 60_000 + 50);
    expect(await h.stores.rateLimits.hit(k, 3, 60_000)).toMatchObject({ allowed: true, remaining: 1 });
    expect(await h.stores.rateLimits.hit(k, 3, 60_000)).toMatchObject({ allowed: true, remaining: 0 });
    const d = await h.stores.rateLimits.hit(k, 3, 60_000);
    expect(d).toMatchObject({ allowed: false, remaining: 0 });
    // Fixed window: later hits do not push the reset time out.
    expect(Math.abs(d.resetAt - a.resetAt)).toBeLessThan(100);
  });

  it('50 concurrent hits against a limit of 7: exactly 7 allowed, remaining values all distinct', async () => {
    const k = key();
    const ds = await Promise.all(Array.from({ length: 50 }, () => h.stores.rateLimits.hit(k, 7, 60_000)));
    const allowed = ds.filter((d) => d.allowed);
    expect(allowed).toHaveLength(7);
    expect(new Set(allowed.map((d) => d.remaining))).toEqual(new Set([0, 1, 2, 3, 4, 5, 6]));
  });

  it('the window expires and counting starts again', async () => {
    const k = key();
    await h.stores.rateLimits.hit(k, 1, 300);
    expect((await h.stores.rateLimits.hit(k, 1, 300)).allowed).toBe(false);
    await sleep(450);
    expect(await h.stores.rateLimits.hit(k, 1, 300)).toMatchObject({ allowed: true, remaining: 0 });
  });

  it('keys are independent', async () => {
    const a = key();
    await h.stores.rateLimits.hit(a, 1, 60_000);
    expect((await h.stores.rateLimits.hit(a, 1, 60_000)).allowed).toBe(false);
    expect((await h.stores.rateLimits.hit(key(), 1, 60_000)).allowed).toBe(true);
  });
});
