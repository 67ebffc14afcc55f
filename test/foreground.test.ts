// test/foreground.test.ts
// Foreground colour estimation (decontaminate / despill / remove.bg color.jpg) and green-spill suppression, on
// synthetic composites made here: I = αF + (1−α)B with known F, B and α.
import { describe, expect, it } from 'vitest';
import { despill, estimateForeground } from '../src/pipeline/foreground.js';

const W = 240, H = 180;
const luma = (r: number, g: number, b: number) => 0.2126 * r + 0.7152 * g + 0.0722 * b;

/** A disc of colour F with a feathered edge over background B (optionally textured): pixels, alpha. */
function composite(F: number[], B: number[], textured: boolean, channels: 3 | 4 = 3) {
  const data = Buffer.alloc(W * H * channels);
  const alpha = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      const a = Math.round(Math.min(1, Math.max(0, (60 - Math.hypot(x - W / 2, y - H / 2)) / 12 + 0.5)) * 255);
      alpha[i] = a;
      const t = textured ? ((((x >> 3) + (y >> 3)) & 1) * 2 - 1) * 25 : 0;
      for (let c = 0; c < 3; c++) {
        const b = Math.min(255, Math.max(0, B[c]! + t));
        data[i * channels + c] = Math.round((a / 255) * F[c]! + (1 - a / 255) * b);
      }
      if (channels === 4) data[i * 4 + 3] = 255;
    }
  }
  return { data, alpha };
}

/** Mean |colour − F| over the edge pixels with 0.1 ≤ α ≤ 0.9. */
function edgeError(data: Buffer, channels: number, alpha: Uint8Array, F: number[]): number {
  let err = 0, n = 0;
  for (let i = 0; i < alpha.length; i++) {
    if (alpha[i]! < 26 || alpha[i]! > 229) continue;
    for (let c = 0; c < 3; c++) err += Math.abs(data[i * channels + c]! - F[c]!);
    n += 3;
  }
  return err / n;
}

describe('foreground colour estimation', () => {
  it.each([
    ['plain green backdrop', false],
    ['textured green backdrop', true],
  ] as const)('removes the background tint from edge pixels (%s)', (_, textured) => {
    const F = [210, 40, 50], B = [40, 190, 60];
    const { data, alpha } = composite(F, B, textured);
    const before = Buffer.from(data);
    expect(edgeError(data, 3, alpha, F)).toBeGreaterThan(50);
    estimateForeground(data, 3, alpha, W, H);
    expect(edgeError(data, 3, alpha, F)).toBeLessThan(12);
    // Decided pixels are never rewritten.
    for (let i = 0; i < alpha.length; i++) {
      if (alpha[i] !== 0 && alpha[i] !== 255) continue;
      for (let c = 0; c < 3; c++) if (data[i * 3 + c] !== before[i * 3 + c]) throw new Error(`decided pixel ${i} changed`);
    }
  });

  it('works on 4-channel pixels and leaves their alpha channel alone', () => {
    const F = [30, 60, 220], B = [250, 240, 200];
    const { data, alpha } = composite(F, B, false, 4);
    estimateForeground(data, 4, alpha, W, H);
    expect(edgeError(data, 4, alpha, F)).toBeLessThan(12);
    expect(alpha.every((_, i) => data[i * 4 + 3] === 255)).toBe(true);
  });

  it('an all-opaque or all-clear matte changes nothing', () => {
    const { data } = composite([200, 200, 0], [0, 0, 200], true);
    const before = Buffer.from(data);
    estimateForeground(data, 3, new Uint8Array(W * H).fill(255), W, H, { despill: true });
    estimateForeground(data, 3, new Uint8Array(W * H), W, H, { despill: true });
    expect(data.equals(before)).toBe(true);
  });
});

describe('despill', () => {
  it('removes green spill from the subject and keeps each pixel’s luminance', () => {
    // Grey subject lit by a green screen: spill adds green to every subject pixel.
    const { data, alpha } = composite([150, 185, 150], [30, 200, 60], false);
    const before = Buffer.from(data);
    despill(data, 3, alpha, W, H);
    let checked = 0, spill = 0, lumaShift = 0;
    for (let i = 0; i < alpha.length; i++) {
      if (alpha[i]! < 255) continue;
      const [r, g, b] = [data[i * 3]!, data[i * 3 + 1]!, data[i * 3 + 2]!];
      spill = Math.max(spill, g - (r + b) / 2);
      lumaShift = Math.max(lumaShift, Math.abs(luma(r, g, b) - luma(before[i * 3]!, before[i * 3 + 1]!, before[i * 3 + 2]!)));
      checked++;
    }
    expect(checked).toBeGreaterThan(5000);
    expect(spill).toBeLessThanOrEqual(2);
    expect(lumaShift).toBeLessThan(2);
    // Clear pixels (the screen itself) are not touched.
    expect(data.subarray(0, 3).equals(before.subarray(0, 3))).toBe(true);
  });

  it('with estimateForeground({despill}), edge pixels lose both the backdrop and the spill', () => {
    const { data, alpha } = composite([150, 185, 150], [30, 200, 60], false);
    estimateForeground(data, 3, alpha, W, H, { despill: true });
    let spill = 0;
    for (let i = 0; i < alpha.length; i++) if (alpha[i]! >= 26) spill = Math.max(spill, data[i * 3 + 1]! - (data[i * 3]! + data[i * 3 + 2]!) / 2);
    expect(spill).toBeLessThanOrEqual(3);
  });

  it('leaves a green subject on a non-screen backdrop alone', () => {
    const { data, alpha } = composite([40, 200, 40], [200, 60, 50], false);
    const before = Buffer.from(data);
    despill(data, 3, alpha, W, H);
    expect(data.equals(before)).toBe(true);
  });

  it('handles a blue screen too', () => {
    const { data, alpha } = composite([140, 140, 175], [20, 50, 210], false);
    despill(data, 3, alpha, W, H);
    const centre = ((H / 2) * W + W / 2) * 3;
    expect(data[centre + 2]).toBeLessThanOrEqual((data[centre]! + data[centre + 1]!) / 2 + 2);
  });
});
