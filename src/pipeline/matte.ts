// src/pipeline/matte.ts
// Low-resolution mask → full-resolution alpha: upsample (plain bilinear, or edge-aware refinement guided by the
// photo), then the mask edits dialects ask for.
import type { RemovalJob } from '../job.js';
import type { DecodedImage } from './decode.js';
import type { LowResMask } from './infer.js';
import { morphAlpha } from './morph.js';
import { inBands } from './slice.js';
import { REFINE_PRESETS, refineMaskSliced, type RefineMode } from './refine.js';
import { upsampleBilinearSliced } from './upsample.js';

export type MatteOptions = Pick<RemovalJob, 'invertMask' | 'grow' | 'semitransparency'> & { refine?: RemovalJob['refine'] };

/** Server-wide refinement setting: a mode, or `auto` (chosen per output size, see `autoRefine`). */
export type RefineSetting = RefineMode | 'auto';

/** Outputs up to this many pixels get `full` under `auto`; larger ones `fast`. */
export const AUTO_FULL_PIXELS = 500_000;

/**
 * `auto`: measured on grabcut/coco_mval and timed at 1 and 12 MP (bench/RESULTS.md, "## Quality"): both presets
 * gain the same on the eval photos (0.1–0.3 MP) and `full` costs 2–4× the time of `fast` at camera sizes, so `full`
 * only where it is cheap in absolute terms (previews and small uploads) and `fast` above.
 */
export function autoRefine(width: number, height: number): RefineMode {
  return width * height <= AUTO_FULL_PIXELS ? 'full' : 'fast';
}

export function resolveRefine(job: RefineSetting | undefined, server: RefineSetting | undefined, width: number, height: number): RefineMode {
  const setting = job ?? server ?? 'auto';
  return setting === 'auto' ? autoRefine(width, height) : setting;
}

/**
 * Bilinear upsampling keeps the model's soft alpha without the ringing lanczos adds at 10–40× scale; refinement
 * (refine.ts) additionally cleans specks, snaps the edge band onto the photo's edges and raises the alpha's
 * confidence. Mask options, in this order:
 * - invertMask: subject and background swap (on the small mask, so refinement works on the inverted matte);
 * - semitransparency=false: every pixel becomes 0 or 255 (threshold at half);
 * - grow > 0: dilation by `grow` output pixels (square window), grow < 0: erosion;
 * - a pixel transparent in the upload stays transparent.
 */
export async function upsampleMask(mask: LowResMask, image: DecodedImage, options: MatteOptions, serverRefine?: RefineSetting): Promise<Buffer> {
  let small = mask.data;
  if (options.invertMask) {
    small = new Uint8Array(mask.data.length);
    for (let i = 0; i < small.length; i++) small[i] = 255 - mask.data[i]!;
  }
  const mode = resolveRefine(options.refine, serverRefine, image.width, image.height);
  let alpha =
    mode === 'off'
      ? await upsampleBilinearSliced(small, mask.size, mask.size, image.width, image.height)
      : await refineMaskSliced(small, mask.size, image, REFINE_PRESETS[mode]);
  if (!options.semitransparency) {
    const a = alpha;
    await inBands(image.height, image.width, (y0, y1) => {
      for (let i = y0 * image.width, end = y1 * image.width; i < end; i++) a[i] = a[i]! >= 128 ? 255 : 0;
    });
  }
  if (options.grow !== 0) {
    const grown = morphAlpha(alpha, image.width, image.height, Math.abs(options.grow), options.grow > 0 ? 'dilate' : 'erode');
    alpha = Buffer.from(grown.buffer, grown.byteOffset, grown.byteLength);
  }
  if (image.channels === 4) await multiplyInputAlpha(alpha, image.data, image.width, image.height);
  return alpha;
}

/** A pixel transparent in the upload stays transparent in the cut-out. */
async function multiplyInputAlpha(alpha: Buffer, rgba: Buffer, width: number, height: number): Promise<void> {
  await inBands(height, width, (y0, y1) => {
    for (let i = y0 * width, j = i * 4 + 3, end = y1 * width; i < end; i++, j += 4) alpha[i] = (alpha[i]! * rgba[j]! + 127) / 255;
  });
}
