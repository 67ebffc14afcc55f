// src/pipeline/matte.ts
// Low-resolution mask → full-resolution alpha: upsample, then the mask edits dialects ask for.
import type { RemovalJob } from '../job.js';
import type { DecodedImage } from './decode.js';
import type { LowResMask } from './infer.js';
import { morphAlpha } from './morph.js';
import { upsampleBilinear } from './upsample.js';

export type MatteOptions = Pick<RemovalJob, 'invertMask' | 'grow' | 'semitransparency'>;

/**
 * Bilinear upsampling keeps the model's soft alpha without the ringing lanczos adds at 10–40× scale;
 * invert runs on the small mask (it commutes with interpolation), the threshold on the result.
 */
export async function upsampleMask(mask: LowResMask, image: DecodedImage, options: MatteOptions): Promise<Buffer> {
  let small = mask.data;
  if (options.invertMask) {
    small = new Uint8Array(mask.data.length);
    for (let i = 0; i < small.length; i++) small[i] = 255 - mask.data[i]!;
  }
  let alpha = upsampleBilinear(small, mask.size, mask.size, image.width, image.height);
  if (!options.semitransparency) for (let i = 0; i < alpha.length; i++) alpha[i] = alpha[i]! >= 128 ? 255 : 0;
  if (options.grow !== 0) {
    const grown = morphAlpha(alpha, image.width, image.height, Math.abs(options.grow), options.grow > 0 ? 'dilate' : 'erode');
    alpha = Buffer.from(grown.buffer, grown.byteOffset, grown.byteLength);
  }
  if (image.channels === 4) multiplyInputAlpha(alpha, image.data);
  return alpha;
}

/** A pixel transparent in the upload stays transparent in the cut-out. */
function multiplyInputAlpha(alpha: Buffer, rgba: Buffer): void {
  for (let i = 0, j = 3; i < alpha.length; i++, j += 4) {
    alpha[i] = (alpha[i]! * rgba[j]! + 127) / 255;
  }
}
