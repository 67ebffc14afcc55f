// src/pipeline/refine.ts
// Edge-aware upsampling of the model's low-resolution mask. Three measured steps (bench/RESULTS.md, "## Quality"):
// 1. specks and pinholes are removed from the small mask (mask-cleanup.ts);
// 2. in a band around the mask's 0.5 contour, alpha is re-solved as a random walk on the photo's pixels (Grady 2006)
//    with a weak pull towards the stretched mask, so the edge settles where the photo's colour changes;
// 3. a confidence curve raises the contrast of the stretched alpha, most where the model's own edge is steep.
// The band is solved at a working resolution capped by `workLongSide`; colours are read from the full-resolution
// pixels only for band pixels (box-averaged over each working pixel's footprint), so nothing is resized as a whole.
import { cleanMask, CLEANUP } from './mask-cleanup.js';
import { bands, PIXELS_PER_STEP, rowsPerStep, runSliced, runToEnd, type Steps } from './slice.js';
import { upsampleSteps } from './upsample.js';

export const REFINE_MODES = ['off', 'fast', 'full'] as const;
export type RefineMode = (typeof REFINE_MODES)[number];

export interface RefineParams {
  /** Longest side of the working resolution (never above the output's). */
  workLongSide: number;
  /** …and at most this many working pixels per mask pixel (the band's cost grows with its square). */
  workPerMaskPx: number;
  /** Half-width of the re-solved band around the 0.5 contour, in mask pixels. */
  bandMaskPx: number;
  /** Gauss–Seidel sweeps over the band. */
  iterations: number;
  /** Pull towards the stretched mask against the neighbours (0 = a pure random walk between the band's sides). */
  prior: number;
  /** Edge sensitivity: squared colour steps are divided by their mean over the band, then scaled by this. */
  beta: number;
}

export interface CurveParams {
  /** Contrast gain per unit of the model's edge slope (alpha change per mask pixel). */
  gainPerSlope: number;
  /** Gain everywhere (clears faint haze, keeps wide soft edges soft). */
  minGain: number;
  /** Gain on the steepest edges. */
  maxGain: number;
}

/** Fitted on grabcut, confirmed on coco_mval (bench/RESULTS.md); the results move little across a wide range. */
export const CURVE: CurveParams = { gainPerSlope: 8, minGain: 1.5, maxGain: 8 };

/**
 * fast: a narrower band solved at up to twice the mask's resolution (≤ 1024 px) and stretched from there;
 * full: a wider band with more sweeps at up to 2048 px, i.e. the output itself for most uploads.
 * On grabcut the two score within 0.003 of each other (bench/RESULTS.md); full costs 2–4× the time.
 */
export const REFINE_PRESETS: Record<Exclude<RefineMode, 'off'>, RefineParams> = {
  fast: { workLongSide: 1024, workPerMaskPx: 2, bandMaskPx: 1, iterations: 8, prior: 0.03, beta: 1 },
  full: { workLongSide: 2048, workPerMaskPx: 8, bandMaskPx: 2, iterations: 20, prior: 0.03, beta: 1 },
};

export interface GuideImage {
  data: Buffer;
  width: number;
  height: number;
  channels: 3 | 4;
}

/** Mask values strictly inside (SOFT, 255 − SOFT) are undecided: they join the band without widening it. */
const SOFT = 26;

/**
 * Refines the low-resolution mask (size² square, stretched over the image) into full-resolution alpha.
 * `mask` values are 0..255. Returns one byte per image pixel.
 */
export function refineMask(mask: Uint8Array, size: number, image: GuideImage, params: RefineParams, curve: CurveParams = CURVE): Buffer {
  return runToEnd(refineSteps(mask, size, image, params, curve));
}

/** refineMask with the event loop let in between its passes (the pipeline's path: outputs up to 50 MP). */
export function refineMaskSliced(mask: Uint8Array, size: number, image: GuideImage, params: RefineParams, curve: CurveParams = CURVE): Promise<Buffer> {
  return runSliced(refineSteps(mask, size, image, params, curve));
}

function* refineSteps(mask: Uint8Array, size: number, image: GuideImage, params: RefineParams, curve: CurveParams): Steps<Buffer> {
  const { width: W, height: H } = image;
  const scale = Math.min(1, Math.min(params.workLongSide, params.workPerMaskPx * size) / Math.max(W, H));
  const w = Math.max(1, Math.round(W * scale)), h = Math.max(1, Math.round(H * scale));
  const clean = cleanMask(mask, size, size, CLEANUP);
  const prior = yield* upsampleSteps(clean, size, size, w, h);
  const band = yield* findBand(clean, size, w, h, params.bandMaskPx);
  const alpha = yield* solveBand(prior, band, w, h, image, params);
  const out = yield* writeAlpha(prior, alpha, band, w, h, w / size, h / size, curve);
  return w === W && h === H ? out : yield* upsampleSteps(out, w, h, W, H);
}

export interface Band {
  /** Working-pixel indices of the solved pixels, row-major. */
  pixels: Int32Array;
  /** Row-major indices of the held ring: 4-neighbours of the band outside it (read at the mask, never solved). */
  ring: Int32Array;
}

/** First bilinear tap of each destination index (pixel-centre aligned, as upsample.ts). */
function firstTaps(srcSize: number, dstSize: number): Int32Array {
  const out = new Int32Array(dstSize);
  const scale = srcSize / dstSize;
  for (let d = 0; d < dstSize; d++) out[d] = Math.floor(Math.min(Math.max((d + 0.5) * scale - 0.5, 0), srcSize - 1));
  return out;
}

/**
 * The band, found on the small mask and mapped to the working grid: mask pixels within `radius` (chessboard) of
 * the 0.5 contour, plus undecided mask pixels and their 8-neighbours; a working pixel belongs to the band when the
 * mask pixel of its first bilinear tap does. Every working pixel whose stretched value is undecided or next to the
 * contour is then inside, and the cost of finding it follows the mask, not the output.
 */
export function* findBand(mask: Uint8Array, size: number, w: number, h: number, radius: number): Steps<Band> {
  const m = size * size;
  const r = Math.max(1, Math.ceil(radius));
  const inBand = new Uint8Array(m);
  const dist = new Uint8Array(m).fill(255);
  const queue = new Int32Array(m);
  let tail = 0;
  const seed = (i: number) => {
    if (dist[i] !== 0) {
      dist[i] = 0;
      queue[tail++] = i;
    }
  };
  for (let y = 0; y < size; y++) {
    for (let x = 0, i = y * size; x < size; x++, i++) {
      const inside = mask[i]! >= 128;
      if (x + 1 < size && mask[i + 1]! >= 128 !== inside) {
        seed(i);
        seed(i + 1);
      }
      if (y + 1 < size && mask[i + size]! >= 128 !== inside) {
        seed(i);
        seed(i + size);
      }
    }
  }
  for (let head = 0; head < tail; head++) {
    const i = queue[head]!;
    inBand[i] = 1;
    const d = dist[i]! + 1;
    if (d > r) continue;
    const y = (i / size) | 0, x = i - y * size;
    for (let yy = Math.max(0, y - 1); yy <= Math.min(size - 1, y + 1); yy++) {
      for (let j = yy * size + Math.max(0, x - 1), end = yy * size + Math.min(size - 1, x + 1); j <= end; j++) {
        if (dist[j]! > d) {
          dist[j] = d;
          queue[tail++] = j;
        }
      }
    }
  }
  for (let y = 0; y < size; y++) {
    for (let x = 0, i = y * size; x < size; x++, i++) {
      const v = mask[i]!;
      if (v <= SOFT || v >= 255 - SOFT) continue;
      for (let yy = Math.max(0, y - 1); yy <= Math.min(size - 1, y + 1); yy++) {
        inBand.fill(1, yy * size + Math.max(0, x - 1), yy * size + Math.min(size - 1, x + 1) + 1);
      }
    }
  }
  yield;
  // Working grid: a mark per pixel (1 band, 2 ring), counted and listed row by row.
  const cols = firstTaps(size, w), rows = firstTaps(size, h);
  const mark = new Uint8Array(w * h);
  let count = 0;
  for (let y0 = 0, step = rowsPerStep(w); y0 < h; y0 += step) {
    count += markBand(inBand, size, rows, cols, mark, w, y0, Math.min(h, y0 + step));
    yield;
  }
  const pixels = new Int32Array(count);
  const listed = { pixels: 0, ring: 0 };
  for (let i0 = 0; i0 < w * h; i0 += PIXELS_PER_STEP) {
    listBand(mark, w, h, pixels, listed, i0, Math.min(w * h, i0 + PIXELS_PER_STEP));
    yield;
  }
  const ring = new Int32Array(listed.ring);
  for (let i = 0, k = 0; k < listed.ring; i++) if (mark[i] === 2) ring[k++] = i;
  return { pixels, ring };
}

/** Marks the working rows [y0, y1) whose first tap lands in the mask's band; returns how many were marked. */
function markBand(inBand: Uint8Array, size: number, rows: Int32Array, cols: Int32Array, mark: Uint8Array, w: number, y0: number, y1: number): number {
  let count = 0;
  for (let y = y0; y < y1; y++) {
    const o = rows[y]! * size;
    for (let x = 0, i = y * w; x < w; x++, i++) {
      if (inBand[o + cols[x]!]) {
        mark[i] = 1;
        count++;
      }
    }
  }
  return count;
}

/** Lists the band pixels of [i0, end) into `pixels` and marks their unmarked 4-neighbours as ring, counting both. */
function listBand(mark: Uint8Array, w: number, h: number, pixels: Int32Array, listed: { pixels: number; ring: number }, i0: number, end: number): void {
  let k = listed.pixels, ringCount = 0;
  for (let i = i0; i < end; i++) {
    if (mark[i] !== 1) continue;
    pixels[k++] = i;
    const x = i % w;
    if (x > 0 && mark[i - 1] === 0) (mark[i - 1] = 2), ringCount++;
    if (x + 1 < w && mark[i + 1] === 0) (mark[i + 1] = 2), ringCount++;
    if (i >= w && mark[i - w] === 0) (mark[i - w] = 2), ringCount++;
    if (i + w < w * h && mark[i + w] === 0) (mark[i + w] = 2), ringCount++;
  }
  listed.pixels = k;
  listed.ring += ringCount;
}

/** Mean colour of the full-resolution footprint of each band pixel (w×h working grid over W×H), 0..255. */
function* bandColours(band: Int32Array, w: number, h: number, image: GuideImage): Steps<Float32Array> {
  const out = new Float32Array(band.length * 3);
  const footprint = Math.ceil(image.width / w) * Math.ceil(image.height / h);
  const step = Math.max(1, Math.floor(PIXELS_PER_STEP / footprint));
  for (let k = 0; k < band.length; k += step) {
    averageFootprints(band, k, Math.min(band.length, k + step), w, h, image, out);
    yield;
  }
  return out;
}

function averageFootprints(band: Int32Array, from: number, to: number, w: number, h: number, image: GuideImage, out: Float32Array): void {
  const { width: W, height: H, data, channels: ch } = image;
  const sx = W / w, sy = H / h;
  for (let k = from; k < to; k++) {
    const i = band[k]!;
    const x = i % w, y = (i - x) / w;
    const x0 = Math.floor(x * sx), x1 = Math.max(x0 + 1, Math.min(W, Math.floor((x + 1) * sx)));
    const y0 = Math.floor(y * sy), y1 = Math.max(y0 + 1, Math.min(H, Math.floor((y + 1) * sy)));
    let r = 0, g = 0, b = 0;
    for (let yy = y0; yy < y1; yy++) {
      for (let p = (yy * W + x0) * ch, end = (yy * W + x1) * ch; p < end; p += ch) {
        r += data[p]!;
        g += data[p + 1]!;
        b += data[p + 2]!;
      }
    }
    const inv = 1 / ((x1 - x0) * (y1 - y0));
    out[k * 3] = r * inv;
    out[k * 3 + 1] = g * inv;
    out[k * 3 + 2] = b * inv;
  }
}

/**
 * Minimises Σ w_ij (α_i − α_j)² + prior · Σ (α_i − p_i)² over the band, with w_ij = exp(−β·|I_i − I_j|² / mean) on
 * 4-neighbour links, the ring held at the stretched mask (it has colours, so a photo edge right at the band's side
 * still cuts the link). Gauss–Seidel sweeps. Returns alpha (0..1) per band pixel, in band order.
 */
function* solveBand(prior: Uint8Array, band: Band, w: number, h: number, image: GuideImage, params: RefineParams): Steps<Float64Array> {
  const nb = band.pixels.length;
  if (nb === 0) return new Float64Array(0);
  const all = new Int32Array(nb + band.ring.length);
  all.set(band.pixels);
  all.set(band.ring, nb);
  const total = all.length;
  const colour = yield* bandColours(all, w, h, image);
  // Slot of each working pixel in `all` (−1 outside), to find a neighbour's colour and value.
  const slot = new Int32Array(w * h).fill(-1);
  for (let k = 0; k < total; k++) slot[all[k]!] = k;
  const values = new Float64Array(total + 1); // the last slot stays 0: the target of missing links
  for (let k = 0; k < total; k++) values[k] = prior[all[k]!]! / 255;
  yield;
  // Four links per solved pixel: neighbour slot and squared colour step, then the weight.
  const nbr = new Int32Array(nb * 4).fill(total);
  const wt = new Float64Array(nb * 4);
  let sum = 0;
  for (let k = 0; k < nb; k += PIXELS_PER_STEP) {
    sum += linkSteps(all, slot, colour, w, h, nbr, wt, k, Math.min(nb, k + PIXELS_PER_STEP));
    yield;
  }
  let links = 0;
  for (let q = 0; q < nb * 4; q++) if (nbr[q] !== total) links++;
  const gain = params.beta / Math.max(1e-6, sum / Math.max(1, links));
  const lambda = params.prior;
  const base = new Float64Array(nb), inv = new Float64Array(nb);
  for (let k = 0; k < nb; k += PIXELS_PER_STEP) {
    weighLinks(nbr, wt, values, base, inv, total, gain, lambda, k, Math.min(nb, k + PIXELS_PER_STEP));
    yield;
  }
  for (let it = 0; it < params.iterations; it++) {
    // In chunks: one Gauss–Seidel sweep over the band, split only where a pause may come (same result).
    for (let from = 0; from < nb; from += PIXELS_PER_STEP) {
      relax(values, base, inv, nbr, wt, from, Math.min(nb, from + PIXELS_PER_STEP));
      yield;
    }
  }
  return values.subarray(0, nb);
}

/** One Gauss–Seidel update of pixels [from, to), in place. */
function relax(values: Float64Array, base: Float64Array, inv: Float64Array, nbr: Int32Array, wt: Float64Array, from: number, to: number): void {
  for (let k = from, q = from * 4; k < to; k++, q += 4) {
    values[k] = (base[k]! + wt[q]! * values[nbr[q]!]! + wt[q + 1]! * values[nbr[q + 1]!]! + wt[q + 2]! * values[nbr[q + 2]!]! + wt[q + 3]! * values[nbr[q + 3]!]!) * inv[k]!;
  }
}

/** Links of solved pixels [from, to) to their 4 neighbours in the band or ring: slot and squared colour step. Returns the steps' sum. */
function linkSteps(all: Int32Array, slot: Int32Array, colour: Float32Array, w: number, h: number, nbr: Int32Array, wt: Float64Array, from: number, to: number): number {
  let sum = 0;
  const link = (k: number, d: number, j: number) => {
    if (j < 0) return;
    const dr = colour[k * 3]! - colour[j * 3]!, dg = colour[k * 3 + 1]! - colour[j * 3 + 1]!, db = colour[k * 3 + 2]! - colour[j * 3 + 2]!;
    const step = dr * dr + dg * dg + db * db;
    nbr[k * 4 + d] = j;
    wt[k * 4 + d] = step;
    sum += step;
  };
  for (let k = from; k < to; k++) {
    const i = all[k]!;
    const x = i % w;
    if (x > 0) link(k, 0, slot[i - 1]!);
    if (x + 1 < w) link(k, 1, slot[i + 1]!);
    if (i >= w) link(k, 2, slot[i - w]!);
    if (i + w < w * h) link(k, 3, slot[i + w]!);
  }
  return sum;
}

/** Turns the squared colour steps of pixels [from, to) into weights, with each pixel's prior term and 1 / Σ weights. */
function weighLinks(nbr: Int32Array, wt: Float64Array, values: Float64Array, base: Float64Array, inv: Float64Array, missing: number, gain: number, lambda: number, from: number, to: number): void {
  for (let k = from, q = from * 4; k < to; k++) {
    let ws = lambda;
    for (let d = 0; d < 4; d++, q++) {
      if (nbr[q] === missing) continue;
      wt[q] = Math.exp(-gain * wt[q]!);
      ws += wt[q]!;
    }
    base[k] = lambda * values[k]!;
    inv[k] = 1 / ws;
  }
}

/**
 * Writes the working-resolution alpha: band pixels from the solve, every other pixel from the stretched mask, all
 * through the confidence curve 0.5 + g·(α − 0.5), g = clamp(gainPerSlope · slope, minGain, maxGain), where slope is
 * the stretched mask's gradient in alpha per mask pixel. A hard edge (the model's steepest ramp) gets the most
 * contrast; a wide, gentle ramp (a feathered or blurred edge the model saw) keeps most of its softness.
 */
function* writeAlpha(prior: Uint8Array, alpha: Float64Array, band: Band, w: number, h: number, maskPxX: number, maskPxY: number, curve: CurveParams): Steps<Buffer> {
  const n = w * h;
  const out = Buffer.allocUnsafe(n);
  // Central differences in 0..255 per working pixel → alpha per mask pixel.
  const sx = maskPxX / 255, sy = maskPxY / 255;
  const through = (i: number, a: number) => {
    const x = i % w;
    const l = x > 0 ? i - 1 : i, r = x + 1 < w ? i + 1 : i;
    const u = i >= w ? i - w : i, d = i + w < n ? i + w : i;
    const gx = ((prior[r]! - prior[l]!) / Math.max(1, r - l)) * sx;
    const gy = ((prior[d]! - prior[u]!) / Math.max(1, (d - u) / w)) * sy;
    let g = curve.gainPerSlope * Math.sqrt(gx * gx + gy * gy);
    g = g < curve.minGain ? curve.minGain : g > curve.maxGain ? curve.maxGain : g;
    const v = (0.5 + g * (a - 0.5)) * 255;
    out[i] = v <= 0 ? 0 : v >= 255 ? 255 : v + 0.5;
  };
  yield* bands(h, w, (y0, y1) => {
    for (let i = y0 * w, end = y1 * w; i < end; i++) {
      const p = prior[i]!;
      if (p === 0 || p === 255) out[i] = p;
      else through(i, p / 255);
    }
  });
  const { pixels } = band;
  for (let k = 0; k < pixels.length; k++) through(pixels[k]!, alpha[k]!);
  return out;
}
