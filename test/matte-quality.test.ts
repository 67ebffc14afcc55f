// test/matte-quality.test.ts
// Matte refinement, mask clean-up and the mask options, on synthetic photos with known alpha made here: the model's
// mask is simulated by area-averaging the true alpha down to the model's grid (a perfect but low-resolution model).
import { describe, expect, it } from 'vitest';
import { matteJobFields } from '../compat/effects/index.js';
import type { DecodedImage } from '../src/pipeline/decode.js';
import type { LowResMask } from '../src/pipeline/infer.js';
import { cleanMask } from '../src/pipeline/mask-cleanup.js';
import { upsampleMask, type MatteOptions } from '../src/pipeline/matte.js';
import { REFINE_PRESETS, refineMask } from '../src/pipeline/refine.js';
import { upsampleBilinear } from '../src/pipeline/upsample.js';

const SIZE = 480;
const MASK = 160;

/** Deterministic mid-grey texture with strong local contrast (the background a guide must not follow). */
function texture(x: number, y: number, c: number): number {
  const v = ((x * 7 + y * 13 + c * 31) ^ (x * y + c)) & 63;
  return 60 + v + (((x >> 2) + (y >> 2)) & 1 ? 40 : 0);
}

/** A photo of a flat-coloured subject with alpha `alphaAt` (0..1) over the texture; also its true alpha. */
function photo(alphaAt: (x: number, y: number) => number, subject = [230, 40, 40]): { image: DecodedImage; truth: Float32Array } {
  const data = Buffer.alloc(SIZE * SIZE * 3);
  const truth = new Float32Array(SIZE * SIZE);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const i = y * SIZE + x;
      // 4×4 supersampling so a "hard" edge is anti-aliased like a camera's.
      let a = 0;
      for (let sy = 0; sy < 4; sy++) for (let sx = 0; sx < 4; sx++) a += alphaAt(x + (sx + 0.5) / 4, y + (sy + 0.5) / 4);
      a /= 16;
      truth[i] = a;
      for (let c = 0; c < 3; c++) data[i * 3 + c] = Math.round(a * subject[c]! + (1 - a) * texture(x, y, c));
    }
  }
  return { image: { data, width: SIZE, height: SIZE, channels: 3, input: { width: SIZE, height: SIZE, type: 'png' } }, truth };
}

/** The model's view: the true alpha area-averaged onto a MASK² grid. */
function modelMask(truth: Float32Array): LowResMask {
  const f = SIZE / MASK;
  const data = new Uint8Array(MASK * MASK);
  for (let y = 0; y < MASK; y++) {
    for (let x = 0; x < MASK; x++) {
      let s = 0;
      for (let yy = 0; yy < f; yy++) for (let xx = 0; xx < f; xx++) s += truth[(y * f + yy) * SIZE + x * f + xx]!;
      data[y * MASK + x] = Math.round((s / (f * f)) * 255);
    }
  }
  return { data, size: MASK, inferMs: 0 };
}

const disc = (r: number, feather: number) => (x: number, y: number) => {
  const d = Math.hypot(x - SIZE / 2, y - SIZE / 2);
  return feather === 0 ? (d <= r ? 1 : 0) : Math.min(1, Math.max(0, (r - d) / feather + 0.5));
};

/** Along 64 rays from the centre: mean distance between the 10 % and 90 % crossings, and mean |r(50 %) − r0|. */
function radialProfile(alpha: Uint8Array, r0: number): { width: number; offset: number } {
  let width = 0, offset = 0;
  const rays = 64;
  for (let k = 0; k < rays; k++) {
    const t = (2 * Math.PI * (k + 0.5)) / rays;
    const at = (r: number) => {
      const x = Math.round(SIZE / 2 + r * Math.cos(t)), y = Math.round(SIZE / 2 + r * Math.sin(t));
      return alpha[y * SIZE + x]! / 255;
    };
    // Outward scan in 0.25 px steps for the last radius above each level.
    const cross = (level: number) => {
      let last = 0;
      for (let r = 0; r < SIZE / 2 - 2; r += 0.25) if (at(r) >= level) last = r;
      return last;
    };
    width += cross(0.1) - cross(0.9);
    offset += Math.abs(cross(0.5) - r0);
  }
  return { width: width / rays, offset: offset / rays };
}

const base: MatteOptions = { invertMask: false, grow: 0, semitransparency: true };

describe('edge-aware refinement', () => {
  const R = 150;

  it('keeps a hard edge hard and in place (the plain 3× stretch blurs it over several pixels)', () => {
    const { image, truth } = photo(disc(R, 0));
    const mask = modelMask(truth);
    const truthProfile = radialProfile(Uint8Array.from(truth, (a) => Math.round(a * 255)), R);
    const plain = radialProfile(upsampleBilinear(mask.data, MASK, MASK, SIZE, SIZE), R);
    for (const mode of ['fast', 'full'] as const) {
      const refined = radialProfile(refineMask(mask.data, MASK, image, REFINE_PRESETS[mode]), R);
      expect(refined.width, mode).toBeLessThanOrEqual(truthProfile.width + 1.5);
      expect(refined.width, mode).toBeLessThan(plain.width * 0.6);
      expect(refined.offset, mode).toBeLessThan(1);
    }
    expect(plain.width).toBeGreaterThan(2.5);
  });

  it('keeps a feathered edge soft: most of its width survives, far wider than the hard edge', () => {
    const feather = 24;
    const { image, truth } = photo(disc(R, feather));
    const mask = modelMask(truth);
    const hard = radialProfile(refineMask(modelMask(photo(disc(R, 0)).truth).data, MASK, photo(disc(R, 0)).image, REFINE_PRESETS.fast), R);
    const truthWidth = radialProfile(Uint8Array.from(truth, (a) => Math.round(a * 255)), R).width;
    for (const mode of ['fast', 'full'] as const) {
      const soft = radialProfile(refineMask(mask.data, MASK, image, REFINE_PRESETS[mode]), R);
      expect(soft.width, mode).toBeGreaterThan(truthWidth * 0.5);
      expect(soft.width, mode).toBeGreaterThan(hard.width * 4);
      expect(soft.offset, mode).toBeLessThan(2);
    }
  });

  it('keeps a thin stroke (4 px, about one mask pixel wide): present along its length, not thickened', () => {
    // A ring 4 px wide: on the 3× coarser model grid it mostly straddles two mask pixels at partial coverage.
    const ring = (x: number, y: number) => (Math.abs(Math.hypot(x - SIZE / 2, y - SIZE / 2) - 120) <= 2 ? 1 : 0);
    const { image, truth } = photo(ring, [250, 250, 250]);
    const mask = modelMask(truth);
    for (const mode of ['fast', 'full'] as const) {
      const alpha = refineMask(mask.data, MASK, image, REFINE_PRESETS[mode]);
      let present = 0, thin = 0;
      const rays = 360;
      for (let k = 0; k < rays; k++) {
        const t = (2 * Math.PI * k) / rays;
        const at = (r: number) => alpha[Math.round(SIZE / 2 + r * Math.sin(t)) * SIZE + Math.round(SIZE / 2 + r * Math.cos(t))]!;
        if (Math.max(at(118), at(119), at(120), at(121), at(122)) >= 160) present++;
        if (at(115) < 64 && at(125) < 64) thin++;
      }
      expect(present / rays, mode).toBeGreaterThan(0.95);
      expect(thin / rays, mode).toBeGreaterThan(0.95);
    }
  });

  it('refined alpha scores better than the plain stretch against the true alpha (hard disc with texture)', () => {
    const { image, truth } = photo(disc(R, 0));
    const mask = modelMask(truth);
    const mae = (a: Uint8Array) => a.reduce((s, v, i) => s + Math.abs(v / 255 - truth[i]!), 0) / a.length;
    const plain = mae(upsampleBilinear(mask.data, MASK, MASK, SIZE, SIZE));
    expect(mae(refineMask(mask.data, MASK, image, REFINE_PRESETS.fast))).toBeLessThan(plain * 0.6);
  });
});

describe('mask clean-up', () => {
  /** The same rule by flood fill: 8-connected supports (fg: v > 26, bg: v < 229); border-touching bg is kept. */
  function brute(mask: Uint8Array, w: number, h: number, limit: number): Uint8Array {
    const out = Uint8Array.from(mask);
    const components = (inside: (v: number) => boolean) => {
      const seen = new Uint8Array(w * h);
      const found: { comp: number[]; border: boolean }[] = [];
      for (let s = 0; s < w * h; s++) {
        if (seen[s] || !inside(mask[s]!)) continue;
        const comp = [s];
        seen[s] = 1;
        let border = false;
        for (let q = 0; q < comp.length; q++) {
          const i = comp[q]!, x = i % w, y = (i / w) | 0;
          if (x === 0 || y === 0 || x === w - 1 || y === h - 1) border = true;
          for (let dy = -1; dy <= 1; dy++)
            for (let dx = -1; dx <= 1; dx++) {
              const xx = x + dx, yy = y + dy, j = yy * w + xx;
              if (xx < 0 || yy < 0 || xx >= w || yy >= h || seen[j] || !inside(mask[j]!)) continue;
              seen[j] = 1;
              comp.push(j);
            }
        }
        found.push({ comp, border });
      }
      return found;
    };
    for (const { comp } of components((v) => v > 26)) if (comp.length < limit) for (const p of comp) out[p] = 0;
    for (const { comp, border } of components((v) => v < 229)) if (!border && comp.length < limit) for (const p of comp) out[p] = 255;
    return out;
  }

  it('equals a flood-fill reference on random blobby masks', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let t = 0; t < 20; t++) {
      const w = 40 + Math.floor(rnd() * 30), h = 30 + Math.floor(rnd() * 30);
      const m = new Uint8Array(w * h);
      for (let k = 0; k < 25; k++) {
        const cx = rnd() * w, cy = rnd() * h, r = 1 + rnd() * 6, v = rnd() < 0.6 ? 255 : 0;
        for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (Math.hypot(x - cx, y - cy) <= r) m[y * w + x] = v;
      }
      for (let i = 0; i < m.length; i++) if (rnd() < 0.03) m[i] = Math.floor(rnd() * 256);
      const share = 0.01 + rnd() * 0.03;
      expect(Array.from(cleanMask(m, w, h, { speck: share, pinhole: share, faint: 26 })), `case ${t}`).toEqual(Array.from(brute(m, w, h, share * w * h)));
    }
  });

  it('removes a speck and its soft rim, fills a pinhole, keeps the subject, a real hole, a border notch and a thin faint strand', () => {
    const w = 100, h = 100;
    const m = new Uint8Array(w * h);
    const rect = (x0: number, y0: number, x1: number, y1: number, v: number) => {
      for (let y = y0; y < y1; y++) m.fill(v, y * w + x0, y * w + x1);
    };
    rect(20, 20, 80, 80, 255); // subject
    rect(30, 30, 33, 33, 0); // pinhole (9 px)
    rect(50, 50, 62, 62, 0); // real hole (144 px)
    rect(20, 70, 23, 80, 0); // notch open to the outside of the subject
    rect(5, 5, 8, 8, 255); // speck (9 px)
    rect(4, 4, 9, 5, 90); // its soft rim
    // A strand the coarse grid broke into dashes: above half only every third pixel, faint in between.
    for (let x = 80; x < 98; x++) m[40 * w + x] = x % 3 ? 60 : 200; // starts next to the subject's edge (x = 79)
    const out = cleanMask(m, w, h, { speck: 0.005, pinhole: 0.005, faint: 26 });
    expect(out[6 * w + 6]).toBe(0);
    expect(out[4 * w + 6]).toBe(0);
    expect(out[31 * w + 31]).toBe(255);
    expect(out[55 * w + 55]).toBe(0);
    expect(out[75 * w + 21]).toBe(0);
    expect(out[40 * w + 40]).toBe(255);
    expect(out[40 * w + 84]).toBe(200);
  });
});

describe('mask options (matte stage)', () => {
  const { image, truth } = photo(disc(150, 0));
  const mask = modelMask(truth);
  const box = (a: Uint8Array) => {
    let left = SIZE, right = -1, top = SIZE, bottom = -1;
    for (let y = 0; y < SIZE; y++)
      for (let x = 0; x < SIZE; x++)
        if (a[y * SIZE + x]! >= 128) {
          left = Math.min(left, x);
          right = Math.max(right, x);
          top = Math.min(top, y);
          bottom = Math.max(bottom, y);
        }
    return { left, right, top, bottom };
  };

  it('invertMask swaps subject and background', async () => {
    const plain = await upsampleMask(mask, image, { ...base, refine: 'off' });
    const inverted = await upsampleMask(mask, image, { ...base, refine: 'off', invertMask: true });
    for (let i = 0; i < plain.length; i += 97) expect(Math.abs(inverted[i]! - (255 - plain[i]!))).toBeLessThanOrEqual(1);
    const refined = await upsampleMask(mask, image, { ...base, refine: 'fast', invertMask: true });
    expect(refined[(SIZE / 2) * SIZE + SIZE / 2]).toBe(0);
    expect(refined[0]).toBe(255);
  });

  it('grow dilates the subject by that many pixels on every side; a negative grow erodes it', async () => {
    const plain = box(await upsampleMask(mask, image, { ...base, refine: 'fast' }));
    const grown = box(await upsampleMask(mask, image, { ...base, refine: 'fast', grow: 20 }));
    const shrunk = box(await upsampleMask(mask, image, { ...base, refine: 'fast', grow: -5 }));
    expect([grown.left, grown.top, grown.right, grown.bottom]).toEqual([plain.left - 20, plain.top - 20, plain.right + 20, plain.bottom + 20]);
    expect([shrunk.left, shrunk.top, shrunk.right, shrunk.bottom]).toEqual([plain.left + 5, plain.top + 5, plain.right - 5, plain.bottom - 5]);
  });

  it('semitransparency=false leaves only 0 and 255, the soft matte thresholded at half', async () => {
    const { image: soft, truth: softTruth } = photo(disc(150, 24));
    const m = modelMask(softTruth);
    const matte = await upsampleMask(m, soft, { ...base, refine: 'fast' });
    const hard = await upsampleMask(m, soft, { ...base, refine: 'fast', semitransparency: false });
    expect(matte.some((v) => v > 0 && v < 255)).toBe(true);
    expect(new Set(hard)).toEqual(new Set([0, 255]));
    for (let i = 0; i < hard.length; i++) if (hard[i] !== (matte[i]! >= 128 ? 255 : 0)) throw new Error(`pixel ${i}`);
  });

  it('edgeRefine 0–3 (effects tool): hard edges, the default matte, full refinement, full + choke + colour estimation', async () => {
    expect(matteJobFields(0, false)).toEqual({ semitransparency: false, grow: 0, foregroundEstimation: false });
    expect(matteJobFields(1, false)).toEqual({ semitransparency: true, grow: 0, foregroundEstimation: false });
    expect(matteJobFields(1, true)).toEqual({ semitransparency: true, grow: 0, foregroundEstimation: true });
    expect(matteJobFields(2, false)).toEqual({ semitransparency: true, grow: 0, foregroundEstimation: false, refine: 'full' });
    expect(matteJobFields(3, false)).toEqual({ semitransparency: true, grow: -1, foregroundEstimation: true, refine: 'full' });
    const level = async (n: number) => upsampleMask(mask, image, { ...base, ...matteJobFields(n, false) });
    expect(new Set(await level(0))).toEqual(new Set([0, 255]));
    const l2 = box(await level(2)), l3 = box(await level(3));
    expect([l3.left, l3.right]).toEqual([l2.left + 1, l2.right - 1]);
  });
});
