// src/pipeline/sizes.ts
// Output dimensions from the size name and explicit caps: fit inside every cap, keep the aspect, never upscale.
import { SIZE_PIXELS, type RemovalJob } from '../job.js';

export interface OutputSize {
  width: number;
  height: number;
  scale: number;
}

export function outputSize(
  width: number,
  height: number,
  job: Pick<RemovalJob, 'size' | 'maxWidth' | 'maxHeight'> & { maxPixels?: number | undefined },
  maxOutputPixels: number,
): OutputSize {
  const cap = job.size === 'full' || job.size === 'auto' ? maxOutputPixels : Math.min(SIZE_PIXELS[job.size], maxOutputPixels);
  const pixels = job.maxPixels ? Math.min(cap, job.maxPixels) : cap;
  let scale = Math.min(1, Math.sqrt(pixels / (width * height)));
  if (job.maxWidth) scale = Math.min(scale, job.maxWidth / width);
  if (job.maxHeight) scale = Math.min(scale, job.maxHeight / height);
  if (scale >= 1) return { width, height, scale: 1 };
  // Floor so rounding can never push the result over a pixel cap.
  const w = Math.max(1, Math.floor(width * scale));
  const h = Math.max(1, Math.floor(height * scale));
  return { width: w, height: h, scale };
}
