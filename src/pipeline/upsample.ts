// src/pipeline/upsample.ts
// Separable bilinear upsampling of a small square mask to the output size, in JS.
// libvips' resize of a 320² mask to 12 MP takes ~300 ms (perf-anchors §3); this takes ~25 ms because
// each output row is a fixed-weight blend of two pre-widened source rows.
import { bands, runSliced, runToEnd, type Steps } from './slice.js';

/** Pixel-centre aligned source coordinate and weight for each destination index. */
function taps(srcSize: number, dstSize: number): { i0: Int32Array; i1: Int32Array; w: Float32Array } {
  const i0 = new Int32Array(dstSize);
  const i1 = new Int32Array(dstSize);
  const w = new Float32Array(dstSize);
  const scale = srcSize / dstSize;
  for (let d = 0; d < dstSize; d++) {
    let s = (d + 0.5) * scale - 0.5;
    if (s < 0) s = 0;
    if (s > srcSize - 1) s = srcSize - 1;
    const a = Math.floor(s);
    i0[d] = a;
    i1[d] = Math.min(a + 1, srcSize - 1);
    w[d] = s - a;
  }
  return { i0, i1, w };
}

export function upsampleBilinear(src: Uint8Array, srcWidth: number, srcHeight: number, width: number, height: number): Buffer {
  return runToEnd(upsampleSteps(src, srcWidth, srcHeight, width, height));
}

/** The same, with the event loop let in between bands of rows (full-resolution outputs on the main thread). */
export function upsampleBilinearSliced(src: Uint8Array, srcWidth: number, srcHeight: number, width: number, height: number): Promise<Buffer> {
  return runSliced(upsampleSteps(src, srcWidth, srcHeight, width, height));
}

export function* upsampleSteps(src: Uint8Array, srcWidth: number, srcHeight: number, width: number, height: number): Steps<Buffer> {
  const out = Buffer.allocUnsafe(width * height);
  const cols = taps(srcWidth, width);
  const rows = taps(srcHeight, height);
  // Widen every source row once (srcHeight × width), then blend pairs of them per output row.
  const wide = new Float32Array(srcHeight * width);
  yield* bands(srcHeight, width, (y0, y1) => widenRows(src, srcWidth, wide, width, cols.i0, cols.i1, cols.w, y0, y1));
  yield* bands(height, width, (y0, y1) => blendRows(wide, out, width, rows.i0, rows.i1, rows.w, y0, y1));
  return out;
}

// The kernels take everything as arguments: loops over captured variables ran 2× slower in V8.
function widenRows(src: Uint8Array, srcWidth: number, wide: Float32Array, width: number, i0: Int32Array, i1: Int32Array, w: Float32Array, y0: number, y1: number): void {
  for (let y = y0; y < y1; y++) {
    const s = y * srcWidth;
    const o = y * width;
    for (let x = 0; x < width; x++) {
      const a = src[s + i0[x]!]!;
      wide[o + x] = a + (src[s + i1[x]!]! - a) * w[x]!;
    }
  }
}

function blendRows(wide: Float32Array, out: Uint8Array, width: number, i0: Int32Array, i1: Int32Array, w: Float32Array, y0: number, y1: number): void {
  for (let y = y0; y < y1; y++) {
    const r0 = i0[y]! * width;
    const r1 = i1[y]! * width;
    const wy = w[y]!;
    const o = y * width;
    if (wy === 0) {
      for (let x = 0; x < width; x++) out[o + x] = wide[r0 + x]! + 0.5;
    } else {
      for (let x = 0; x < width; x++) {
        const a = wide[r0 + x]!;
        out[o + x] = a + (wide[r1 + x]! - a) * wy + 0.5;
      }
    }
  }
}
