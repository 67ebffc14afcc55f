// test/morph.test.ts
// grow_mask / shrink: the O(1) running max/min must equal the brute-force square window everywhere, edges included.
import { describe, expect, it } from 'vitest';
import { morphAlpha } from '../src/pipeline/morph.js';

function brute(a: Uint8Array, w: number, h: number, r: number, op: 'dilate' | 'erode'): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      let v = op === 'dilate' ? 0 : 255;
      for (let dy = -r; dy <= r; dy++)
        for (let dx = -r; dx <= r; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
          v = op === 'dilate' ? Math.max(v, a[yy * w + xx]!) : Math.min(v, a[yy * w + xx]!);
        }
      out[y * w + x] = v;
    }
  return out;
}

describe('morphAlpha', () => {
  it.each([
    [1, 'dilate'],
    [3, 'dilate'],
    [7, 'erode'],
    [20, 'dilate'],
    [2, 'erode'],
  ] as const)('radius %i %s equals the brute-force window on random grey data', (r, op) => {
    const w = 37;
    const h = 23;
    const a = new Uint8Array(w * h);
    let seed = 12345;
    for (let i = 0; i < a.length; i++) a[i] = (seed = (seed * 1103515245 + 12345) >>> 0) % 7 === 0 ? (seed >>> 8) & 255 : 0;
    expect(Array.from(morphAlpha(a, w, h, r, op))).toEqual(Array.from(brute(a, w, h, r, op)));
  });

  it('a dilated square grows by the radius on every side', () => {
    const w = 100;
    const a = new Uint8Array(w * w);
    for (let y = 40; y < 60; y++) for (let x = 40; x < 60; x++) a[y * w + x] = 255;
    const out = morphAlpha(a, w, w, 20, 'dilate');
    expect(out.reduce((n, v) => n + (v === 255 ? 1 : 0), 0)).toBe(60 * 60);
  });
});
