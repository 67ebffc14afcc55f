// compat/effects/index.ts
// The remove-background tool with background effects (seed 001): phase 1 is an async job (202 + jobId, SSE progress,
// downloads); phase 2 (/effects) re-renders from the cut-out and original cached by phase 1, without the model.
// Choices where the seed is silent [U]: keys are read from x-api-key / Authorization on the POST routes; progress and
// downloads are addressed by the unguessable jobId alone, because EventSource and <img src> cannot send headers;
// every SSE message is `event: progress`, the last one carrying phase "complete" (or "failed" with the error);
// errors are {"error": message, "code", "requestId"}; cached files live RESULTS_TTL_SECONDS (default 1 h).
import type { Context, Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import sharp from 'sharp';
import { GatewayError } from '../../src/errors.js';
import type { Gateway } from '../../src/gateway.js';
import { guardStore } from '../../src/gateway.js';
import type { ParsedBody } from '../../src/http/body.js';
import type { AppEnv } from '../../src/http/env.js';
import { JobRunner, type JobRecord } from '../../src/jobs/runner.js';
import { makeJob, type RemovalResult } from '../../src/job.js';
import { CONTENT_TYPES } from '../../src/pipeline/encode.js';
import { runJob } from '../../src/pipeline/run-job.js';
import { admit, commonErrorHeaders } from '../mount.js';
import type { CompatAdapter } from '../types.js';
import { renderEffects } from './render.js';
import { fileStem, hasEffects, mergedFields, readEffectSettings, readMatteSettings, type EffectSettings } from './settings.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Names the seed's own tool answers with for the model it ran. */
const DEFAULT_MODEL_ALIASES = new Set(['rembg', 'default', 'auto']);
const POLL_MS = 200;

interface EffectsJobFacts {
  dialect: 'effects';
  filename: string;
  stem: string;
  downloadName: string;
  maskName: string;
  originalName: string;
  originalSize: number;
  model: string;
}

function renderEffectsError(err: GatewayError, c: Context<AppEnv>): Response {
  return new Response(JSON.stringify({ error: err.message, code: err.code, requestId: c.get('requestId') }), {
    status: err.status,
    headers: { 'Content-Type': 'application/json', ...commonErrorHeaders(err, c) },
  });
}

function readKey(c: Context<AppEnv>): string | undefined {
  const header = c.req.header('x-api-key');
  if (header) return header;
  const auth = c.req.header('authorization')?.match(/^(?:Bearer|Token|Api-Key)\s+(.+)$/i);
  return auth?.[1]?.trim() ?? c.req.query('api_key') ?? undefined;
}

function chooseModel(gw: Gateway, requested: string | undefined): string {
  if (!requested || DEFAULT_MODEL_ALIASES.has(requested.toLowerCase())) return gw.engine.defaultModel;
  const installed = gw.engine.models();
  if (!installed.includes(requested)) {
    throw new GatewayError('invalid_parameter', {
      message: `model must be one of ${['rembg', ...installed].join(', ')} (rembg = this server's default, ${gw.engine.defaultModel}); got "${requested}".`,
      details: { field: 'model', allowed: installed },
    });
  }
  return requested;
}

const fileKey = (jobId: string, name: string) => `${jobId}:file:${name}`;
const downloadPath = (jobId: string, name: string) => `/api/v1/download/${jobId}/${name}`;

async function saveFile(gw: Gateway, jobId: string, owner: string, name: string, bytes: Uint8Array, contentType: string): Promise<void> {
  await guardStore(gw.stores.results.put(fileKey(jobId, name), { status: 'done', owner, bytes, contentType, meta: { name } }, gw.config.RESULTS_TTL_SECONDS), gw.config.STORE_TIMEOUT_MS);
}

async function loadFile(gw: Gateway, jobId: string, name: string) {
  const stored = await guardStore(gw.stores.results.get(fileKey(jobId, name)), gw.config.STORE_TIMEOUT_MS);
  return stored?.bytes ? stored : undefined;
}

function encodeOptions(gw: Gateway) {
  return { pngCompressionLevel: gw.config.PNG_COMPRESSION_LEVEL, pngAdaptiveFiltering: gw.config.PNG_ADAPTIVE_FILTERING };
}

/**
 * edgeRefine 0–3: 0 hard 0/255 edges; 1 (default) the server's matte (MATTE_REFINE, soft edges); 2 edge-aware
 * refinement at full quality (refine=full); 3 as 2, plus a 1-px choke that drops the outermost mixed pixels and
 * re-estimated edge colours, so no old background shows through. `decontaminate` re-estimates edge colours at any level.
 */
export function matteJobFields(edgeRefine: number, decontaminate: boolean) {
  return {
    semitransparency: edgeRefine > 0,
    grow: edgeRefine === 3 ? -1 : 0,
    foregroundEstimation: decontaminate || edgeRefine === 3,
    ...(edgeRefine >= 2 ? { refine: 'full' as const } : {}),
  };
}

function progressEvent(r: JobRecord): Record<string, unknown> {
  const facts = r.extra as unknown as EffectsJobFacts;
  switch (r.state) {
    case 'queued':
      return { phase: 'queued', stage: 'Waiting for a free worker...', percent: 0 };
    case 'processing':
      return { phase: 'processing', stage: 'Removing background...', percent: 50 };
    case 'failed':
      return { phase: 'failed', stage: 'Failed', percent: 100, error: r.error?.message ?? 'failed', code: r.error?.code };
    case 'completed':
      return {
        phase: 'complete',
        percent: 100,
        result: {
          jobId: r.id,
          downloadUrl: downloadPath(r.id, facts.downloadName),
          maskUrl: downloadPath(r.id, facts.maskName),
          originalUrl: downloadPath(r.id, facts.originalName),
          originalSize: facts.originalSize,
          processedSize: r.result?.bytes.byteLength ?? 0,
          filename: facts.filename,
          model: facts.model,
        },
      };
  }
}

async function submitPhase1(c: Context<AppEnv>, gw: Gateway, runner: JobRunner, body: ParsedBody): Promise<Response> {
  const file = body.files.get('file');
  if (!file) {
    throw new GatewayError('missing_image', {
      message: body.files.size > 0 ? `The image must be sent in the "file" part; got ${[...body.files.keys()].join(', ')}.` : 'file is required: the image as a multipart file part.',
      details: { accepted: 'file' },
    });
  }
  const fields = mergedFields(body, false);
  const effects = readEffectSettings(fields);
  const matte = readMatteSettings(fields);
  const model = chooseModel(gw, matte.model);
  const backgroundImage = body.files.get('backgroundImage')?.bytes;
  if (effects.backgroundType === 'image' && !backgroundImage) {
    throw new GatewayError('invalid_parameter', { message: 'backgroundType image needs a backgroundImage file part.', details: { field: 'backgroundImage' } });
  }
  const filename = file.filename ?? 'image.png';
  const stem = fileStem(filename);
  const maskName = `${stem}_mask.png`;
  const facts: EffectsJobFacts = {
    dialect: 'effects',
    filename,
    stem,
    maskName,
    originalName: `${stem}_original.png`,
    downloadName: hasEffects(effects) ? `${stem}_nobg.${effects.outputFormat}` : maskName,
    originalSize: file.bytes.byteLength,
    model,
  };
  const job = makeJob({ source: { kind: 'bytes', bytes: file.bytes, filename }, model, format: 'png', channels: 'rgba', size: 'full', ...matteJobFields(matte.edgeRefine, matte.decontaminate) });
  const key = c.get('apiKey')!;
  const record = await runner.submitTask(
    key,
    1,
    async (signal, rec): Promise<RemovalResult> => {
      const cut = await runJob(job, gw.pipeline, signal);
      // EXIF orientation applied, at the cut-out's size, so phase 2 can blur the real background behind the subject.
      const original = await sharp(file.bytes, { limitInputPixels: gw.config.MAX_INPUT_PIXELS })
        .rotate()
        .resize(cut.width, cut.height, { fit: 'fill' })
        .removeAlpha()
        .png({ compressionLevel: 2 })
        .toBuffer();
      await saveFile(gw, rec.id, key.fingerprint, facts.maskName, cut.bytes, 'image/png');
      await saveFile(gw, rec.id, key.fingerprint, facts.originalName, original, 'image/png');
      if (facts.downloadName === facts.maskName) return cut;
      const rendered = await renderEffects(effects, { cutout: cut.bytes, original, ...(backgroundImage ? { backgroundImage } : {}), maxInputPixels: gw.config.MAX_INPUT_PIXELS, encode: encodeOptions(gw) });
      await saveFile(gw, rec.id, key.fingerprint, facts.downloadName, rendered, CONTENT_TYPES[effects.outputFormat]);
      return { ...cut, bytes: rendered, contentType: CONTENT_TYPES[effects.outputFormat], format: effects.outputFormat };
    },
    facts as unknown as Record<string, unknown>,
    job.model ?? gw.engine.defaultModel,
  );
  return c.json({ jobId: record.id, async: true }, 202);
}

async function phase2(c: Context<AppEnv>, gw: Gateway, runner: JobRunner, body: ParsedBody): Promise<Response> {
  const fields = mergedFields(body, true);
  const jobId = fields.get('jobId')?.trim();
  const filename = fields.get('filename')?.trim();
  if (!jobId) throw new GatewayError('invalid_parameter', { message: 'settings.jobId is required: the jobId from phase 1.', details: { field: 'jobId' } });
  if (!filename) throw new GatewayError('invalid_parameter', { message: 'settings.filename is required: the original filename from phase 1.', details: { field: 'filename' } });
  const effects = readEffectSettings(fields);
  const record = UUID.test(jobId) ? await runner.get(jobId, c.get('apiKey')!.fingerprint) : undefined;
  if (!record) throw new GatewayError('not_found', { message: `Job ${jobId} not found or expired (cached for ${gw.config.RESULTS_TTL_SECONDS} s).` });
  if (record.state === 'failed') throw new GatewayError('job_not_ready', { message: `Job ${jobId} failed in phase 1: ${record.error?.message ?? 'unknown error'}` });
  if (record.state !== 'completed') throw new GatewayError('job_not_ready', { message: `Job ${jobId} is still ${record.state}; wait for phase "complete" on its progress stream.` });
  const facts = record.extra as unknown as EffectsJobFacts;
  const [cutout, original] = await Promise.all([loadFile(gw, jobId, facts.maskName), loadFile(gw, jobId, facts.originalName)]);
  if (!cutout?.bytes || !original?.bytes) throw new GatewayError('not_found', { message: `The cached mask of job ${jobId} has expired; run phase 1 again.` });
  const backgroundImage = body.files.get('backgroundImage')?.bytes;
  const rendered = await gw.queue.run(
    () => renderEffects(effects, { cutout: cutout.bytes!, original: original.bytes!, ...(backgroundImage ? { backgroundImage } : {}), maxInputPixels: gw.config.MAX_INPUT_PIXELS, encode: encodeOptions(gw) }),
    AbortSignal.any([c.req.raw.signal, AbortSignal.timeout(gw.config.REQUEST_TIMEOUT_MS)]),
  );
  const name = `${fileStem(filename)}_nobg.${effects.outputFormat}`;
  await saveFile(gw, jobId, record.owner, name, rendered, CONTENT_TYPES[effects.outputFormat]);
  return c.json({ jobId, downloadUrl: downloadPath(jobId, name), processedSize: rendered.byteLength });
}

async function findJob(runner: JobRunner, gw: Gateway, jobId: string): Promise<JobRecord> {
  const record = UUID.test(jobId) ? await runner.find(jobId) : undefined;
  if (!record || record.extra.dialect !== 'effects') throw new GatewayError('not_found', { message: `Job ${jobId} not found or expired (kept ${gw.config.RESULTS_TTL_SECONDS} s).` });
  return record;
}

export const effects: CompatAdapter = {
  name: 'effects',
  readApiKey: readKey,
  renderError: renderEffectsError,
  routes: [],
  extraRoutes(app: Hono<AppEnv>, gw: Gateway) {
    const runner = new JobRunner(gw);
    app.post('/api/v1/tools/remove-background', async (c) => submitPhase1(c, gw, runner, (await admit(c, gw, effects, true))!));
    app.post('/api/v1/tools/remove-background/effects', async (c) => phase2(c, gw, runner, (await admit(c, gw, effects, true))!));

    app.get('/api/v1/jobs/:jobId/progress', async (c) => {
      let record = await findJob(runner, gw, c.req.param('jobId'));
      c.header('Cache-Control', 'no-store');
      c.header('X-Accel-Buffering', 'no');
      return streamSSE(c, async (stream) => {
        const deadline = Date.now() + gw.config.REQUEST_TIMEOUT_MS + 60_000;
        let last = '';
        let closed = false;
        stream.onAbort(() => {
          closed = true;
        });
        while (!closed) {
          const data = JSON.stringify(progressEvent(record));
          if (data !== last) {
            await stream.writeSSE({ event: 'progress', data });
            last = data;
          }
          if (record.state === 'completed' || record.state === 'failed' || Date.now() > deadline) break;
          await stream.sleep(POLL_MS);
          record = (await runner.find(record.id).catch(() => record)) ?? record;
        }
      });
    });

    // The latest progress event as plain JSON, for clients that poll instead of streaming.
    app.get('/api/v1/jobs/:jobId', async (c) => c.json(progressEvent(await findJob(runner, gw, c.req.param('jobId')))));

    app.get('/api/v1/download/:jobId/:name', async (c) => {
      const jobId = c.req.param('jobId');
      const name = c.req.param('name');
      const file = UUID.test(jobId) && /^[A-Za-z0-9._-]+$/.test(name) ? await loadFile(gw, jobId, name) : undefined;
      if (!file?.bytes) throw new GatewayError('not_found', { message: `No file ${name} for job ${jobId} (files are kept ${gw.config.RESULTS_TTL_SECONDS} s).` });
      return new Response(file.bytes, {
        headers: {
          'Content-Type': file.contentType ?? 'application/octet-stream',
          'Content-Length': String(file.bytes.byteLength),
          'Content-Disposition': `inline; filename="${name}"`,
          'Cache-Control': 'private, max-age=300',
          'X-Request-Id': c.get('requestId'),
        },
      });
    });
  },
};

export type { EffectSettings };
