// compat/clipdrop/index.ts
// Clipdrop's Remove Background API (compat-apis §3): POST /remove-background/v1 on clipdrop-api.co, multipart
// `image_file` (+ optional `transparency_handling`), output format from Accept, same dimensions as the input,
// x-remaining-credits / x-credits-consumed on success, {"error": "…"} on failure.
// Choices where Clipdrop's docs are silent [U] (compat/README.md lists them all):
// - Statuses are the ones Clipdrop clients handle: 400 bad request (413/415 included), 401 missing key,
//   402 no credits, 403 invalid/revoked key, 406 unsupported Accept, 429 rate limit, 5xx as they are.
// - transparency_handling=return_input_if_non_opaque (the default) answers an input that already has transparency
//   without running the model and charges 0 credits: the original bytes when Accept asks for the input's own
//   format, otherwise the same pixels re-encoded (JPEG flattened on white).
// - Inputs over 25 MP (or the server's MAX_OUTPUT_PIXELS, if lower) are refused with 400, so the output can always
//   keep the input's dimensions.
import type { Context, Hono } from 'hono';
import sharp from 'sharp';
import { GatewayError } from '../../src/errors.js';
import type { Gateway } from '../../src/gateway.js';
import { parseBody } from '../../src/http/body.js';
import type { AppEnv } from '../../src/http/env.js';
import { makeJob, type OutputFormat } from '../../src/job.js';
import { CONTENT_TYPES } from '../../src/pipeline/encode.js';
import { enumMap, readEnum } from '../fields.js';
import { admit, bodyLimits, commonErrorHeaders, execute } from '../mount.js';
import { creditBalance } from '../remaining-credits.js';
import type { CompatAdapter } from '../types.js';

/** Clipdrop's documented input ceiling. */
const MAX_PIXELS = 25_000_000;

const STATUS: Partial<Record<string, number>> = {
  missing_api_key: 401,
  invalid_api_key: 403,
  subscription_inactive: 403,
  forbidden: 403,
  insufficient_credits: 402,
  image_too_large: 400,
  payload_too_large: 400,
  too_many_parts: 400,
  unsupported_media_type: 400,
};

const MESSAGE: Partial<Record<string, string>> = {
  missing_api_key: 'No api key provided',
  invalid_api_key: 'Invalid or revoked api key',
  insufficient_credits: 'Your account has no remaining credits',
  rate_limited: 'Too many requests, blocked by the rate limiter',
};

/** Marks the invalid_parameter thrown for an unusable Accept header, which Clipdrop answers with 406. */
const ACCEPT_FIELD = 'accept';

export function renderClipdropError(err: GatewayError, c: Context<AppEnv>): Response {
  const notAcceptable = err.code === 'invalid_parameter' && err.details.field === ACCEPT_FIELD;
  const status = notAcceptable ? 406 : (STATUS[err.code] ?? err.status);
  const base = MESSAGE[err.code];
  // Keep the gateway's specific reason (which limit, how many credits) after Clipdrop's fixed wording.
  const error = base ? (err.message !== base && err.code !== 'missing_api_key' ? `${base}: ${err.message}` : base) : err.message;
  return new Response(JSON.stringify({ error }), {
    status,
    headers: { 'Content-Type': 'application/json', ...commonErrorHeaders(err, c) },
  });
}

type ClipdropFormat = Extract<OutputFormat, 'png' | 'webp' | 'jpg'>;

const ACCEPTED: Record<string, ClipdropFormat> = {
  'image/png': 'png',
  'image/webp': 'webp',
  'image/jpg': 'jpg',
  'image/jpeg': 'jpg',
  'image/*': 'png',
  '*/*': 'png',
};

/** The best-ranked supported type in Accept (ties: first listed); no Accept means PNG; nothing usable means 406. */
export function outputFormat(accept: string | undefined): ClipdropFormat {
  if (!accept || !accept.trim()) return 'png';
  let best: { format: ClipdropFormat; q: number } | undefined;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.trim().toLowerCase().split(';');
    const format = ACCEPTED[type!.trim()];
    if (!format) continue;
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    if (!Number.isFinite(q) || q <= 0) continue;
    if (!best || q > best.q) best = { format, q };
  }
  if (!best) {
    throw new GatewayError('invalid_parameter', {
      message: `Accept header not acceptable: ${JSON.stringify(accept.slice(0, 100))}. Use image/png, image/webp or image/jpg.`,
      details: { field: ACCEPT_FIELD, allowed: ['image/png', 'image/webp', 'image/jpg', 'image/jpeg'] },
    });
  }
  return best.format;
}

const HANDLING = ['return_input_if_non_opaque', 'discard_alpha_layer'] as const;

interface Probe {
  format?: string;
  width: number;
  height: number;
  /** Some pixel is not fully opaque. */
  transparent: boolean;
  hasAlpha: boolean;
}

/** Header facts and a real transparency test; undefined when sharp cannot read it (the pipeline then says why). */
async function probe(bytes: Uint8Array): Promise<Probe | undefined> {
  try {
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    if (!meta.width || !meta.height) return undefined;
    const swap = (meta.orientation ?? 1) >= 5;
    const height = meta.pageHeight ?? meta.height;
    const dims = swap ? { width: height, height: meta.width } : { width: meta.width, height };
    if (!meta.hasAlpha) return { ...dims, format: meta.format, transparent: false, hasAlpha: false };
    if (dims.width * dims.height > MAX_PIXELS) return { ...dims, format: meta.format, transparent: true, hasAlpha: true };
    const stats = await sharp(bytes, { animated: false }).stats();
    return { ...dims, format: meta.format, transparent: !stats.isOpaque, hasAlpha: true };
  } catch {
    return undefined;
  }
}

const SHARP_FORMAT: Record<ClipdropFormat, string> = { png: 'png', webp: 'webp', jpg: 'jpeg' };

/** The input handed back as it is (same format) or re-encoded into the asked-for one. */
async function passthrough(bytes: Uint8Array, inputFormat: string | undefined, format: ClipdropFormat): Promise<Uint8Array> {
  if (inputFormat === SHARP_FORMAT[format]) return bytes;
  const img = sharp(bytes, { animated: false }).rotate();
  if (format === 'png') return img.png().toBuffer();
  if (format === 'webp') return img.webp({ quality: 90, alphaQuality: 100 }).toBuffer();
  return img.flatten({ background: '#ffffff' }).jpeg({ quality: 90 }).toBuffer();
}

/** sharp's messages name internal files; the client gets the pipeline's stable wording. */
function undecodable(cause: unknown): never {
  throw new GatewayError('invalid_image', { message: 'The image could not be decoded: the file is damaged or truncated.', cause });
}

async function successHeaders(c: Context<AppEnv>, gw: Gateway, consumed: number, contentType: string, length: number): Promise<Record<string, string>> {
  const balance = await creditBalance(gw, c.get('apiKey')!);
  return {
    'Content-Type': contentType,
    'Content-Length': String(length),
    'x-remaining-credits': String(balance.remaining),
    'x-credits-consumed': String(consumed),
    'X-Request-Id': c.get('requestId'),
  };
}

async function removeBackground(c: Context<AppEnv>, gw: Gateway): Promise<Response> {
  await admit(c, gw, clipdrop, false);
  // Accept is checked before the upload is read: a 406 costs the client no upload.
  const format = outputFormat(c.req.header('accept'));
  const body = await parseBody(c.req.raw, bodyLimits(gw));
  const file = body.files.get('image_file');
  if (!file) throw new GatewayError('missing_image', { message: 'Missing image_file: send the image as a multipart/form-data file field named image_file.' });
  const handling = readEnum(body.fields, 'transparency_handling', HANDLING, enumMap(HANDLING)) ?? 'return_input_if_non_opaque';

  let bytes = file.bytes;
  const facts = await probe(bytes);
  if (facts) {
    const limit = Math.min(MAX_PIXELS, gw.config.MAX_OUTPUT_PIXELS, gw.config.MAX_INPUT_PIXELS);
    if (facts.width * facts.height > limit) {
      throw new GatewayError('image_too_large', {
        message: `The image has ${facts.width}×${facts.height} = ${((facts.width * facts.height) / 1e6).toFixed(1)} megapixels; the maximum is ${(limit / 1e6).toFixed(1)}.`,
        details: { width: facts.width, height: facts.height, max_pixels: limit },
      });
    }
    if (facts.transparent && handling === 'return_input_if_non_opaque') {
      const out = await passthrough(bytes, facts.format, format).catch(undecodable);
      return new Response(out, { headers: await successHeaders(c, gw, 0, CONTENT_TYPES[format], out.byteLength) });
    }
    if (facts.hasAlpha && handling === 'discard_alpha_layer') {
      // Orientation is applied first because the re-encoded PNG carries no EXIF.
      bytes = await sharp(bytes, { animated: false }).rotate().removeAlpha().png({ compressionLevel: 1 }).toBuffer().catch(undecodable);
    }
  }

  const job = makeJob({ source: { kind: 'bytes', bytes }, format, channels: 'rgba', size: 'full' });
  const result = await execute(c, gw, job, body.bytesIn);
  return new Response(result.bytes, { headers: await successHeaders(c, gw, result.credits, result.contentType, result.bytes.byteLength) });
}

export const clipdrop: CompatAdapter = {
  name: 'clipdrop',
  readApiKey: (c) => c.req.header('x-api-key')?.trim() || undefined,
  renderError: renderClipdropError,
  // The removal route needs a step the generic handler lacks (answering transparent inputs without the model),
  // so it is registered here with the same admit → execute steps.
  routes: [],
  extraRoutes(app: Hono<AppEnv>, gw: Gateway) {
    app.post('/remove-background/v1', (c) => removeBackground(c, gw));
    app.all('/remove-background/v1', () => {
      throw new GatewayError('method_not_allowed', { message: 'Use POST /remove-background/v1 with a multipart/form-data body.', headers: { Allow: 'POST' } });
    });
  },
  prefixedRoutes(app: Hono<AppEnv>) {
    // Under /compat/clipdrop/ every path is Clipdrop's, so unknown ones answer {"error": "…"}, not the native envelope.
    app.all('*', (c) => {
      throw new GatewayError('not_found', { message: `No route for ${c.req.method} ${c.req.path}.` });
    });
  },
};
