// src/pipeline/run-job.ts
// The one place the stages are chained: source → decode → infer → matte → compose → encode.
// Each stage is checked against the job's signal, so work for a client that has gone stops at the next boundary.
import { createHash } from 'node:crypto';
import type { Engine } from '../engine/engine.js';
import { GatewayError } from '../errors.js';
import { creditsFor, type RemovalJob, type RemovalResult } from '../job.js';
import type { MaskCache } from '../store/types.js';
import { backgroundImage, blurredOriginal, cropRaster, cropRect, flattenOnColor, flattenOnRaster, overTranslucentColor, subjectBox, type Raster } from './compose.js';
import { decodeImage, type DecodeLimits } from './decode.js';
import { CONTENT_TYPES, encodeRaster, encodeZip, OPAQUE_FORMATS, type EncodeOptions } from './encode.js';
import { estimateForeground } from './foreground.js';
import { inferMask, type LowResMask } from './infer.js';
import { upsampleMask } from './matte.js';
import { maskUncertainty } from './uncertainty.js';

export interface PipelineDeps {
  engine: Engine;
  limits: DecodeLimits;
  encode: Omit<EncodeOptions, 'quality'>;
  /** Fetches `image_url` sources (SSRF-checked); absent means URL sources are refused. */
  fetchImage?: (url: string, signal?: AbortSignal) => Promise<Uint8Array>;
  maskCache?: MaskCache;
}

const WHITE = { r: 255, g: 255, b: 255 };

export async function loadSource(job: RemovalJob, deps: PipelineDeps, signal?: AbortSignal): Promise<Uint8Array> {
  if (job.source.kind === 'bytes') return job.source.bytes;
  if (!deps.fetchImage) throw new GatewayError('url_not_allowed', { message: 'image_url is disabled on this server.' });
  return deps.fetchImage(job.source.url, signal);
}

export async function runJob(job: RemovalJob, deps: PipelineDeps, signal?: AbortSignal): Promise<RemovalResult> {
  const timings: Record<string, number> = {};
  let mark = performance.now();
  const lap = (stage: string) => {
    const now = performance.now();
    timings[stage] = Math.round((now - mark) * 10) / 10;
    mark = now;
    signal?.throwIfAborted();
  };

  const bytes = await loadSource(job, deps, signal);
  lap('fetch');
  const model = job.model ?? deps.engine.defaultModel;
  const image = await decodeImage(bytes, job, deps.limits);
  lap('decode');

  const { mask, cached } = await maskFor(bytes, model, image, deps, signal);
  lap('infer');
  const alpha = await upsampleMask(mask, image, job);
  lap('matte');

  if (job.despill || job.foregroundEstimation) estimateForeground(image.data, image.channels, alpha, image.width, image.height);
  let raster: Raster = { data: image.data, width: image.width, height: image.height, channels: image.channels, alpha };
  const fullBox = subjectBox(alpha, image.width, image.height);
  const rect = job.crop ? cropRect(fullBox, image.width, image.height, job.cropMargin) : { left: 0, top: 0, width: image.width, height: image.height };
  raster = cropRaster(raster, rect);
  const foreground = { left: fullBox.left - rect.left, top: fullBox.top - rect.top, width: fullBox.width, height: fullBox.height };
  if (fullBox.width === 0) Object.assign(foreground, { left: 0, top: 0 });
  lap('crop');

  const encodeOptions: EncodeOptions = { ...deps.encode, ...(job.quality ? { quality: job.quality } : {}) };
  let out: Buffer;
  if (job.format === 'zip') {
    out = await encodeZip(raster, raster.alpha!, encodeOptions);
  } else if (job.channels === 'alpha') {
    out = await encodeRaster({ data: raster.alpha!, width: raster.width, height: raster.height, channels: 1 }, job.format, encodeOptions);
  } else {
    raster = await applyBackground(raster, job, deps);
    lap('compose');
    out = await encodeRaster(raster, job.format, encodeOptions);
  }
  lap('encode');

  return {
    bytes: out,
    contentType: CONTENT_TYPES[job.format],
    format: job.format,
    width: raster.width,
    height: raster.height,
    foreground,
    input: image.input,
    credits: creditsFor(job),
    model,
    maskCached: cached,
    uncertainty: maskUncertainty(mask.data, mask.size),
    timings,
  };
}

async function maskFor(
  bytes: Uint8Array,
  model: string,
  image: Awaited<ReturnType<typeof decodeImage>>,
  deps: PipelineDeps,
  signal?: AbortSignal,
): Promise<{ mask: LowResMask; cached: boolean }> {
  const cache = deps.maskCache;
  // The low-resolution mask depends only on the upload and the model, so a retry at another size or format reuses it.
  const key = cache ? `${model}:${createHash('sha256').update(bytes).digest('hex')}` : '';
  if (cache) {
    const hit = await cache.get(key).catch(() => undefined);
    if (hit) return { mask: { data: hit.data, size: hit.size, inferMs: 0 }, cached: true };
  }
  const mask = await inferMask(deps.engine, model, image, signal);
  if (cache) await cache.set(key, { data: mask.data, size: mask.size }).catch(() => undefined);
  return { mask, cached: false };
}

async function applyBackground(r: Raster, job: RemovalJob, deps: PipelineDeps): Promise<Raster> {
  if (job.bgImage) return flattenOnRaster(r, await backgroundImage(job.bgImage, r.width, r.height, deps.limits.maxInputPixels));
  if (job.bgBlur) return flattenOnRaster(r, await blurredOriginal(r, job.bgBlur));
  const opaque = OPAQUE_FORMATS.has(job.format);
  if (job.bgColor) {
    if (job.bgColor.alpha >= 1 || opaque) return flattenOnColor(r, job.bgColor);
    return overTranslucentColor(r, job.bgColor);
  }
  return opaque ? flattenOnColor(r, WHITE) : r;
}
