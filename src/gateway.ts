// src/gateway.ts
// Everything a request handler needs, built once at start-up and passed down explicitly (no globals).
import type { Config } from './config.js';
import type { Engine } from './engine/engine.js';
import { GatewayError } from './errors.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { PipelineDeps } from './pipeline/run-job.js';
import type { Plan } from './plans.js';
import type { JobQueue } from './queue.js';
import type { Stores } from './store/types.js';

export interface Gateway {
  config: Config;
  engine: Engine;
  queue: JobQueue;
  stores: Stores;
  plans: Record<string, Plan>;
  pipeline: PipelineDeps;
  log: Logger;
  metrics: Metrics;
  startedAt: number;
  state: { shuttingDown: boolean };
}

/** Store failures become a fast 503 `store_unavailable`, never a hang or a 500. */
export async function guardStore<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GatewayError('store_unavailable', { retryAfter: 1, message: 'State store did not answer in time. Retry shortly.' })), timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    throw new GatewayError('store_unavailable', { retryAfter: 1, cause: err });
  } finally {
    clearTimeout(timer);
  }
}
