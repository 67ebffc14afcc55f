// src/queue.ts
// Bounds the whole removal pipeline: a fixed number of jobs run, a bounded line waits, the rest are refused at once.
// Each running job holds a full-resolution image in memory, so this is also the memory bound.
// Jobs wait in lanes (one per model) served in turn, so a burst for a slow model does not hold back the others.
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
  /**
   * Start-time fair queueing with unit cost: each job is tagged max(now, its lane's last tag + 1), where `now` is
   * the tag of the job that started last, and the lowest tag starts first (p-queue: highest priority, FIFO on ties).
   * A lane's k-th waiting job thus competes with every other lane's k-th, and a newly busy lane starts at `now`
   * instead of behind the whole line.
   */
  private virtualNow = 0;
  private readonly laneTags = new Map<string, number>();

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
  async run<T>(task: (signal?: AbortSignal) => Promise<T>, signal?: AbortSignal, lane = ''): Promise<T> {
    if (this.closed) throw new GatewayError('shutting_down', { retryAfter: this.options.retryAfterSeconds });
    if (signal?.aborted) throw signal.reason ?? new DOMException('aborted', 'AbortError');
    if (this.queue.pending >= this.options.concurrency && this.queue.size >= this.options.maxWaiting) {
      throw new GatewayError('overloaded', {
        retryAfter: this.options.retryAfterSeconds,
        details: { running: this.queue.pending, waiting: this.queue.size },
      });
    }
    // An idle queue owes no lane anything: turns taken before it emptied do not count against the next burst.
    if (this.queue.pending === 0 && this.queue.size === 0) this.laneTags.clear();
    const tag = Math.max(this.virtualNow, (this.laneTags.get(lane) ?? -Infinity) + 1);
    this.laneTags.set(lane, tag);
    this.forgetIdleLanes();
    return this.queue.add(
      () => {
        this.virtualNow = Math.max(this.virtualNow, tag);
        signal?.throwIfAborted();
        return task(signal);
      },
      { priority: -tag, ...(signal ? { signal } : {}) },
    ) as Promise<T>;
  }

  /** Lanes whose last tag is behind `now` would start at `now` anyway; dropping them keeps the map to busy lanes. */
  private forgetIdleLanes(): void {
    if (this.laneTags.size < 64) return;
    for (const [lane, last] of this.laneTags) if (last < this.virtualNow) this.laneTags.delete(lane);
  }

  /** Stops admitting and resolves when every admitted job has finished. */
  async drain(): Promise<void> {
    this.closed = true;
    await this.queue.onIdle();
  }
}
