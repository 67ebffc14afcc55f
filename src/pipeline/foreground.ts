// src/pipeline/foreground.ts
// Removes the old background's colour from soft edges (despill / decontamination).
// Each edge pixel is I = αF + (1−α)B; with B estimated from the nearby clear background we solve for F.

const CLEAR_BACKGROUND = 8;
const SOLID = 250;
/** Below this α the solved colour is mostly noise; it is barely visible anyway, so keep I. */
const MIN_SOLVE_ALPHA = 24;

/**
 * Solves the compositing equation per edge pixel, with B the mean colour of clear background pixels in the
 * same tile (64 px tiles, falling back to the image-wide mean), so a varied background is handled locally.
 * Runs in place on `data` (3 or 4 channels); only pixels with 0 < α < 250 are touched.
 */
export function estimateForeground(data: Buffer, channels: 3 | 4, alpha: Uint8Array, width: number, height: number): void {
  const tile = 64;
  const tilesX = Math.ceil(width / tile);
  const tilesY = Math.ceil(height / tile);
  const sums = new Float64Array(tilesX * tilesY * 4);
  let gr = 0, gg = 0, gb = 0, gn = 0;
  for (let y = 0; y < height; y++) {
    const ty = (y / tile) | 0;
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      if (alpha[p]! > CLEAR_BACKGROUND) continue;
      const o = p * channels;
      const t = (ty * tilesX + ((x / tile) | 0)) * 4;
      sums[t] = sums[t]! + data[o]!;
      sums[t + 1] = sums[t + 1]! + data[o + 1]!;
      sums[t + 2] = sums[t + 2]! + data[o + 2]!;
      sums[t + 3] = sums[t + 3]! + 1;
    }
  }
  for (let t = 0; t < sums.length; t += 4) {
    gr += sums[t]!;
    gg += sums[t + 1]!;
    gb += sums[t + 2]!;
    gn += sums[t + 3]!;
  }
  if (gn === 0) return; // no visible background: nothing to remove
  const fallback = [gr / gn, gg / gn, gb / gn] as const;
  const bg = new Float32Array(tilesX * tilesY * 3);
  for (let t = 0; t < tilesX * tilesY; t++) {
    const n = sums[t * 4 + 3]!;
    // Few samples give an unstable mean; blend towards the global colour.
    const w = n / (n + 32);
    for (let c = 0; c < 3; c++) bg[t * 3 + c] = n > 0 ? (sums[t * 4 + c]! / n) * w + fallback[c]! * (1 - w) : fallback[c]!;
  }
  for (let y = 0; y < height; y++) {
    const ty = (y / tile) | 0;
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      const a8 = alpha[p]!;
      if (a8 < MIN_SOLVE_ALPHA || a8 >= SOLID) continue;
      const a = a8 / 255;
      const o = p * channels;
      const t = (ty * tilesX + ((x / tile) | 0)) * 3;
      for (let c = 0; c < 3; c++) {
        const f = (data[o + c]! - (1 - a) * bg[t + c]!) / a;
        data[o + c] = f < 0 ? 0 : f > 255 ? 255 : f;
      }
    }
  }
}
