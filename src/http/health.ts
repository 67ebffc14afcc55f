// src/http/health.ts
// Liveness and readiness in one body: 200 when the model is loaded, the store answers and we are not draining.
import type { Gateway } from '../gateway.js';

export async function healthReport(gw: Gateway): Promise<{ ready: boolean; body: Record<string, unknown> }> {
  let storeReachable = true;
  let storeError: string | undefined;
  try {
    await Promise.race([
      gw.stores.ping(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), gw.config.STORE_TIMEOUT_MS).unref()),
    ]);
  } catch (err) {
    storeReachable = false;
    storeError = err instanceof Error ? err.message : 'unreachable';
  }
  const engine = gw.engine.status();
  const ready = storeReachable && !gw.state.shuttingDown && engine.length > 0;
  return {
    ready,
    body: {
      status: ready ? 'ok' : gw.state.shuttingDown ? 'shutting_down' : 'degraded',
      version: gw.config.version,
      uptime_seconds: Math.round((Date.now() - gw.startedAt) / 1000),
      model: gw.engine.defaultModel,
      models: engine.map((m) => ({
        name: m.model,
        provider: m.provider,
        workers: m.workers,
        busy: m.busy,
        max_batch: m.maxBatch,
        ...(m.batchNote ? { batch_note: m.batchNote } : {}),
        ...(m.fallbackReason ? { fallback_reason: m.fallbackReason } : {}),
      })),
      execution_provider: gw.engine.provider,
      queue: { running: gw.queue.running, waiting: gw.queue.waiting, concurrency: gw.queue.concurrency, max_waiting: gw.config.QUEUE_MAX_WAITING },
      store: { kind: gw.stores.kind, reachable: storeReachable, ...(storeError ? { error: 'unreachable' } : {}) },
    },
  };
}
