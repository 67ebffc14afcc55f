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
}

interface Task {
  rgb: Uint8Array;
  signal: AbortSignal | undefined;
  resolve: (r: MaskResult) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  busy: Task | undefined;
  taskId: number;
}

export interface PoolOptions {
  modelFile: string;
  spec: ModelSpec;
  provider: ProviderChoice;
  workers: number;
  threads: number;
  onInference?: (model: string, provider: Provider, ms: number) => void;
}

export class ModelPool {
  readonly spec: ModelSpec;
  provider: Provider = 'cpu';
  fallbackReason: string | undefined;
  loadMs = 0;
  /** Inference runs completed; tests use it to prove a cache hit ran no model. */
  runs = 0;
  private readonly slots: Slot[] = [];
  private readonly waiting: Task[] = [];
  private closed = false;

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

  /** Runs the model on RGB pixels already at inputSize²; the buffer is transferred, not copied. */
  infer(rgb: Uint8Array, signal?: AbortSignal): Promise<MaskResult> {
    if (this.closed) return Promise.reject(new GatewayError('shutting_down'));
    if (signal?.aborted) return Promise.reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
    return new Promise((resolve, reject) => {
      const task: Task = { rgb, signal, resolve, reject };
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
      const task = this.waiting.shift();
      if (!task) return;
      slot.busy = task;
      slot.taskId++;
      slot.worker.postMessage({ type: 'run', id: slot.taskId, rgb: task.rgb }, [task.rgb.buffer as ArrayBuffer]);
    }
  }

  private spawn(): Promise<void> {
    const init: WorkerInit = {
      modelFile: this.options.modelFile,
      spec: this.spec,
      provider: this.options.provider,
      threads: this.options.threads,
    };
    const worker = startWorker(init);
    const slot: Slot = { worker, busy: undefined, taskId: 0 };
    return new Promise((resolve, reject) => {
      let ready = false;
      worker.on('message', (msg: WorkerMessage) => {
        if (msg.type === 'ready') {
          ready = true;
          this.provider = msg.provider;
          this.fallbackReason = msg.fallbackReason;
          this.loadMs = Math.max(this.loadMs, msg.loadMs);
          this.slots.push(slot);
          resolve();
          this.dispatch();
        } else if (msg.type === 'init-failed') {
          reject(new Error(`model ${this.spec.name} failed to load: ${msg.message}`));
        } else if (msg.type === 'result' || msg.type === 'run-failed') {
          const task = slot.busy;
          if (!task || msg.id !== slot.taskId) return;
          slot.busy = undefined;
          if (msg.type === 'result') {
            this.runs++;
            this.options.onInference?.(this.spec.name, this.provider, msg.inferMs);
            task.resolve({ mask: msg.mask, size: this.spec.inputSize, inferMs: msg.inferMs, prepMs: msg.prepMs });
          } else {
            task.reject(new GatewayError('inference_failed', { cause: new Error(msg.message) }));
          }
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
    slot.busy?.reject(isAbortError(err) ? err : new GatewayError('inference_failed', { cause: err }));
    slot.busy = undefined;
    if (!this.closed) this.spawn().catch(() => undefined);
  }
}
