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
}

/** RGB pixels already resized to the model's square input, interleaved (HWC, 3 bytes per pixel). */
export interface RunRequest {
  type: 'run';
  id: number;
  rgb: Uint8Array;
}

export type WorkerMessage =
  | { type: 'ready'; provider: Provider; loadMs: number; fallbackReason?: string }
  | { type: 'init-failed'; message: string }
  | { type: 'result'; id: number; mask: Uint8Array; inferMs: number; prepMs: number }
  | { type: 'run-failed'; id: number; message: string };
