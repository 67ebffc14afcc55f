// src/pipeline/infer.ts
// Decoded pixels → the model's square input → low-resolution alpha mask from an inference worker.
import sharp from 'sharp';
import type { Engine } from '../engine/engine.js';
import type { DecodedImage } from './decode.js';

export interface LowResMask {
  data: Uint8Array;
  size: number;
  inferMs: number;
}

export async function inferMask(engine: Engine, model: string, image: DecodedImage, signal?: AbortSignal): Promise<LowResMask> {
  const spec = engine.spec(model);
  let input = sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels } }).resize(
    spec.inputSize,
    spec.inputSize,
    { fit: 'fill', kernel: spec.resize },
  );
  // Transparent areas of the input carry arbitrary colour; the model should see them as plain white.
  if (image.channels === 4) input = input.flatten({ background: '#ffffff' });
  const rgb = await input.removeAlpha().raw().toBuffer();
  signal?.throwIfAborted();
  // A fresh copy (300 KB) so its ArrayBuffer can be transferred to the worker without detaching sharp's memory.
  const result = await engine.infer(model, new Uint8Array(rgb), signal);
  return { data: result.mask, size: result.size, inferMs: result.inferMs };
}
