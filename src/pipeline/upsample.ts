// src/pipeline/upsample.ts
// Separable bilinear upsampling of a small square mask to the output size, in JS.
// libvips' resize of a 320² mask to 12 MP takes ~300 ms (perf-anchors §3); this takes ~25 ms because
// each output row is a fixed-weight blend of two pre-widened source rows.

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
  const out = Buffer.allocUnsafe(width * height);
  const cols = taps(srcWidth, width);
  const rows = taps(srcHeight, height);
  // Widen every source row once (srcHeight × width), then blend pairs of them per output row.
  const wide = new Float32Array(srcHeight * width);
  for (let y = 0; y < srcHeight; y++) {
    const s = y * srcWidth;
    const o = y * width;
    for (let x = 0; x < width; x++) {
      const a = src[s + cols.i0[x]!]!;
      wide[o + x] = a + (src[s + cols.i1[x]!]! - a) * cols.w[x]!;
    }
  }
  for (let y = 0; y < height; y++) {
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
  return out;
}
