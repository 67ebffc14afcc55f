// src/engine/engine.ts
// Loads every configured model once at start-up and keeps its sessions warm for the life of the process.
import { GatewayError } from '../errors.js';
import { modelState } from '../models/fetch.js';
import { getModelSpec, modelNames, modelPath, type ModelSpec } from '../models/manifest.js';
import { ModelPool, type MaskResult } from './pool.js';
import type { Provider, ProviderChoice } from './protocol.js';

export interface EngineOptions {
  modelsDir: string;
  defaultModel: string;
  extraModels: string[];
  provider: ProviderChoice;
  workers: number;
  threads: number;
  /** ORT's CPU memory arena (INFERENCE_MEM_ARENA, default on); off keeps RSS near the model's own size, 2× slower. */
  memArena?: boolean;
  /** Niceness of the inference threads (INFERENCE_NICE); 0 leaves them at the process's priority. */
  nice?: number;
  /** Micro-batch size per run: 'auto' = up to 8 on CUDA, none on CPU. */
  batch?: number | 'auto';
  batchWaitMs?: number;
  /** Hash every model file at start; size is always checked. */
  verifyHash?: boolean;
  onInference?: (model: string, provider: Provider, ms: number, batch: number) => void;
}

export class ModelSetupError extends Error {
  override name = 'ModelSetupError';
}

export interface EngineStatus {
  model: string;
  provider: Provider;
  fallbackReason?: string;
  workers: number;
  busy: number;
  pending: number;
  loadMs: number;
  maxBatch: number;
  batchNote?: string;
}

export class Engine {
  private constructor(
    readonly defaultModel: string,
    private readonly pools: Map<string, ModelPool>,
  ) {}

  static async start(options: EngineOptions): Promise<Engine> {
    const names = [...new Set([options.defaultModel, ...options.extraModels])];
    const specs: ModelSpec[] = [];
    for (const name of names) {
      const spec = getModelSpec(name);
      if (!spec) throw new ModelSetupError(`unknown model "${name}" (MODEL/MODELS); known: ${modelNames().join(', ')}`);
      const state = await modelState(options.modelsDir, spec, options.verifyHash ?? false);
      if (state !== 'installed') {
        throw new ModelSetupError(
          `model "${name}" is ${state} at ${modelPath(options.modelsDir, name)}; fetch it with: npm run models -- ${name}`,
        );
      }
      specs.push(spec);
    }
    const pools = new Map<string, ModelPool>();
    try {
      for (const spec of specs) {
        pools.set(
          spec.name,
          await ModelPool.start({
            modelFile: modelPath(options.modelsDir, spec.name),
            spec,
            provider: options.provider,
            workers: options.workers,
            threads: options.threads,
            memArena: options.memArena ?? true,
            nice: options.nice ?? 0,
            batch: options.batch ?? 'auto',
            batchWaitMs: options.batchWaitMs ?? 4,
            ...(options.onInference ? { onInference: options.onInference } : {}),
          }),
        );
      }
    } catch (err) {
      await Promise.all([...pools.values()].map((p) => p.close()));
      throw new ModelSetupError(`${err instanceof Error ? err.message : String(err)}; if the file is damaged, run: npm run models -- ${specs.map((s) => s.name).join(' ')}`);
    }
    return new Engine(options.defaultModel, pools);
  }

  models(): string[] {
    return [...this.pools.keys()];
  }

  spec(model = this.defaultModel): ModelSpec {
    return this.pool(model).spec;
  }

  /** Total completed inference runs across models. */
  get runs(): number {
    let n = 0;
    for (const p of this.pools.values()) n += p.runs;
    return n;
  }

  get provider(): Provider {
    return this.pool(this.defaultModel).provider;
  }

  infer(model: string, rgb: Uint8Array, signal?: AbortSignal): Promise<MaskResult> {
    return this.pool(model).infer(rgb, signal);
  }

  status(): EngineStatus[] {
    return [...this.pools.values()].map((p) => ({
      model: p.spec.name,
      provider: p.provider,
      ...(p.fallbackReason ? { fallbackReason: p.fallbackReason } : {}),
      workers: p['slots'].length,
      busy: p.busy,
      pending: p.pending,
      loadMs: Math.round(p.loadMs),
      maxBatch: p.maxBatch,
      ...(p.batchNote ? { batchNote: p.batchNote } : {}),
    }));
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
  }

  private pool(model: string): ModelPool {
    const pool = this.pools.get(model);
    if (!pool) {
      throw new GatewayError('invalid_parameter', {
        message: `Invalid value for model: expected one of ${this.models().join(', ')}.`,
        details: { field: 'model', allowed: this.models() },
      });
    }
    return pool;
  }
}
