// test/helpers/engine.ts
// The real default model in-process, for pipeline tests that need no HTTP.
import { loadConfig } from '../../src/config.js';
import { Engine } from '../../src/engine/engine.js';
import type { PipelineDeps } from '../../src/pipeline/run-job.js';

export async function startPipeline(overrides: Partial<PipelineDeps> = {}): Promise<{ deps: PipelineDeps; engine: Engine }> {
  const config = loadConfig({ INFERENCE_THREADS: '2', ...(process.env.MODELS_DIR ? { MODELS_DIR: process.env.MODELS_DIR } : {}) });
  const engine = await Engine.start({
    modelsDir: config.MODELS_DIR,
    defaultModel: config.MODEL,
    extraModels: [],
    provider: 'cpu',
    workers: 1,
    threads: config.INFERENCE_THREADS,
    memArena: config.INFERENCE_MEM_ARENA,
  });
  return {
    engine,
    deps: {
      engine,
      limits: { maxInputPixels: config.MAX_INPUT_PIXELS, maxOutputPixels: config.MAX_OUTPUT_PIXELS },
      encode: { pngCompressionLevel: config.PNG_COMPRESSION_LEVEL, pngAdaptiveFiltering: config.PNG_ADAPTIVE_FILTERING },
      ...overrides,
    },
  };
}
