// src/models/manifest.ts
// The model manifest (models/manifest.json): where each model's weights come from and how to feed it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { PROJECT_ROOT } from '../config.js';

const normalisation = z.object({
  /** Each pixel value is first divided by this: a number, or "max" for the largest value in the resized image (rembg's U²-Net recipe). */
  divisor: z.union([z.number().positive(), z.literal('max')]),
  mean: z.tuple([z.number(), z.number(), z.number()]),
  std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]),
});

const modelSpec = z
  .object({
    package: z.string(),
    version: z.string(),
    /** Path inside the package tarball, relative to its `package/` folder. */
    file: z.string().optional(),
    /** Ordered chunk paths that concatenate into the model file. */
    chunks: z.array(z.string()).optional(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    bytes: z.number().int().positive(),
    inputSize: z.number().int().positive(),
    input: z.string(),
    outputIndex: z.number().int().min(0),
    normalise: normalisation,
    /** sharp kernel used to bring the image to the model's input size. */
    resize: z.enum(['nearest', 'linear', 'cubic', 'lanczos3']),
    /** How the raw output becomes 0..1 alpha: min-max stretch (U²-Net) or clamp (IS-Net). */
    output: z.enum(['minmax', 'clamp']),
    licence: z.string(),
    optIn: z.boolean(),
    note: z.string(),
  })
  .refine((m) => Boolean(m.file) !== Boolean(m.chunks), 'exactly one of file or chunks');

export type ModelSpec = z.infer<typeof modelSpec> & { name: string };

const manifestSchema = z.object({ models: z.record(z.string(), modelSpec) });

export const MANIFEST_PATH = path.join(PROJECT_ROOT, 'models', 'manifest.json');

let cached: Map<string, ModelSpec> | undefined;

export function loadManifest(): Map<string, ModelSpec> {
  if (cached) return cached;
  const raw = manifestSchema.parse(JSON.parse(readFileSync(MANIFEST_PATH, 'utf8')));
  cached = new Map(Object.entries(raw.models).map(([name, spec]) => [name, { ...spec, name }]));
  return cached;
}

export function modelNames(): string[] {
  return [...loadManifest().keys()];
}

export function getModelSpec(name: string): ModelSpec | undefined {
  return loadManifest().get(name);
}

export function modelPath(modelsDir: string, name: string): string {
  return path.join(modelsDir, `${name}.onnx`);
}
