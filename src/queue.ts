// src/queue.ts
// Bounds the whole removal pipeline: a fixed number of jobs run, a bounded line waits, the rest are refused at once.
// Each running job holds a full-resolution image in memory, so this is also the memory bound.
// Jobs wait in lanes (one per model) served in turn, so a burst for a slow model does not hold back the others.
import PQueue, { type Queue, type QueueAddOptions } from 'p-queue';
import { GatewayError } from './errors.js';

/** What p-queue keeps per waiting job (its Queue interface's element type). */
type RunFunction = () => Promise<unknown>;

interface Entry {
  priority: number;
  id?: string;
  run: RunFunction;
}

/**
 * p-queue's own PriorityQueue leaves dequeued entries in its array until 100 have piled up or the line empties, and
 * each entry's closure holds its finished job's result: under steady load (a line that never empties) that kept
 * every answer since — 25–37 MB each at 12 MP, ≈ 870 MB after 20 of 32 uploads (heap snapshot). This one lets go of
 * an entry the moment it starts. The line is bounded (QUEUE_MAX_WAITING), so linear inserts are cheap.
 */
export class ReleasingPriorityQueue implements Queue<RunFunction, QueueAddOptions> {
  private entries: Entry[] = [];

  get size(): number {
    return this.entries.length;
  }

  enqueue(run: RunFunction, options?: Partial<QueueAddOptions>): void {
    const entry: Entry = { priority: options?.priority ?? 0, run, ...(options?.id !== undefined ? { id: options.id } : {}) };
    // After every entry of higher or equal priority: FIFO among equals.
    let at = this.entries.length;
    while (at > 0 && this.entries[at - 1]!.priority < entry.priority) at--;
    this.entries.splice(at, 0, entry);
  }

  dequeue(): RunFunction | undefined {
    return this.entries.shift()?.run;
  }

  filter(options: Readonly<Partial<QueueAddOptions>>): RunFunction[] {
    return this.entries.filter((e) => e.priority === options.priority).map((e) => e.run);
  }

  /** p-queue removes an aborted waiting job by its id, so every job gets one (JobQueue.run). */
  remove(id: string): void {
    const at = this.entries.findIndex((e) => e.id === id);
    if (at >= 0) this.entries.splice(at, 1);
  }

  setPriority(id: string, priority: number): void {
    const at = this.entries.findIndex((e) => e.id === id);
    if (at < 0) throw new ReferenceError(`No job with id "${id}" is waiting.`);
    const [entry] = this.entries.splice(at, 1);
    this.enqueue(entry!.run, { priority, id });
  }
}

export interface JobQueueOptions {
  concurrency: number;
  maxWaiting: number;
  retryAfterSeconds: number;
}

export class JobQueue {
  private readonly queue: PQueue<ReleasingPriorityQueue>;
  private closed = false;
  /**
   * Start-time fair queueing with unit cost: each job is tagged max(now, its lane's last tag + 1), where `now` is
   * the tag of the job that started last, and the lowest tag starts first (p-queue: highest priority, FIFO on ties).
   * A lane's k-th waiting job thus competes with every other lane's k-th, and a newly busy lane starts at `now`
   * instead of behind the whole line.
   */
  private virtualNow = 0;
  private readonly laneTags = new Map<string, number>();
  private nextId = 0;

  constructor(private readonly options: JobQueueOptions) {
    this.queue = new PQueue({ concurrency: options.concurrency, queueClass: ReleasingPriorityQueue });
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
    return this.queue.add(
      () => {
        this.virtualNow = Math.max(this.virtualNow, tag);
        signal?.throwIfAborted();
        return task(signal);
      },
      { priority: -tag, id: String(++this.nextId), ...(signal ? { signal } : {}) },
    ) as Promise<T>;
  }

  /** Stops admitting and resolves when every admitted job has finished. */
  async drain(): Promise<void> {
    this.closed = true;
    await this.queue.onIdle();
  }
}
