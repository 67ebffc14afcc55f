// src/bootstrap.ts
// Builds a Gateway from config: stores, seeded keys, warm model sessions, queue. Shared by main.ts and tests.
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { loadConfig, PROJECT_ROOT, type Config } from './config.js';
import { Engine } from './engine/engine.js';
import type { Gateway } from './gateway.js';
import { createImageFetcher } from './http/fetch-url.js';
import { createKey, readKeysFile, seedKeys, type KeySeed } from './keys.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import { loadPlans } from './plans.js';
import { JobQueue } from './queue.js';
import { createMemoryStores } from './store/memory/index.js';
import type { Stores } from './store/types.js';

export async function packageVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function createStores(config: Config): Promise<Stores> {
  const memory = {
    resultsMaxBytes: config.RESULTS_MAX_BYTES,
    maskCacheMaxBytes: config.MASK_CACHE_MAX_BYTES,
    maskCacheTtlSeconds: config.MASK_CACHE_TTL_SECONDS,
  };
  if (!config.REDIS_URL) return createMemoryStores(memory);
  const { createRedisStores } = await import('./store/redis/index.js');
  return createRedisStores({ url: config.REDIS_URL, prefix: config.REDIS_KEY_PREFIX, ...memory, timeoutMs: config.STORE_TIMEOUT_MS });
}

export interface BootstrapOptions {
  env?: Record<string, string | undefined>;
  log?: Logger;
  /** Print the first-start key (main.ts); tests pass their own keys. */
  announceFirstKey?: boolean;
}

export async function createGateway(options: BootstrapOptions = {}): Promise<Gateway> {
  // Every upload is different: libvips' operation cache only holds memory (and serves stale results in benches).
  sharp.cache(false);
  const config = loadConfig(options.env ?? process.env, await packageVersion());
  if (config.SHARP_CONCURRENCY > 0) sharp.concurrency(config.SHARP_CONCURRENCY);
  const log = options.log ?? createLogger(config.LOG_LEVEL);
  const plans = loadPlans(config.PLANS);
  const stores = await createStores(config);
  try {
    const defaults = { plan: config.DEFAULT_PLAN };
    const seeds: KeySeed[] = config.API_KEYS.map((secret) => ({ secret, account: {} }));
    if (config.KEYS_FILE) seeds.push(...(await readKeysFile(config.KEYS_FILE)));
    let keyCount = -1;
    try {
      const added = await seedKeys(stores.keys, seeds, defaults);
      if (added) log.info({ added }, 'seeded API keys');
      keyCount = await stores.keys.count();
    } catch (err) {
      // Redis down at start: serve anyway (health says degraded); seeding is retried when it connects.
      if (stores.kind !== 'redis') throw err;
      log.warn({ err: String(err) }, 'could not seed API keys: store unreachable');
    }
    // Seeding is idempotent (existing keys keep their record), so repeating it on every reconnect restores the
    // API_KEYS/KEYS_FILE keys into a Redis that came back empty, and finishes a seeding that failed at start.
    stores.onReconnect?.(() => {
      seedKeys(stores.keys, seeds, defaults).then(
        (added) => added && log.info({ added }, 'store reconnected: re-seeded API keys'),
        (err: unknown) => log.warn({ err: String(err) }, 'store reconnected but re-seeding API keys failed'),
      );
    });
    if (options.announceFirstKey && keyCount === 0) {
      const { secret, record } = await createKey(stores.keys, { label: 'first-start' }, defaults);
      // Printed once to the console, not the log stream: the secret must not land in log storage.
      process.stdout.write(
        `\nNo API keys existed, so one was created. It is shown only this once:\n\n  ${secret}\n\n` +
          `  fingerprint ${record.fingerprint}\n  Make more with: npm run keys -- create   (or set API_KEYS=key1,key2)\n\n`,
      );
    }
    const engine = await Engine.start({
      modelsDir: config.MODELS_DIR,
      defaultModel: config.MODEL,
      extraModels: config.MODELS,
      provider: config.EXECUTION_PROVIDER,
      workers: config.INFERENCE_WORKERS,
      threads: config.INFERENCE_THREADS,
      memArena: config.INFERENCE_MEM_ARENA,
      nice: config.INFERENCE_NICE,
      batch: config.INFERENCE_BATCH,
      batchWaitMs: config.INFERENCE_BATCH_WAIT_MS,
    });
    log.info({ models: engine.status().map((s) => ({ model: s.model, provider: s.provider, loadMs: s.loadMs, fallback: s.fallbackReason, maxBatch: s.maxBatch, batchNote: s.batchNote })) }, 'models loaded');
    const queue = new JobQueue({
      concurrency: config.QUEUE_CONCURRENCY,
      maxWaiting: config.QUEUE_MAX_WAITING,
      retryAfterSeconds: config.QUEUE_RETRY_AFTER_SECONDS,
    });
    return {
      config,
      engine,
      queue,
      stores,
      plans,
      pipeline: {
        engine,
        limits: { maxInputPixels: config.MAX_INPUT_PIXELS, maxOutputPixels: config.MAX_OUTPUT_PIXELS },
        encode: { pngCompressionLevel: config.PNG_COMPRESSION_LEVEL, pngAdaptiveFiltering: config.PNG_ADAPTIVE_FILTERING },
        matteRefine: config.MATTE_REFINE,
        maskCache: stores.masks,
        fetchImage: createImageFetcher({
          maxBytes: config.URL_FETCH_MAX_BYTES,
          totalTimeoutMs: config.URL_FETCH_TIMEOUT_MS,
          connectTimeoutMs: config.URL_FETCH_CONNECT_TIMEOUT_MS,
          maxRedirects: 5,
          allowHosts: config.URL_FETCH_ALLOW_HOSTS,
          userAgent: `bg-gateway/${config.version}`,
        }),
      },
      log,
      metrics: new Metrics({
        queue,
        storeUp: () =>
          Promise.race([stores.ping().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), config.STORE_TIMEOUT_MS).unref())]).catch(() => false),
      }),
      startedAt: Date.now(),
      state: { shuttingDown: false },
    };
  } catch (err) {
    await stores.close();
    throw err;
  }
}

export { PROJECT_ROOT };
