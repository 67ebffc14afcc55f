// src/jobs/runner.ts
// Asynchronous removals shared by every polling dialect: submit → queued → processing → completed | failed.
// State lives in the results store (memory or Redis, with TTL) so any replica can answer status and download.
// The replica running a job renews a lease on it; a job whose lease lapses (its replica died) reads as failed.
import { randomUUID } from 'node:crypto';
import { deadline } from '../deadline.js';
import { GatewayError, toGatewayError } from '../errors.js';
import type { Gateway } from '../gateway.js';
import { guardStore } from '../gateway.js';
import { reserveCredits } from '../http/limits.js';
import { creditsFor, type RemovalJob, type RemovalResult } from '../job.js';
import { runJob } from '../pipeline/run-job.js';
import type { ApiKeyRecord, StoredResult } from '../store/types.js';

export type JobState = 'queued' | 'processing' | 'completed' | 'failed';

export interface JobRecord {
  id: string;
  state: JobState;
  owner: string;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  /** Epoch ms; while queued or processing, the running replica keeps pushing it forward. */
  leaseUntil?: number;
  result?: { contentType: string; bytes: Uint8Array; width: number; height: number; inferMs: number; totalMs: number; credits: number };
  error?: { code: string; message: string; status: number };
  /** Dialect-specific facts (options to echo back, mask format …). */
  extra: Record<string, unknown>;
}

/** What delete() leaves behind: find() ignores it (no `state`), and a running job will not write over it. */
const TOMBSTONE = { deletedJob: true } as const;
const isTombstone = (s: StoredResult | undefined) => s !== undefined && s.meta?.deletedJob === true;

function toStored(r: JobRecord): StoredResult {
  const status = r.state === 'queued' ? 'pending' : r.state === 'completed' ? 'done' : r.state;
  const { result, ...rest } = r;
  return {
    status,
    owner: r.owner,
    ...(result ? { bytes: result.bytes, contentType: result.contentType } : {}),
    meta: { ...rest, ...(result ? { result: { ...result, bytes: undefined } } : {}) },
  };
}

function fromStored(id: string, s: StoredResult): JobRecord {
  const meta = s.meta as Omit<JobRecord, 'result'> & { result?: Omit<NonNullable<JobRecord['result']>, 'bytes'> };
  return {
    ...meta,
    id,
    ...(meta.result && s.bytes ? { result: { ...meta.result, bytes: s.bytes } } : { result: undefined }),
  } as JobRecord;
}

type LiveJob = { deleted: boolean; abort: AbortController };
/** Jobs each gateway (replica) is running, so a delete can stop them at once, whichever runner instance it reaches. */
const RUNNING = new WeakMap<Gateway, Map<string, LiveJob>>();

export class JobRunner {
  private readonly running: Map<string, LiveJob>;

  constructor(private readonly gw: Gateway) {
    let running = RUNNING.get(gw);
    if (!running) RUNNING.set(gw, (running = new Map()));
    this.running = running;
  }

  private get ttl(): number {
    return this.gw.config.RESULTS_TTL_SECONDS;
  }

  /** JOB_LEASE_SECONDS: renewed every third of it, so two missed renewals (a slow store) do not fail a live job. */
  private get leaseMs(): number {
    return this.gw.config.JOB_LEASE_SECONDS * 1000;
  }

  /**
   * A finished job lives RESULTS_TTL_SECONDS. An unfinished one must outlive its lease renewals (every third of the
   * lease) whatever that TTL is, or a short TTL would let a live job vanish (404) between two renewals; and after
   * its replica dies it must still be there when the lease lapses, to be reported failed rather than unknown.
   */
  private ttlFor(r: JobRecord): number {
    const unfinished = r.state === 'queued' || r.state === 'processing';
    return unfinished ? Math.max(this.ttl, 2 * this.gw.config.JOB_LEASE_SECONDS) : this.ttl;
  }

  private save(r: JobRecord): Promise<void> {
    return guardStore(this.gw.stores.results.put(r.id, toStored(r), this.ttlFor(r)), this.gw.config.STORE_TIMEOUT_MS);
  }

  /** A save from the running job, unless the job was deleted meanwhile (here or on another replica). */
  private async saveLive(r: JobRecord): Promise<void> {
    const live = this.running.get(r.id);
    if (live?.deleted) return;
    const current = await guardStore(this.gw.stores.results.get(r.id), this.gw.config.STORE_TIMEOUT_MS).catch(() => undefined);
    if (isTombstone(current)) {
      live?.abort.abort(new GatewayError('not_found', { message: 'The job was deleted.' }));
      if (live) live.deleted = true;
      return;
    }
    return this.save(r);
  }

  /**
   * Accepts a job or refuses it at once (credits, a full queue, a store that does not answer): an accepted job
   * is never silently dropped; it ends completed or failed with the error kept.
   */
  submit(key: ApiKeyRecord, job: RemovalJob, extra: Record<string, unknown> = {}): Promise<JobRecord> {
    return this.submitTask(key, creditsFor(job), (signal) => runJob(job, this.gw.pipeline, signal), extra, job.model ?? this.gw.engine.defaultModel);
  }

  /** The same lifecycle for any work that ends in a removal result (dialects that render more than one file). */
  async submitTask(key: ApiKeyRecord, credits: number, task: (signal: AbortSignal | undefined, record: JobRecord) => Promise<RemovalResult>, extra: Record<string, unknown> = {}, lane = this.gw.engine.defaultModel): Promise<JobRecord> {
    const gw = this.gw;
    if (gw.state.shuttingDown) throw new GatewayError('shutting_down', { retryAfter: gw.config.QUEUE_RETRY_AFTER_SECONDS });
    if (gw.queue.running >= gw.queue.concurrency && gw.queue.waiting >= gw.config.QUEUE_MAX_WAITING) {
      throw new GatewayError('overloaded', { retryAfter: gw.config.QUEUE_RETRY_AFTER_SECONDS });
    }
    const hold = await reserveCredits(gw, key, credits);
    const record: JobRecord = { id: randomUUID(), state: 'queued', owner: key.fingerprint, createdAt: Date.now(), leaseUntil: Date.now() + this.leaseMs, extra };
    try {
      await this.save(record);
    } catch (err) {
      await hold.release();
      throw err;
    }
    const live = { deleted: false, abort: new AbortController() };
    this.running.set(record.id, live);
    const lease = setInterval(() => {
      record.leaseUntil = Date.now() + this.leaseMs;
      this.saveLive(record).catch(() => undefined);
    }, this.leaseMs / 3);
    lease.unref();
    const started = performance.now();
    const limit = deadline(gw.config.REQUEST_TIMEOUT_MS);
    gw.queue
      .run(async (signal) => {
        record.state = 'processing';
        record.startedAt = Date.now();
        await this.saveLive(record).catch(() => undefined);
        return task(signal, record);
      }, AbortSignal.any([limit.signal, live.abort.signal]), lane)
      .then(
        async (result: RemovalResult) => {
          record.state = 'completed';
          record.result = {
            contentType: result.contentType,
            bytes: result.bytes,
            width: result.width,
            height: result.height,
            inferMs: result.timings.infer ?? 0,
            totalMs: performance.now() - started,
            credits: hold.credits,
          };
          if (key.mode !== 'synthetic') {
            await gw.stores.usage.record(key.fingerprint, hold.period, { images: 1, bytesIn: 0, bytesOut: result.bytes.byteLength }).catch(() => undefined);
          }
          gw.metrics.recordRemoval({ model: result.model, provider: gw.engine.provider, maskCached: result.maskCached, timings: result.timings, bytesIn: 0, bytesOut: result.bytes.byteLength });
        },
        async (err: unknown) => {
          await hold.release();
          const e = toGatewayError(err);
          record.state = 'failed';
          record.error = { code: e.code, message: e.message, status: e.status };
          if (!live.deleted) gw.metrics.errors.inc({ code: e.code, dialect: String(extra.dialect ?? 'jobs') });
        },
      )
      .then(async () => {
        limit.clear();
        clearInterval(lease);
        record.finishedAt = Date.now();
        delete record.leaseUntil;
        // The outcome must land: retry a store that blips, within the lease window.
        for (let attempt = 0; attempt < 5; attempt++) {
          try {
            return await this.saveLive(record);
          } catch {
            await new Promise((r) => setTimeout(r, 500 * (attempt + 1)));
          }
        }
        gw.log.error({ jobId: record.id }, 'could not store the outcome of an async job');
      })
      .finally(() => this.running.delete(record.id));
    return { ...record };
  }

  /** The job as its owner sees it; unknown, expired or someone else's → undefined (callers answer 404). */
  async get(id: string, owner: string): Promise<JobRecord | undefined> {
    const record = await this.find(id);
    return record && record.owner === owner ? record : undefined;
  }

  /** The job whoever asks: for dialects whose job ids are the capability (EventSource and <img> cannot send keys). */
  async find(id: string): Promise<JobRecord | undefined> {
    const stored = await guardStore(this.gw.stores.results.get(id), this.gw.config.STORE_TIMEOUT_MS);
    if (!stored || stored.meta === undefined || !('state' in (stored.meta as object))) return undefined;
    const record = fromStored(id, stored);
    if ((record.state === 'queued' || record.state === 'processing') && record.leaseUntil !== undefined && record.leaseUntil < Date.now()) {
      record.state = 'failed';
      record.error = { code: 'internal_error', message: 'The job was lost with the server that ran it. Submit it again.', status: 500 };
      delete record.leaseUntil;
      await this.save(record).catch(() => undefined);
    }
    return record;
  }

  /**
   * Deletes the job and its result. A job still queued or running is stopped (credits refunded) and leaves a
   * tombstone for its TTL, so the replica running it does not write it back when it finishes.
   */
  async delete(id: string, owner: string): Promise<boolean> {
    const record = await this.get(id, owner);
    if (!record) return false;
    const live = this.running.get(id);
    if (live) {
      live.deleted = true;
      live.abort.abort(new GatewayError('not_found', { message: 'The job was deleted.' }));
    }
    const unfinished = record.state === 'queued' || record.state === 'processing';
    const results = this.gw.stores.results;
    // The tombstone outlives a lease renewal, so the replica running the job sees it (and stops) whatever the TTL.
    const tombstoneTtl = Math.max(this.ttl, 2 * this.gw.config.JOB_LEASE_SECONDS);
    await guardStore(unfinished ? results.put(id, { status: 'failed', owner, meta: { ...TOMBSTONE } }, tombstoneTtl) : results.delete(id), this.gw.config.STORE_TIMEOUT_MS);
    return true;
  }
}

/** For tests and the lease rule: a record as a dead replica would leave it. */
export async function writeJobRecord(gw: Gateway, record: JobRecord): Promise<void> {
  await gw.stores.results.put(record.id, toStored(record), gw.config.RESULTS_TTL_SECONDS);
}
