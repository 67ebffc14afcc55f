// src/pipeline/run-job.ts
// The one place the stages are chained: source → decode → infer → matte → compose → encode.
// Each stage is checked against the job's signal, so work for a client that has gone stops at the next boundary.
import { createHash } from 'node:crypto';
import type { Engine } from '../engine/engine.js';
import { GatewayError } from '../errors.js';
import { creditsFor, type RemovalJob, type RemovalResult } from '../job.js';
import type { MaskCache } from '../store/types.js';
import { backgroundImage, blurredOriginal, cropRaster, cropRect, flattenOnColor, flattenOnRaster, overTranslucentColor, subjectBoxSliced, type Raster } from './compose.js';
import { decodeImage, openImage, type DecodedImage, type DecodeLimits, type OpenedImage } from './decode.js';
import { CONTENT_TYPES, encodeRaster, encodeZip, OPAQUE_FORMATS, type EncodeOptions } from './encode.js';
import { answerKey, getAnswer, putAnswer } from './answer-cache.js';
import { addShadow, addStroke, applyRoi, layoutSubject } from './effects.js';
import { estimateForegroundSliced } from './foreground.js';
import { inferMask, type LowResMask } from './infer.js';
import { upsampleMask, type RefineSetting } from './matte.js';
import { maskUncertainty } from './uncertainty.js';

export interface PipelineDeps {
  engine: Engine;
  limits: DecodeLimits;
  encode: Omit<EncodeOptions, 'quality'>;
  /** Fetches `image_url` sources (SSRF-checked); absent means URL sources are refused. */
  fetchImage?: (url: string, signal?: AbortSignal) => Promise<Uint8Array>;
  maskCache?: MaskCache;
  /** Server default for matte refinement (config MATTE_REFINE); absent means `auto`. */
  matteRefine?: RefineSetting;
}

const WHITE = { r: 255, g: 255, b: 255 };

/**
 * The matte, crop and compose stages are synchronous JS over full-resolution buffers; awaiting a resolved
 * promise only runs microtasks, so without this the whole chain would hold the event loop (≈100 ms at 12 MP).
 * setImmediate lets pending I/O (health probes, other uploads) in between stages.
 */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

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
  const cache = deps.maskCache && deps.maskCache.ttlSeconds > 0 ? deps.maskCache : undefined;
  const sourceHash = cache ? createHash('sha256').update(bytes).digest('hex') : '';
  const answer = cache ? answerKey(job, model, sourceHash) : '';
  if (cache) {
    const hit = await getAnswer(cache, answer);
    if (hit) {
      lap('cache');
      return { ...hit, timings };
    }
  }
  const opened = await openImage(bytes, deps.limits);
  lap('open');
  // The full-size decode runs beside inference (whose input comes from the upload itself), so it is off the
  // critical path; if either fails, the other is told to stop.
  const sideBySide = new AbortController();
  const stop = () => sideBySide.abort(signal?.reason);
  signal?.addEventListener('abort', stop, { once: true });
  const started = performance.now();
  const took = () => Math.round((performance.now() - started) * 10) / 10;
  let image: DecodedImage, mask: LowResMask, cached: boolean;
  try {
    [image, { mask, cached }] = await Promise.all([
      decodeImage(opened, job, deps.limits).then((decoded) => ((timings.decode = took()), decoded)),
      maskFor(sourceHash, model, opened, deps.engine, cache, sideBySide.signal).then((m) => ((timings.infer = took()), m)),
    ]);
  } catch (err) {
    sideBySide.abort(err);
    throw err;
  } finally {
    signal?.removeEventListener('abort', stop);
  }
  mark = performance.now();
  signal?.throwIfAborted();
  const alpha = await upsampleMask(mask, image, job, deps.matteRefine);
  if (job.roi) applyRoi(alpha, image.width, image.height, job.roi, image.input);
  lap('matte');
  await yieldToEventLoop();

  if (job.despill || job.foregroundEstimation) await estimateForegroundSliced(image.data, image.channels, alpha, image.width, image.height, { despill: job.despill });
  let raster: Raster = { data: image.data, width: image.width, height: image.height, channels: image.channels, alpha };
  const fullBox = await subjectBoxSliced(alpha, image.width, image.height);
  const rect = job.crop ? cropRect(fullBox, image.width, image.height, job.cropMargin) : { left: 0, top: 0, width: image.width, height: image.height };
  raster = cropRaster(raster, rect);
  const foreground = { left: fullBox.left - rect.left, top: fullBox.top - rect.top, width: fullBox.width, height: fullBox.height };
  if (fullBox.width === 0) Object.assign(foreground, { left: 0, top: 0 });
  if (job.layout) {
    const placed = await layoutSubject(raster, job.layout);
    raster = placed.raster;
    Object.assign(foreground, placed.foreground);
  }
  lap('crop');
  await yieldToEventLoop();

  const encodeOptions: EncodeOptions = { ...deps.encode, ...(job.quality ? { quality: job.quality } : {}) };
  let out: Buffer;
  if (job.format === 'zip') {
    // The zip's matte and colours carry the outline and shadow too: clients composite them back as one cut-out.
    if (job.stroke) raster = addStroke(raster, job.stroke);
    if (job.shadow) raster = await addShadow(raster, job.shadow);
    out = await encodeZip(raster, raster.alpha!, encodeOptions);
  } else if (job.channels === 'alpha') {
    out = await encodeRaster({ data: raster.alpha!, width: raster.width, height: raster.height, channels: 1 }, job.format, encodeOptions);
  } else {
    if (job.stroke) raster = addStroke(raster, job.stroke);
    if (job.shadow) raster = await addShadow(raster, job.shadow);
    raster = await applyBackground(raster, job, deps);
    lap('compose');
    out = await encodeRaster(raster, job.format, encodeOptions);
  }
  lap('encode');

  const result: RemovalResult = {
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
  if (cache) await putAnswer(cache, answer, result);
  return result;
}

async function maskFor(
  sourceHash: string,
  model: string,
  image: OpenedImage,
  engine: Engine,
  cache: MaskCache | undefined,
  signal?: AbortSignal,
): Promise<{ mask: LowResMask; cached: boolean }> {
  // The low-resolution mask depends only on the upload and the model, so a retry at another size or format reuses it.
  const key = cache ? `${model}:${sourceHash}` : '';
  if (cache) {
    const hit = await cache.get(key).catch(() => undefined);
    if (hit) return { mask: { data: hit.data, size: hit.size, inferMs: 0 }, cached: true };
  }
  const mask = await inferMask(engine, model, image, signal);
  if (cache) await cache.set(key, { data: mask.data, size: mask.size }).catch(() => undefined);
  return { mask, cached: false };
}

async function applyBackground(r: Raster, job: RemovalJob, deps: PipelineDeps): Promise<Raster> {
  if (job.bgImage) {
    const bg = await backgroundImage(job.bgImage, r.width, r.height, deps.limits.maxInputPixels);
    // bgBlur with a background image blurs that image (Picsart's bg_blur with bg_image); alone it blurs the original.
    return flattenOnRaster(r, job.bgBlur ? await blurredOriginal({ data: bg, width: r.width, height: r.height, channels: 3 }, job.bgBlur) : bg);
  }
  if (job.bgBlur) return flattenOnRaster(r, await blurredOriginal(r, job.bgBlur));
  const opaque = OPAQUE_FORMATS.has(job.format);
  if (job.bgColor) {
    if (job.bgColor.alpha >= 1 || opaque) return flattenOnColor(r, job.bgColor);
    return overTranslucentColor(r, job.bgColor);
  }
  return opaque ? flattenOnColor(r, WHITE) : r;
}
