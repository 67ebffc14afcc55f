// src/pipeline/infer.ts
// The upload → the model's square input → low-resolution alpha mask from an inference worker.
import type { Engine } from '../engine/engine.js';
import { modelInput, type OpenedImage } from './decode.js';

export interface LowResMask {
  data: Uint8Array;
  size: number;
  inferMs: number;
}

/**
 * The model input is made from the upload itself, not from the full-size decode, so the two run side by side:
 * inference does not wait for a 12 MP decode, and the mask is the same whatever output size the job asks for.
 */
export async function inferMask(engine: Engine, model: string, image: OpenedImage, signal?: AbortSignal): Promise<LowResMask> {
  const spec = engine.spec(model);
  const rgb = await modelInput(image, spec.inputSize, spec.resize);
  signal?.throwIfAborted();
  // A fresh copy (300 KB–3 MB) so its ArrayBuffer can be transferred to the worker without detaching sharp's memory.
  const result = await engine.infer(model, new Uint8Array(rgb), signal);
  return { data: result.mask, size: result.size, inferMs: result.inferMs };
}
