// src/metrics.ts
// Prometheus metrics (prom-client), one registry per gateway so several gateways in one process (tests) never collide.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface MetricsSources {
  queue: { running: number; waiting: number; concurrency: number };
  storeUp: () => Promise<boolean>;
}

export class Metrics {
  readonly registry = new Registry();

  readonly requests = new Counter({
    name: 'bgw_http_requests_total',
    help: 'HTTP requests by route, dialect and status.',
    labelNames: ['route', 'dialect', 'status'] as const,
    registers: [this.registry],
  });

  readonly requestSeconds = new Histogram({
    name: 'bgw_http_request_duration_seconds',
    help: 'Time from request start to response headers, by route and dialect.',
    labelNames: ['route', 'dialect'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64],
    registers: [this.registry],
  });

  readonly errors = new Counter({
    name: 'bgw_errors_total',
    help: 'Error responses by gateway error code and dialect.',
    labelNames: ['code', 'dialect'] as const,
    registers: [this.registry],
  });

  readonly queueWaitSeconds = new Histogram({
    name: 'bgw_queue_wait_seconds',
    help: 'Time a job waited in the bounded queue before it started.',
    buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });

  readonly inferenceSeconds = new Histogram({
    name: 'bgw_inference_seconds',
    help: 'Model inference time (including the resize to the model input), by model and execution provider.',
    labelNames: ['model', 'provider'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 4, 8],
    registers: [this.registry],
  });

  readonly stageSeconds = new Histogram({
    name: 'bgw_pipeline_stage_seconds',
    help: 'Time per pipeline stage (decode, matte, compose, encode, …).',
    labelNames: ['stage'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    registers: [this.registry],
  });

  readonly maskCache = new Counter({
    name: 'bgw_mask_cache_total',
    help: 'Mask cache lookups by result (hit or miss).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly bytes = new Counter({
    name: 'bgw_bytes_total',
    help: 'Image bytes received and sent by removal requests.',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });

  constructor(sources: MetricsSources) {
    collectDefaultMetrics({ register: this.registry, prefix: 'bgw_' });
    new Gauge({
      name: 'bgw_queue_jobs',
      help: 'Jobs in the inference queue by state (running, waiting) and the configured concurrency.',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect() {
        this.set({ state: 'running' }, sources.queue.running);
        this.set({ state: 'waiting' }, sources.queue.waiting);
        this.set({ state: 'concurrency' }, sources.queue.concurrency);
      },
    });
    new Gauge({
      name: 'bgw_store_up',
      help: '1 when the key/usage store answers a ping, else 0.',
      registers: [this.registry],
      async collect() {
        this.set((await sources.storeUp()) ? 1 : 0);
      },
    });
  }

  /** Records one finished removal: per-stage times, inference by model/provider, cache use and bytes. */
  recordRemoval(r: { model: string; provider: string; maskCached: boolean; timings: Record<string, number>; bytesIn: number; bytesOut: number }): void {
    for (const [stage, ms] of Object.entries(r.timings)) {
      if (stage === 'infer') continue;
      this.stageSeconds.observe({ stage }, ms / 1000);
    }
    if (r.maskCached) this.maskCache.inc({ result: 'hit' });
    else {
      this.maskCache.inc({ result: 'miss' });
      if (r.timings.infer !== undefined) this.inferenceSeconds.observe({ model: r.model, provider: r.provider }, r.timings.infer / 1000);
    }
    this.bytes.inc({ direction: 'in' }, r.bytesIn);
    this.bytes.inc({ direction: 'out' }, r.bytesOut);
  }
}
