// src/queue.ts
// Bounds the whole removal pipeline: a fixed number of jobs run, a bounded line waits, the rest are refused at once.
// Each running job holds a full-resolution image in memory, so this is also the memory bound.
import PQueue from 'p-queue';
import { GatewayError } from './errors.js';

export interface JobQueueOptions {
  concurrency: number;
  maxWaiting: number;
  retryAfterSeconds: number;
}

export class JobQueue {
  private readonly queue: PQueue;
  private closed = false;

  constructor(private readonly options: JobQueueOptions) {
    this.queue = new PQueue({ concurrency: options.concurrency });
  }

  get running(): number {
    return this.queue.pending;
  }

  get waiting(): number {
    return this.queue.size;
  }

  get concurrency(): number {
    return this.options.concurrency;
  }

  /**
   * Runs `task` when a slot frees. Refuses with `overloaded` (Retry-After) when the line is full, rather than
   * letting the client time out; a job whose signal aborts while it waits is dropped without running.
   */
  async run<T>(task: (signal?: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.closed) throw new GatewayError('shutting_down', { retryAfter: this.options.retryAfterSeconds });
    if (signal?.aborted) throw signal.reason ?? new DOMException('aborted', 'AbortError');
    if (this.queue.pending >= this.options.concurrency && this.queue.size >= this.options.maxWaiting) {
      throw new GatewayError('overloaded', {
        retryAfter: this.options.retryAfterSeconds,
        details: { running: this.queue.pending, waiting: this.queue.size },
      });
    }
    return this.queue.add(
      () => {
        signal?.throwIfAborted();
        return task(signal);
      },
      signal ? { signal } : {},
    ) as Promise<T>;
  }

  /** Stops admitting and resolves when every admitted job has finished. */
  async drain(): Promise<void> {
    this.closed = true;
    await this.queue.onIdle();
  }
}
