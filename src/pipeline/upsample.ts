// src/pipeline/upsample.ts
// Separable bilinear upsampling of a small square mask to the output size, in JS.
// libvips' resize of a 320² mask to 12 MP takes ~300 ms (perf-anchors §3); this takes ~25 ms because
// each output row is a fixed-weight blend of two pre-widened source rows.
import { inBands } from './slice.js';

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
  const { out, widen, blend } = bilinearPasses(src, srcWidth, srcHeight, width, height);
  widen(0, srcHeight);
  blend(0, height);
  return out;
}

/** The same, in bands of rows with the event loop let in between (full-resolution outputs on the main thread). */
export async function upsampleBilinearSliced(src: Uint8Array, srcWidth: number, srcHeight: number, width: number, height: number): Promise<Buffer> {
  const { out, widen, blend } = bilinearPasses(src, srcWidth, srcHeight, width, height);
  await inBands(srcHeight, width, widen);
  await inBands(height, width, blend);
  return out;
}

function bilinearPasses(src: Uint8Array, srcWidth: number, srcHeight: number, width: number, height: number) {
  const out = Buffer.allocUnsafe(width * height);
  const cols = taps(srcWidth, width);
  const rows = taps(srcHeight, height);
  // Widen every source row once (srcHeight × width), then blend pairs of them per output row.
  const wide = new Float32Array(srcHeight * width);
  const widen = (y0: number, y1: number) => {
    for (let y = y0; y < y1; y++) {
      const s = y * srcWidth;
      const o = y * width;
      for (let x = 0; x < width; x++) {
        const a = src[s + cols.i0[x]!]!;
        wide[o + x] = a + (src[s + cols.i1[x]!]! - a) * cols.w[x]!;
      }
    }
  };
  const blend = (y0: number, y1: number) => {
    for (let y = y0; y < y1; y++) {
      const r0 = rows.i0[y]! * width;
      const r1 = rows.i1[y]! * width;
      const wy = rows.w[y]!;
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
  };
  return { out, widen, blend };
}
