// src/config.ts
// Every setting comes from the environment, parsed once here; nothing else reads process.env.
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const MB = 1024 * 1024;

const bool = z
  .string()
  .trim()
  .toLowerCase()
  .transform((v, ctx) => {
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
    ctx.addIssue({ code: 'custom', message: 'expected true/false, 1/0, yes/no or on/off' });
    return z.NEVER;
  });

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const list = z
  .string()
  .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean));

/** Variable name → schema, with its default. README's configuration table mirrors this block. */
export const envSchema = z.object({
  PORT: int(0, 65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  PUBLIC_BASE_URL: z.url().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  MODEL: z.string().min(1).default('u2net'),
  MODELS: list.default([]),
  MODELS_DIR: z.string().min(1).default(path.join(PROJECT_ROOT, 'models')),
  EXECUTION_PROVIDER: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
  INFERENCE_WORKERS: int(1, 64).default(1),
  /** Micro-batching for GPUs: images per model run ('auto' = 8 with CUDA, 1 on CPU). */
  INFERENCE_BATCH: z.union([z.literal('auto'), int(1, 64)]).default('auto'),
  INFERENCE_BATCH_WAIT_MS: int(0, 1000).default(4),
  INFERENCE_THREADS: int(0, 256).default(Math.max(1, Math.min(os.availableParallelism(), 4))),
  /**
   * Inference threads run this much nicer than the event loop and the codecs (Linux, per thread). With both cores
   * busy in ORT, an 8 ms slice of main-thread work otherwise waited up to 0.1–0.4 s for a core (bench/RESULTS.md).
   */
  INFERENCE_NICE: int(0, 19).default(10),
  /** ORT's CPU memory arena: 2–2.5× faster inference here; off saves ≈ 290 MB (u2net) to 870 MB (IS-Net) RSS. */
  INFERENCE_MEM_ARENA: bool.default(true),

  /** libvips threads per sharp operation; 0 keeps libvips' default (one per core). See README for the measurements. */
  SHARP_CONCURRENCY: int(0, 256).default(0),
  QUEUE_CONCURRENCY: int(1, 256).default(2),
  QUEUE_MAX_WAITING: int(0, 100_000).default(32),
  QUEUE_RETRY_AFTER_SECONDS: int(1, 3600).default(2),
  REQUEST_TIMEOUT_MS: int(100).default(120_000),

  MAX_UPLOAD_BYTES: int(1).default(30 * MB),
  MAX_JSON_BYTES: int(1).default(42 * MB),
  MAX_FORM_PARTS: int(1, 10_000).default(64),
  MAX_FIELD_BYTES: int(1).default(1 * MB),
  MAX_INPUT_PIXELS: int(1).default(100_000_000),
  MAX_OUTPUT_PIXELS: int(1).default(50_000_000),
  /**
   * Edge-aware matte refinement: off (plain bilinear stretch), fast, full, or auto (full up to 0.5 MP, fast above);
   * the gains and costs per model and size are in bench/RESULTS.md ("## Quality").
   */
  MATTE_REFINE: z.enum(['auto', 'off', 'fast', 'full']).default('auto'),
  PNG_COMPRESSION_LEVEL: int(0, 9).default(2),
  PNG_ADAPTIVE_FILTERING: bool.default(false),

  REDIS_URL: z.string().min(1).optional(),
  REDIS_KEY_PREFIX: z.string().default('bgw:'),
  STORE_TIMEOUT_MS: int(10).default(1000),

  API_KEYS: list.default([]),
  KEYS_FILE: z.string().min(1).optional(),
  DEFAULT_PLAN: z.string().min(1).default('Business'),
  PLANS: z.string().optional(),

  MASK_CACHE_TTL_SECONDS: int(0).default(600),
  MASK_CACHE_MAX_BYTES: int(0).default(64 * MB),
  RESULTS_TTL_SECONDS: int(1).default(3600),
  RESULTS_MAX_BYTES: int(1).default(512 * MB),
  /** An async job whose replica stops renewing its lease for this long (the replica died) reads as failed. */
  JOB_LEASE_SECONDS: int(2, 3600).default(15),

  URL_FETCH_TIMEOUT_MS: int(100).default(15_000),
  URL_FETCH_CONNECT_TIMEOUT_MS: int(50).default(5_000),
  URL_FETCH_MAX_BYTES: int(1).default(30 * MB),
  URL_FETCH_ALLOW_HOSTS: list.default([]),

  METRICS_TOKEN: z.string().min(1).optional(),
  SHUTDOWN_TIMEOUT_MS: int(0).default(30_000),
});

export type Env = z.infer<typeof envSchema>;

export interface Config extends Env {
  version: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment once; a bad value stops start-up with a message naming the variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env, version = '0.0.0'): Config {
  const known = Object.fromEntries(
    Object.keys(envSchema.shape).flatMap((k) => (env[k] === undefined || env[k] === '' ? [] : [[k, env[k]]])),
  );
  const parsed = envSchema.safeParse(known);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}=${JSON.stringify(known[String(i.path[0])])}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  return Object.freeze({ ...parsed.data, version });
}
