// test/batch.test.ts
// Micro-batching (meant for GPUs) checked on CPU for correctness: a batched run gives the same masks as batch 1,
// in order, and a failure affects only its own image. Also the ONNX rewrite that makes the batch dimension dynamic.
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { withDynamicBatch } from '../src/engine/onnx-batch.js';
import { modelPath } from '../src/models/manifest.js';
import { subjectFixture } from './helpers/fixtures.js';

const config = loadConfig({ ...(process.env.MODELS_DIR ? { MODELS_DIR: process.env.MODELS_DIR } : {}) });
const start = (batch: number | 'auto', batchWaitMs = 50) =>
  Engine.start({ modelsDir: config.MODELS_DIR, defaultModel: config.MODEL, extraModels: [], provider: 'cpu', workers: 1, threads: 2, batch, batchWaitMs });

let single: Engine;
let batched: Engine;
let inputs: Uint8Array[];

beforeAll(async () => {
  [single, batched] = await Promise.all([start(1), start(4)]);
  const size = single.spec().inputSize;
  // Four different pictures: the subject at different sizes and backgrounds, resized to the model input.
  inputs = await Promise.all(
    [
      { width: 320, height: 240 },
      { width: 240, height: 320, background: 'textured' as const },
      { width: 400, height: 300 },
      { width: 300, height: 300, background: 'textured' as const },
    ].map(async (o) => new Uint8Array(await sharp((await subjectFixture(o)).bytes).resize(size, size, { fit: 'fill' }).removeAlpha().raw().toBuffer())),
  );
}, 180_000);
afterAll(async () => {
  await Promise.all([single?.close(), batched?.close()]);
});

const maxDiff = (a: Uint8Array, b: Uint8Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('micro-batching', () => {
  it('is off on CPU by default and on when asked, as health reports it', async () => {
    expect(single.status()[0]!.maxBatch).toBe(1);
    expect(batched.status()[0]!.maxBatch).toBe(4);
    const auto = await start('auto');
    try {
      expect(auto.status()[0]!.maxBatch).toBe(1);
    } finally {
      await auto.close();
    }
  }, 120_000);

  it('gives the same masks as batch 1, in order, for images that arrive together', async () => {
    const expected: Uint8Array[] = [];
    for (const rgb of inputs) expected.push((await single.infer(config.MODEL, rgb.slice())).mask);
    const results = await Promise.all(inputs.map((rgb) => batched.infer(config.MODEL, rgb.slice())));
    expect(results.map((r) => r.batch)).toEqual([4, 4, 4, 4]);
    results.forEach((r, i) => expect(maxDiff(r.mask, expected[i]!)).toBeLessThanOrEqual(1));
    // The masks really differ between images, so order is actually tested.
    expect(maxDiff(expected[0]!, expected[1]!)).toBeGreaterThan(100);
  }, 120_000);

  it('a bad image fails alone; its batch neighbours succeed', async () => {
    const bad = new Uint8Array(10);
    const settled = await Promise.allSettled([inputs[0]!.slice(), bad, inputs[2]!.slice()].map((rgb) => batched.infer(config.MODEL, rgb)));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((settled[1] as PromiseRejectedResult).reason.code).toBe('inference_failed');
  }, 120_000);

  it('a lone image waits at most the batch window, then runs on its own', async () => {
    const t = performance.now();
    const r = await batched.infer(config.MODEL, inputs[0]!.slice());
    expect(r.batch).toBe(1);
    expect(performance.now() - t).toBeLessThan(30_000);
  }, 60_000);
});

describe('dynamic batch dimension', () => {
  it('rewrites only the first dimension of inputs and outputs; weights untouched', async () => {
    const original = await readFile(modelPath(config.MODELS_DIR, config.MODEL));
    const dynamic = withDynamicBatch(original);
    const session = await ort.InferenceSession.create(dynamic);
    try {
      // Size changes only by the few bytes of the rewritten dimensions.
      expect(Math.abs(dynamic.length - original.length)).toBeLessThan(1000);
      const size = single.spec().inputSize;
      const x = new Float32Array(3 * 3 * size * size);
      const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', x, [3, 3, size, size]) }, [session.outputNames[0]!]);
      expect(out[session.outputNames[0]!]!.dims).toEqual([3, 1, size, size]);
    } finally {
      await session.release();
    }
  }, 120_000);
});
