// src/engine/protocol.ts
// Messages between the inference pool (main thread) and its workers.
import type { ModelSpec } from '../models/manifest.js';

export type ProviderChoice = 'auto' | 'cpu' | 'cuda';
export type Provider = 'cpu' | 'cuda';

export interface WorkerInit {
  modelFile: string;
  spec: ModelSpec;
  provider: ProviderChoice;
  /** ORT intra-op threads; 0 lets ORT choose. */
  threads: number;
  /** ORT's CPU memory arena: faster first allocations, but it keeps the peak of every run's buffers for good. */
  memArena: boolean;
  /** Niceness for this worker and the ORT threads it creates (Linux: per thread); 0 = unchanged. */
  nice: number;
  /** Largest micro-batch; 'auto' batches only on CUDA (8), never on CPU where it buys nothing. */
  batch: number | 'auto';
}

/** RGB pixels already resized to the model's square input, interleaved (HWC, 3 bytes per pixel), one per image. */
export interface RunRequest {
  type: 'run';
  id: number;
  batch: Uint8Array[];
}

/** One entry per image of the batch, in order: a failure belongs to its own image only. */
export type ItemResult = { mask: Uint8Array } | { error: string };

export type WorkerMessage =
  | { type: 'ready'; provider: Provider; loadMs: number; fallbackReason?: string; maxBatch: number; batchNote?: string }
  | { type: 'init-failed'; message: string }
  | { type: 'result'; id: number; items: ItemResult[]; inferMs: number; prepMs: number };
