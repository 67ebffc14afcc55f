// src/pipeline/uncertainty.ts
// How unsure the model was about a cut-out, from its own low-resolution mask (Photoroom's x-uncertainty-score).

/** Alpha strictly between 5 % and 95 % (13..242 of 255) counts as undecided. */
const LOW = 13;
const HIGH = 242;

/**
 * The share of undecided mask pixels inside the subject's bounding box (every pixel with alpha ≥ 5 %):
 * 0 = every pixel near the subject is clearly in or out, 1 = none is. Read on the model's square mask, not the
 * upsampled matte, so the score does not grow with output size (bilinear upsampling softens edges in proportion
 * to the scale). A mask with no subject at all scores 1: an empty cut-out is the least trustworthy answer.
 * Rounded to 4 decimals.
 */
export function maskUncertainty(mask: Uint8Array, size: number): number {
  let top = size;
  let bottom = -1;
  let left = size;
  let right = -1;
  let soft = 0;
  for (let y = 0, i = 0; y < size; y++) {
    for (let x = 0; x < size; x++, i++) {
      const a = mask[i]!;
      if (a < LOW) continue;
      if (a <= HIGH) soft++;
      if (y < top) top = y;
      bottom = y;
      if (x < left) left = x;
      if (x > right) right = x;
    }
  }
  if (bottom < 0) return 1;
  const box = (bottom - top + 1) * (right - left + 1);
  return Math.round((soft / box) * 10_000) / 10_000;
}
