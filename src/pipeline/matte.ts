// src/pipeline/matte.ts
// Low-resolution mask → full-resolution alpha: upsample (plain bilinear, or edge-aware refinement guided by the
// photo), then the mask edits dialects ask for.
import type { RemovalJob } from '../job.js';
import type { DecodedImage } from './decode.js';
import type { LowResMask } from './infer.js';
import { morphAlpha } from './morph.js';
import { inBands } from './slice.js';
import { REFINE_PRESETS, refineMask, type RefineMode } from './refine.js';
import { upsampleBilinearSliced } from './upsample.js';

export type MatteOptions = Pick<RemovalJob, 'invertMask' | 'grow' | 'semitransparency'> & { refine?: RemovalJob['refine'] };

/** Server-wide refinement setting: a mode, or `auto` (chosen per output size, see `autoRefine`). */
export type RefineSetting = RefineMode | 'auto';

/**
 * `auto`: measured on grabcut/coco_mval (bench/RESULTS.md, "## Quality"): refinement gives the gains at every size;
 * the `fast` preset (working size 768 px) keeps the added time small at 12 MP, and for uploads up to 768 px on the
 * long side `fast` and `full` are the same computation.
 */
export function autoRefine(width: number, height: number): RefineMode {
  return width * height <= 4_000_000 ? 'full' : 'fast';
}

export function resolveRefine(job: RefineSetting | undefined, server: RefineSetting | undefined, width: number, height: number): RefineMode {
  const setting = job ?? server ?? 'auto';
  return setting === 'auto' ? autoRefine(width, height) : setting;
}

/**
 * Bilinear upsampling keeps the model's soft alpha without the ringing lanczos adds at 10–40× scale; the guided
 * refinement (refine.ts) additionally snaps the soft band onto the photo's edges. Invert runs on the small mask
 * (it commutes with both), the threshold on the result, then grow/shrink.
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
      : await refineMask(small, mask.size, image, REFINE_PRESETS[mode]);
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
