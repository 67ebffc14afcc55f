// src/pipeline/refine.ts
// Edge-aware upsampling of the model's low-resolution mask: a fast colour guided filter (He, Sun & Tang 2010;
// He & Sun 2015, "Fast Guided Filter"). The filter runs on the image downscaled to a working size, and its linear
// coefficients (alpha ≈ a·I + b per window) are bilinearly upsampled and applied to the full-resolution pixels,
// so the output edge follows the photo's own edges at full resolution while the cost stays near the working size.
// Box means are separable running sums, O(1) per pixel whatever the radius.
import sharp from 'sharp';
import { upsampleBilinear } from './upsample.js';

export const REFINE_MODES = ['off', 'fast', 'full'] as const;
export type RefineMode = (typeof REFINE_MODES)[number];

export interface RefineParams {
  /** Longest side of the working resolution (the guide is downscaled to it, never upscaled). */
  workLongSide: number;
  /** Window radius in mask pixels (one mask pixel is the model's resolution step). */
  radiusMaskPx: number;
  /** Regularisation on intensities in [0,1]; smaller keeps edges sharper. */
  eps: number;
}

/** fast: working size ≈ 2× the mask; full: working size up to 2048 px (≈ the output for most uploads). */
export const REFINE_PRESETS: Record<Exclude<RefineMode, 'off'>, RefineParams> = {
  fast: { workLongSide: 768, radiusMaskPx: 2, eps: 1e-3 },
  full: { workLongSide: 2048, radiusMaskPx: 2, eps: 1e-3 },
};

export interface GuideImage {
  data: Buffer;
  width: number;
  height: number;
  channels: 3 | 4;
}

/** Mean over a (2r+1)² window clipped at the borders, in place on `a`; `tmp` is scratch of the same length. */
export function boxMean(a: Float32Array, w: number, h: number, r: number, tmp: Float32Array): void {
  // Rows: running sum along x, divided by the clipped window length.
  for (let y = 0; y < h; y++) {
    const row = y * w;
    let sum = 0;
    const first = Math.min(r, w - 1);
    for (let x = 0; x <= first; x++) sum += a[row + x]!;
    for (let x = 0; x < w; x++) {
      const lo = x - r, hi = x + r;
      tmp[row + x] = sum / (Math.min(hi, w - 1) - Math.max(lo, 0) + 1);
      if (hi + 1 < w) sum += a[row + hi + 1]!;
      if (lo >= 0) sum -= a[row + lo]!;
    }
  }
  // Columns, all x at once per y so memory is read row-wise.
  const sums = new Float64Array(w);
  const first = Math.min(r, h - 1);
  for (let y = 0; y <= first; y++) for (let x = 0, o = y * w; x < w; x++) sums[x] = sums[x]! + tmp[o + x]!;
  for (let y = 0; y < h; y++) {
    const lo = y - r, hi = y + r;
    const inv = 1 / (Math.min(hi, h - 1) - Math.max(lo, 0) + 1);
    const o = y * w;
    for (let x = 0; x < w; x++) a[o + x] = sums[x]! * inv;
    if (hi + 1 < h) for (let x = 0, p = (hi + 1) * w; x < w; x++) sums[x] = sums[x]! + tmp[p + x]!;
    if (lo >= 0) for (let x = 0, p = lo * w; x < w; x++) sums[x] = sums[x]! - tmp[p + x]!;
  }
}

/**
 * Colour guided filter at w×h: guide planes I (r,g,b in [0,1]) and input p in [0,1].
 * Returns the mean coefficients (ar, ag, ab, b) so that q = ar·R + ag·G + ab·B + b.
 */
export function guidedCoefficients(
  I: [Float32Array, Float32Array, Float32Array],
  p: Float32Array,
  w: number,
  h: number,
  r: number,
  eps: number,
): [Float32Array, Float32Array, Float32Array, Float32Array] {
  const n = w * h;
  const tmp = new Float32Array(n);
  const mean = (src: Float32Array) => {
    const out = Float32Array.from(src);
    boxMean(out, w, h, r, tmp);
    return out;
  };
  const prod = (x: Float32Array, y: Float32Array) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = x[i]! * y[i]!;
    boxMean(out, w, h, r, tmp);
    return out;
  };
  const [R, G, B] = I;
  const mR = mean(R), mG = mean(G), mB = mean(B), mP = mean(p);
  const rr = prod(R, R), rg = prod(R, G), rb = prod(R, B), gg = prod(G, G), gb = prod(G, B), bb = prod(B, B);
  const rp = prod(R, p), gp = prod(G, p), bp = prod(B, p);
  // Reuse the product planes for the coefficients.
  const aR = rp, aG = gp, aB = bp, bC = mP;
  for (let i = 0; i < n; i++) {
    const mr = mR[i]!, mg = mG[i]!, mb = mB[i]!, mp = mP[i]!;
    const cr = rp[i]! - mr * mp, cg = gp[i]! - mg * mp, cb = bp[i]! - mb * mp;
    const s00 = rr[i]! - mr * mr + eps, s01 = rg[i]! - mr * mg, s02 = rb[i]! - mr * mb;
    const s11 = gg[i]! - mg * mg + eps, s12 = gb[i]! - mg * mb, s22 = bb[i]! - mb * mb + eps;
    // Symmetric 3×3 inverse by cofactors.
    const c00 = s11 * s22 - s12 * s12, c01 = s02 * s12 - s01 * s22, c02 = s01 * s12 - s02 * s11;
    const c11 = s00 * s22 - s02 * s02, c12 = s01 * s02 - s00 * s12, c22 = s00 * s11 - s01 * s01;
    const inv = 1 / (s00 * c00 + s01 * c01 + s02 * c02);
    const ar = (c00 * cr + c01 * cg + c02 * cb) * inv;
    const ag = (c01 * cr + c11 * cg + c12 * cb) * inv;
    const ab = (c02 * cr + c12 * cg + c22 * cb) * inv;
    aR[i] = ar;
    aG[i] = ag;
    aB[i] = ab;
    bC[i] = mp - ar * mr - ag * mg - ab * mb;
  }
  boxMean(aR, w, h, r, tmp);
  boxMean(aG, w, h, r, tmp);
  boxMean(aB, w, h, r, tmp);
  boxMean(bC, w, h, r, tmp);
  return [aR, aG, aB, bC];
}

/** Pixel-centre aligned source index pair and weight for each destination index (as upsample.ts). */
function taps(srcSize: number, dstSize: number) {
  const i0 = new Int32Array(dstSize), i1 = new Int32Array(dstSize), wt = new Float32Array(dstSize);
  const scale = srcSize / dstSize;
  for (let d = 0; d < dstSize; d++) {
    const s = Math.min(Math.max((d + 0.5) * scale - 0.5, 0), srcSize - 1);
    const a = Math.floor(s);
    i0[d] = a;
    i1[d] = Math.min(a + 1, srcSize - 1);
    wt[d] = s - a;
  }
  return { i0, i1, wt };
}

/**
 * Refines the low-resolution mask (size² square, stretched over the image) into full-resolution alpha.
 * `mask` values are 0..255. Returns one byte per image pixel.
 */
export async function refineMask(mask: Uint8Array, size: number, image: GuideImage, params: RefineParams): Promise<Buffer> {
  const { width: W, height: H } = image;
  const scale = Math.min(1, params.workLongSide / Math.max(W, H));
  const w = Math.max(1, Math.round(W * scale)), h = Math.max(1, Math.round(H * scale));
  const small =
    w === W && h === H
      ? image.data
      : await sharp(image.data, { raw: { width: W, height: H, channels: image.channels } }).resize(w, h, { fit: 'fill', kernel: 'linear' }).raw().toBuffer();
  const ch = image.channels;
  const n = w * h;
  const R = new Float32Array(n), G = new Float32Array(n), B = new Float32Array(n), P = new Float32Array(n);
  for (let i = 0, o = 0; i < n; i++, o += ch) {
    R[i] = small[o]! / 255;
    G[i] = small[o + 1]! / 255;
    B[i] = small[o + 2]! / 255;
  }
  const up = upsampleBilinear(mask, size, size, w, h);
  for (let i = 0; i < n; i++) P[i] = up[i]! / 255;
  // One mask pixel spans (w/size, h/size) working pixels; the window covers radiusMaskPx of them.
  const r = Math.max(1, Math.round((params.radiusMaskPx * Math.max(w, h)) / size));
  const [aR, aG, aB, bC] = guidedCoefficients([R, G, B], P, w, h, r, params.eps);
  return applyCoefficients(aR, aG, aB, bC, w, h, image);
}

/** q = A·I + B at full resolution with A, B bilinearly upsampled row by row (two widened rows kept). */
function applyCoefficients(aR: Float32Array, aG: Float32Array, aB: Float32Array, bC: Float32Array, w: number, h: number, image: GuideImage): Buffer {
  const { width: W, height: H, data, channels: ch } = image;
  const out = Buffer.allocUnsafe(W * H);
  const cols = taps(w, W), rows = taps(h, H);
  const widen = (sy: number, dst: Float32Array) => {
    const o = sy * w;
    for (let x = 0, d = 0; x < W; x++, d += 4) {
      const j0 = o + cols.i0[x]!, j1 = o + cols.i1[x]!, t = cols.wt[x]!;
      // a is per unit of [0,1] intensity and alpha is wanted in 0..255, so a·byte needs no rescale; b is scaled by 255.
      dst[d] = aR[j0]! + (aR[j1]! - aR[j0]!) * t;
      dst[d + 1] = aG[j0]! + (aG[j1]! - aG[j0]!) * t;
      dst[d + 2] = aB[j0]! + (aB[j1]! - aB[j0]!) * t;
      dst[d + 3] = (bC[j0]! + (bC[j1]! - bC[j0]!) * t) * 255;
    }
  };
  let rowA = new Float32Array(W * 4), rowB = new Float32Array(W * 4);
  let heldA = -1, heldB = -1;
  for (let y = 0; y < H; y++) {
    const s0 = rows.i0[y]!, s1 = rows.i1[y]!, t = rows.wt[y]!;
    if (heldA !== s0) {
      if (heldB === s0) {
        [rowA, rowB] = [rowB, rowA];
        heldA = s0;
        heldB = -1;
      } else {
        widen(s0, rowA);
        heldA = s0;
      }
    }
    if (heldB !== s1) {
      widen(s1, rowB);
      heldB = s1;
    }
    const u = 1 - t;
    for (let x = 0, d = 0, p = y * W * ch, o = y * W; x < W; x++, d += 4, p += ch, o++) {
      const q =
        (rowA[d]! * u + rowB[d]! * t) * data[p]! +
        (rowA[d + 1]! * u + rowB[d + 1]! * t) * data[p + 1]! +
        (rowA[d + 2]! * u + rowB[d + 2]! * t) * data[p + 2]! +
        rowA[d + 3]! * u + rowB[d + 3]! * t;
      out[o] = q <= 0 ? 0 : q >= 255 ? 255 : q + 0.5;
    }
  }
  return out;
}
