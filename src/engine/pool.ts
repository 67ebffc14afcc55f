// src/engine/pool.ts
// A fixed set of warm worker threads for one model; tasks wait in FIFO order for a free worker.
import { Worker } from 'node:worker_threads';
import { GatewayError, isAbortError } from '../errors.js';
import type { ModelSpec } from '../models/manifest.js';
import type { Provider, ProviderChoice, WorkerInit, WorkerMessage } from './protocol.js';

// Under tsx/vitest this module is .ts and so is the worker; the built server runs .js files.
// Worker threads do not inherit `--import tsx`, so under tsx a tiny eval'd loader registers it first.
const runningTs = import.meta.url.endsWith('.ts');
const workerUrl = new URL(runningTs ? './worker.ts' : './worker.js', import.meta.url);

function startWorker(workerData: WorkerInit): Worker {
  if (!runningTs) return new Worker(workerUrl, { workerData });
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const loader = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(workerUrl.href)}); })`;
  return new Worker(loader, { eval: true, workerData });
}

export interface MaskResult {
  /** inputSize × inputSize alpha, 0..255. */
  mask: Uint8Array;
  size: number;
  inferMs: number;
  prepMs: number;
  /** How many images shared the run. */
  batch: number;
}

interface Task {
  rgb: Uint8Array;
  queuedAt: number;
  signal: AbortSignal | undefined;
  resolve: (r: MaskResult) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  /** The tasks of the batch this worker is running (one unless micro-batching). */
  busy: Task[] | undefined;
  taskId: number;
  maxBatch: number;
}

export interface PoolOptions {
  modelFile: string;
  spec: ModelSpec;
  provider: ProviderChoice;
  workers: number;
  threads: number;
  memArena?: boolean;
  nice?: number;
  /** Micro-batch size: a number, or 'auto' (batches of up to 8 on CUDA, none on CPU). */
  batch?: number | 'auto';
  /** How long the oldest waiting image may wait for others to fill a batch. */
  batchWaitMs?: number;
  onInference?: (model: string, provider: Provider, ms: number, batch: number) => void;
}

export class ModelPool {
  readonly spec: ModelSpec;
  provider: Provider = 'cpu';
  fallbackReason: string | undefined;
  /** Why batching was requested but is off (the graph does not allow it). */
  batchNote: string | undefined;
  loadMs = 0;
  /** Inference runs completed; tests use it to prove a cache hit ran no model. */
  runs = 0;
  private readonly slots: Slot[] = [];
  private readonly waiting: Task[] = [];
  private closed = false;
  private batchTimer: NodeJS.Timeout | undefined;

  private constructor(private readonly options: PoolOptions) {
    this.spec = options.spec;
  }

  static async start(options: PoolOptions): Promise<ModelPool> {
    const pool = new ModelPool(options);
    await Promise.all(Array.from({ length: options.workers }, () => pool.spawn()));
    return pool;
  }

  get busy(): number {
    return this.slots.filter((s) => s.busy).length;
  }

  get pending(): number {
    return this.waiting.length;
  }

  /** The largest batch any worker runs (1 = no micro-batching). */
  get maxBatch(): number {
    return this.slots.reduce((m, s) => Math.max(m, s.maxBatch), 1);
  }

  /** Runs the model on RGB pixels already at inputSize²; the buffer is transferred, not copied. */
  infer(rgb: Uint8Array, signal?: AbortSignal): Promise<MaskResult> {
    if (this.closed) return Promise.reject(new GatewayError('shutting_down'));
    if (signal?.aborted) return Promise.reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
    return new Promise((resolve, reject) => {
      const task: Task = { rgb, queuedAt: performance.now(), signal, resolve, reject };
      this.waiting.push(task);
      signal?.addEventListener(
        'abort',
        () => {
          const at = this.waiting.indexOf(task);
          if (at >= 0) {
            this.waiting.splice(at, 1);
            reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
          }
        },
        { once: true },
      );
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.batchTimer);
    for (const task of this.waiting.splice(0)) task.reject(new GatewayError('shutting_down'));
    // Terminating a worker inside session.run() aborts the whole process (a native exception escapes
    // onnxruntime's N-API layer), so let running inferences finish first, within a bound.
    const deadline = Date.now() + 60_000;
    while (this.busy > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.busy) continue;
      if (this.waiting.length === 0) return;
      const room = slot.maxBatch;
      if (room > 1 && this.waiting.length < room) {
        // Wait a little for more images to share the run, but never longer than batchWaitMs for the oldest.
        const waited = performance.now() - this.waiting[0]!.queuedAt;
        const left = (this.options.batchWaitMs ?? 0) - waited;
        if (left > 0) {
          if (!this.batchTimer) {
            this.batchTimer = setTimeout(() => {
              this.batchTimer = undefined;
              this.dispatch();
            }, Math.ceil(left));
          }
          return;
        }
      }
      const tasks = this.waiting.splice(0, room);
      slot.busy = tasks;
      slot.taskId++;
      const batch = tasks.map((t) => t.rgb);
      slot.worker.postMessage({ type: 'run', id: slot.taskId, batch }, batch.map((b) => b.buffer as ArrayBuffer));
    }
  }

  private spawn(): Promise<void> {
    const init: WorkerInit = {
      modelFile: this.options.modelFile,
      spec: this.spec,
      provider: this.options.provider,
      threads: this.options.threads,
      memArena: this.options.memArena ?? true,
      nice: this.options.nice ?? 0,
      batch: this.options.batch ?? 'auto',
    };
    const worker = startWorker(init);
    const slot: Slot = { worker, busy: undefined, taskId: 0, maxBatch: 1 };
    return new Promise((resolve, reject) => {
      let ready = false;
      worker.on('message', (msg: WorkerMessage) => {
        if (msg.type === 'ready') {
          ready = true;
          this.provider = msg.provider;
          this.fallbackReason = msg.fallbackReason;
          this.batchNote = msg.batchNote;
          slot.maxBatch = msg.maxBatch;
          this.loadMs = Math.max(this.loadMs, msg.loadMs);
          this.slots.push(slot);
          resolve();
          this.dispatch();
        } else if (msg.type === 'init-failed') {
          reject(new Error(`model ${this.spec.name} failed to load: ${msg.message}`));
        } else if (msg.type === 'result') {
          const tasks = slot.busy;
          if (!tasks || msg.id !== slot.taskId) return;
          slot.busy = undefined;
          this.options.onInference?.(this.spec.name, this.provider, msg.inferMs, tasks.length);
          tasks.forEach((task, i) => {
            const item = msg.items[i];
            if (item && 'mask' in item) {
              this.runs++;
              task.resolve({ mask: item.mask, size: this.spec.inputSize, inferMs: msg.inferMs, prepMs: msg.prepMs, batch: tasks.length });
            } else {
              task.reject(new GatewayError('inference_failed', { cause: new Error(item?.error ?? 'no result') }));
            }
          });
          this.dispatch();
        }
      });
      worker.on('error', (err) => {
        if (!ready) return reject(err);
        this.replace(slot, err);
      });
      worker.on('exit', (code) => {
        if (!ready) reject(new Error(`inference worker exited with code ${code} while loading ${this.spec.name}`));
        else if (!this.closed) this.replace(slot, new Error(`inference worker exited with code ${code}`));
      });
    });
  }

  /** A crashed worker fails only its own task; a fresh one takes its place. */
  private replace(slot: Slot, err: unknown): void {
    const at = this.slots.indexOf(slot);
    if (at < 0) return;
    this.slots.splice(at, 1);
    for (const task of slot.busy ?? []) task.reject(isAbortError(err) ? err : new GatewayError('inference_failed', { cause: err }));
    slot.busy = undefined;
    if (!this.closed) this.spawn().catch(() => undefined);
  }
}
