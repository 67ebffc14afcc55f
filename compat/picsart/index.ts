// compat/picsart/index.ts
// Picsart Remove Background (compat-apis §5): POST /tools/1.0/removebg answers {"status":"success","data":{id,url}}
// where `url` is served by this gateway from the results store (no key needed, until RESULTS_TTL_SECONDS pass), and
// GET /tools/1.0/balance answers {"credits": n}. Key in X-Picsart-API-Key. Effects map onto the canonical job.
// Choices where Picsart's docs are silent or vague [U] (also in compat/README.md):
// - bg_blur N → Gaussian sigma N/2 px; with a background image it blurs that image, otherwise the original background.
// - shadow offsets are "px at a 500 px subject" (fractions v/500 of the subject's longer side), presets are 10;
//   shadow_blur N → N/2000 of that side; shadow colour black.
// - A canvas (bg_width/bg_height, or a background image's own size when those are blank) gets the whole cut-out
//   scaled to fit/fill it and centred; auto_center centres the subject itself (fitted to the canvas when it changes).
// - image_url may also be a base64 data: URI; image_id / bg_image_id are ids of results this gateway issued.
// - X-Picsart-Ratelimit-Reset-Time is seconds until the window resets; unlimited credits read 2147483647.
// - Insufficient credits answer 402 (the spec's Payment Required); rate limits 429 with Retry-After.
import { randomUUID } from 'node:crypto';
import type { Context, Hono } from 'hono';
import sharp from 'sharp';
import { GatewayError, invalidParameter } from '../../src/errors.js';
import { guardStore, type Gateway } from '../../src/gateway.js';
import type { ParsedBody } from '../../src/http/body.js';
import type { AppEnv } from '../../src/http/env.js';
import { makeJob, type JobSource, type RemovalJob, type RemovalJobInput, type RemovalResult } from '../../src/job.js';
import { currentPeriod, planFor } from '../../src/plans.js';
import type { ApiKeyRecord } from '../../src/store/types.js';
import { enumMap, readBool, readColor, readEnum, readInt } from '../fields.js';
import { admit, commonErrorHeaders } from '../mount.js';
import { decodeBase64Image, exactlyOne } from '../sources.js';
import type { CompatAdapter } from '../types.js';

const REMOVEBG = '/tools/1.0/removebg';
const BALANCE = '/tools/1.0/balance';
const RESULTS = '/tools/1.0/results';
/** Java clients read the credit header with getInt: the largest value they can hold stands for "unlimited". */
const UNLIMITED = 2_147_483_647;
const RESULT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.(?:png|jpg|webp)$/i;
const MAX_URL = 2083;
const MAX_CANVAS = 20_000;

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Request Entity Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  499: 'Client Closed Request',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** Credits known for this request (looked up once the key is known), so error responses can carry them too. */
const creditsSeen = new WeakMap<Request, number>();

async function creditsAvailable(gw: Gateway, key: ApiKeyRecord): Promise<number> {
  const allowance = planFor(gw.plans, key.plan).monthlyCredits;
  if (key.mode === 'synthetic' || allowance === null) return UNLIMITED;
  const used = await guardStore(gw.stores.usage.get(key.fingerprint, currentPeriod()), gw.config.STORE_TIMEOUT_MS);
  return Math.max(0, Math.floor(allowance - used.credits));
}

/** The gateway's X-RateLimit-* in Picsart's names; Reset-Time is the seconds left in the window. */
function picsartHeaders(c: Context<AppEnv>, credits: number | undefined, extra: Record<string, string> = {}): Record<string, string> {
  // A refused (429) request carries the limiter's headers on the error, not yet on the context.
  const rl: Record<string, string | undefined> = { ...(c.get('rateLimitHeaders') ?? {}), ...extra };
  const h: Record<string, string> = { 'X-Picsart-Correlation-Id': c.get('requestId') };
  if (rl['X-RateLimit-Limit']) h['X-Picsart-Ratelimit-Limit'] = rl['X-RateLimit-Limit'];
  if (rl['X-RateLimit-Remaining']) h['X-Picsart-Ratelimit-Available'] = rl['X-RateLimit-Remaining'];
  if (rl['X-RateLimit-Reset']) h['X-Picsart-Ratelimit-Reset-Time'] = String(Math.max(0, Number(rl['X-RateLimit-Reset']) - Math.floor(Date.now() / 1000)));
  if (credits !== undefined) h['X-Picsart-Credit-Available'] = String(credits);
  return h;
}

function renderPicsartError(err: GatewayError, c: Context<AppEnv>): Response {
  const status = err.status;
  const message = REASONS[status] ?? 'Error';
  const detail = err.code === 'missing_api_key' ? 'API key missing. Send it in the X-Picsart-API-Key header.' : err.message;
  // Picsart's 401 is the only error body that also carries the status as `code`.
  const body = status === 401 ? { code: 401, message, detail } : { message, detail };
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...commonErrorHeaders(err, c), ...picsartHeaders(c, creditsSeen.get(c.req.raw), err.headers) },
  });
}

const storeKey = (id: string) => `picsart:${id}`;

/** Bytes of a result this gateway issued to the same key (image_id / bg_image_id). */
async function issuedResult(gw: Gateway, key: ApiKeyRecord, field: string, value: string): Promise<Uint8Array> {
  const id = value.trim().split(/[/?#]/).filter(Boolean).pop() ?? '';
  const stored = RESULT_ID.test(id) ? await guardStore(gw.stores.results.get(storeKey(id)), gw.config.STORE_TIMEOUT_MS) : undefined;
  if (!stored?.bytes || stored.owner !== key.fingerprint) {
    throw new GatewayError('not_found', {
      message: `${field} "${value.slice(0, 80)}" is not an image id issued to this key, or it has expired (results are kept ${gw.config.RESULTS_TTL_SECONDS} s).`,
      details: { field },
    });
  }
  return stored.bytes;
}

/** image_url / bg_image_url: an http(s) URL, or (as Picsart also accepts) a base64 data: URI. */
function urlSource(field: string, value: string, maxBytes: number): JobSource {
  const v = value.trim();
  if (/^data:/i.test(v)) return { kind: 'bytes', bytes: decodeBase64Image(v, field, maxBytes) };
  if (v.length > MAX_URL) throw invalidParameter(field, `a URL of at most ${MAX_URL} characters`, `${v.slice(0, 40)}…`);
  if (!/^https?:\/\/[^\s]+$/i.test(v)) throw invalidParameter(field, 'an http(s) URL or a data: URI', v);
  return { kind: 'url', url: v };
}

async function imageSource(body: ParsedBody, gw: Gateway, key: ApiKeyRecord): Promise<JobSource> {
  const f = body.fields;
  const max = gw.config.MAX_UPLOAD_BYTES;
  const found: { field: string; source: JobSource }[] = [];
  const file = body.files.get('image');
  if (file) found.push({ field: 'image', source: { kind: 'bytes', bytes: file.bytes, ...(file.filename ? { filename: file.filename } : {}) } });
  // `image` as a text field (JSON bodies, sloppy forms): a URL or base64.
  else if (f.has('image')) found.push({ field: 'image', source: urlSourceOrBase64('image', f.get('image')!, max) });
  if (f.has('image_url')) found.push({ field: 'image_url', source: urlSource('image_url', f.get('image_url')!, max) });
  if (f.has('image_id')) found.push({ field: 'image_id', source: { kind: 'bytes', bytes: await issuedResult(gw, key, 'image_id', f.get('image_id')!) } });
  return exactlyOne(found, 'image, image_url or image_id');
}

function urlSourceOrBase64(field: string, value: string, maxBytes: number): JobSource {
  return /^(?:https?:|data:)/i.test(value.trim()) ? urlSource(field, value, maxBytes) : { kind: 'bytes', bytes: decodeBase64Image(value, field, maxBytes) };
}

async function backgroundBytes(c: Context<AppEnv>, body: ParsedBody, gw: Gateway, key: ApiKeyRecord): Promise<Uint8Array | undefined> {
  const f = body.fields;
  const found: { field: string; load: () => Promise<Uint8Array> }[] = [];
  const file = body.files.get('bg_image');
  if (file) found.push({ field: 'bg_image', load: async () => file.bytes });
  if (f.has('bg_image_url')) {
    const src = urlSource('bg_image_url', f.get('bg_image_url')!, gw.config.MAX_UPLOAD_BYTES);
    found.push({
      field: 'bg_image_url',
      load: async () => {
        if (src.kind === 'bytes') return src.bytes;
        if (!gw.pipeline.fetchImage) throw new GatewayError('url_not_allowed', { message: 'bg_image_url is disabled on this server.' });
        return gw.pipeline.fetchImage(src.url, c.req.raw.signal);
      },
    });
  }
  if (f.has('bg_image_id')) found.push({ field: 'bg_image_id', load: () => issuedResult(gw, key, 'bg_image_id', f.get('bg_image_id')!) });
  if (found.length > 1) {
    throw new GatewayError('multiple_images', { message: `Send one background image; got ${found.map((x) => x.field).join(', ')}.`, details: { fields: found.map((x) => x.field) } });
  }
  if (f.has('bg_color') && found.length) {
    throw new GatewayError('invalid_parameter', { message: `bg_color cannot be combined with ${found[0]!.field}: when bg_color is present the other background parameters must be empty.`, details: { field: 'bg_color' } });
  }
  return found[0]?.load();
}

/** The background image's displayed size (EXIF orientation applied): Picsart's default canvas when one is sent. */
async function imageSize(bytes: Uint8Array, gw: Gateway): Promise<{ width: number; height: number }> {
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    meta = await sharp(bytes, { limitInputPixels: gw.config.MAX_INPUT_PIXELS }).metadata();
  } catch {
    throw new GatewayError('invalid_image', { message: 'The background image could not be decoded.', details: { field: 'bg_image' } });
  }
  if (!meta.width || !meta.height) throw new GatewayError('invalid_image', { message: 'The background image has no dimensions.', details: { field: 'bg_image' } });
  const swap = (meta.orientation ?? 1) >= 5;
  return { width: swap ? meta.height : meta.width, height: swap ? meta.width : meta.height };
}

const FORMATS = enumMap(['png', 'jpg', 'webp'] as const, { jpeg: 'jpg' });
const SCALES = enumMap(['fit', 'fill'] as const);
const OUTPUTS = enumMap(['cutout', 'mask'] as const);
const SHADOWS = ['disabled', 'custom', 'bottom-right', 'bottom', 'bottom-left', 'left', 'right', 'top-left', 'top', 'top-right'] as const;
/** Preset directions, in Picsart's "10px" units (x right, y down). */
const PRESET: Record<string, [number, number]> = {
  'bottom-right': [10, 10],
  bottom: [0, 10],
  'bottom-left': [-10, 10],
  left: [-10, 0],
  right: [10, 0],
  'top-left': [-10, -10],
  top: [0, -10],
  'top-right': [10, -10],
};

function chooseModel(gw: Gateway, requested: string | undefined): string | undefined {
  if (!requested) return undefined;
  // Picsart's own model URNs (sod@10, sod@10.1, later ones) all mean "this server's default model".
  if (/^urn:air:picsart:model:picsart:sod@[\w.-]+$/i.test(requested.trim())) return undefined;
  if (gw.engine.models().includes(requested)) return requested;
  throw invalidParameter('model', `urn:air:picsart:model:picsart:sod@10 or one of ${gw.engine.models().join(', ')}`, requested);
}

function shadowOf(f: Map<string, string>): RemovalJobInput['shadow'] {
  const kind = readEnum(f, 'shadow', SHADOWS, enumMap(SHADOWS)) ?? 'disabled';
  if (kind === 'disabled') return undefined;
  let dx: number;
  let dy: number;
  if (kind === 'custom') {
    const x = readInt(f, 'shadow_offset_x', -100, 100);
    const y = readInt(f, 'shadow_offset_y', -100, 100);
    if (x === undefined || y === undefined) {
      throw new GatewayError('invalid_parameter', { message: 'shadow=custom needs both shadow_offset_x and shadow_offset_y (-100 to 100).', details: { field: x === undefined ? 'shadow_offset_x' : 'shadow_offset_y' } });
    }
    [dx, dy] = [x, y];
  } else {
    [dx, dy] = PRESET[kind]!;
  }
  const opacity = readInt(f, 'shadow_opacity', 0, 100) ?? 20;
  const blur = readInt(f, 'shadow_blur', 0, 100) ?? 50;
  return { opacity: opacity / 100, offsetX: dx / 500, offsetY: dy / 500, blur: blur / 2000, color: { r: 0, g: 0, b: 0 } };
}

async function parsePicsart(c: Context<AppEnv>, body: ParsedBody, gw: Gateway): Promise<RemovalJob> {
  const key = c.get('apiKey')!;
  creditsSeen.set(c.req.raw, await creditsAvailable(gw, key));
  if (body.kind === 'raw') {
    throw new GatewayError('unsupported_media_type', {
      message: `Send the request as multipart/form-data (or application/json with image_url); got ${c.req.header('content-type') ?? 'no Content-Type'}.`,
    });
  }
  const f = body.fields;
  const source = await imageSource(body, gw, key);
  const output = readEnum(f, 'output_type', ['cutout', 'mask'], OUTPUTS) ?? 'cutout';
  const format = readEnum(f, 'format', ['PNG', 'JPG', 'WEBP'], FORMATS) ?? 'png';
  const cutout = output === 'cutout';

  const bgBlur = readInt(f, 'bg_blur', 0, 100) ?? 0;
  const width = readInt(f, 'bg_width', 1, MAX_CANVAS);
  const height = readInt(f, 'bg_height', 1, MAX_CANVAS);
  const mode = readEnum(f, 'scale', ['fit', 'fill'], SCALES) ?? 'fit';
  const autoCenter = readBool(f, 'auto_center') ?? false;
  const strokeSize = readInt(f, 'stroke_size', 0, 100) ?? 0;
  const strokeColor = readColor(f, 'stroke_color') ?? { r: 255, g: 255, b: 255, alpha: 1 };
  const strokeOpacity = readInt(f, 'stroke_opacity', 0, 100) ?? 100;
  const shadow = shadowOf(f);
  const bgColor = readColor(f, 'bg_color');
  const model = chooseModel(gw, f.get('model'));
  // Background sources only matter for cut-outs ("only with cutout"); a mask ignores them without fetching.
  const bgImage = cutout ? await backgroundBytes(c, body, gw, key) : undefined;

  let canvas: { width?: number; height?: number } | undefined;
  if (width !== undefined || height !== undefined) canvas = { ...(width ? { width } : {}), ...(height ? { height } : {}) };
  if (bgImage) {
    const size = await imageSize(bgImage, gw);
    canvas = { width: width ?? Math.min(size.width, MAX_CANVAS), height: height ?? Math.min(size.height, MAX_CANVAS) };
  }
  if (canvas?.width && canvas.height && canvas.width * canvas.height > gw.config.MAX_OUTPUT_PIXELS) {
    throw new GatewayError('invalid_parameter', { message: `bg_width × bg_height must be at most ${gw.config.MAX_OUTPUT_PIXELS} pixels.`, details: { field: 'bg_width' } });
  }
  const centre = { x: 0.5, y: 0.5 };
  let layout: RemovalJobInput['layout'];
  // auto_center is documented for cut-outs only.
  if (canvas) layout = { ...canvas, mode, scale: 1, position: centre, frame: autoCenter && cutout ? 'subject' : 'image' };
  else if (autoCenter && cutout) layout = { position: centre };

  return makeJob({
    source,
    ...(model ? { model } : {}),
    format,
    channels: cutout ? 'rgba' : 'alpha',
    size: 'full',
    ...(layout ? { layout } : {}),
    ...(cutout && bgColor ? { bgColor } : {}),
    ...(bgImage ? { bgImage } : {}),
    ...(cutout && bgBlur > 0 ? { bgBlur: bgBlur / 2 } : {}),
    ...(cutout && strokeSize > 0 ? { stroke: { width: strokeSize, color: { ...strokeColor, alpha: strokeColor.alpha * (strokeOpacity / 100) } } } : {}),
    ...(cutout && shadow ? { shadow } : {}),
  });
}

function resultBase(c: Context<AppEnv>, gw: Gateway): string {
  const base = (gw.config.PUBLIC_BASE_URL ?? new URL(c.req.url).origin).replace(/\/$/, '');
  const prefix = c.req.path.startsWith('/compat/picsart') ? '/compat/picsart' : '';
  return `${base}${prefix}${RESULTS}`;
}

async function renderPicsart(result: RemovalResult, job: RemovalJob, c: Context<AppEnv>, gw: Gateway): Promise<Response> {
  const key = c.get('apiKey')!;
  const id = `${randomUUID()}.${result.format}`;
  await guardStore(
    gw.stores.results.put(
      storeKey(id),
      { status: 'done', owner: key.fingerprint, bytes: result.bytes, contentType: result.contentType, meta: { width: result.width, height: result.height, output: job.channels === 'alpha' ? 'mask' : 'cutout' } },
      gw.config.RESULTS_TTL_SECONDS,
    ),
    gw.config.STORE_TIMEOUT_MS,
  );
  const credits = await creditsAvailable(gw, key).catch(() => creditsSeen.get(c.req.raw));
  return c.json({ status: 'success', data: { id, url: `${resultBase(c, gw)}/${id}` } }, 200, { ...picsartHeaders(c, credits), 'X-Request-Id': c.get('requestId') });
}

const methodNotAllowed = (allow: string) => () => {
  throw new GatewayError('method_not_allowed', { message: `Use ${allow} for this endpoint.`, headers: { Allow: allow } });
};

export const picsart: CompatAdapter = {
  name: 'picsart',
  readApiKey: (c) => c.req.header('x-picsart-api-key')?.trim() || undefined,
  renderError: renderPicsartError,
  routes: [{ method: 'POST', path: REMOVEBG, parse: ({ c, body, gw }) => parsePicsart(c, body, gw), render: renderPicsart }],
  extraRoutes(app: Hono<AppEnv>, gw: Gateway) {
    app.get(BALANCE, async (c) => {
      await admit(c, gw, picsart, false);
      const credits = await creditsAvailable(gw, c.get('apiKey')!);
      creditsSeen.set(c.req.raw, credits);
      return c.json({ credits }, 200, { ...picsartHeaders(c, credits), 'X-Request-Id': c.get('requestId') });
    });
    // Result URLs are capabilities: like Picsart's CDN links they need no key, and vanish when the result expires.
    app.get(`${RESULTS}/:id`, async (c) => {
      const id = c.req.param('id');
      const stored = RESULT_ID.test(id) ? await guardStore(gw.stores.results.get(storeKey(id)), gw.config.STORE_TIMEOUT_MS) : undefined;
      if (!stored?.bytes) throw new GatewayError('not_found', { message: `No result ${id.slice(0, 80)}: it never existed or has expired (results are kept ${gw.config.RESULTS_TTL_SECONDS} s).` });
      return new Response(stored.bytes, {
        headers: {
          'Content-Type': stored.contentType ?? 'application/octet-stream',
          'Content-Length': String(stored.bytes.byteLength),
          'Cache-Control': 'private, max-age=60',
          'X-Picsart-Correlation-Id': c.get('requestId'),
          'X-Request-Id': c.get('requestId'),
        },
      });
    });
    app.all(REMOVEBG, methodNotAllowed('POST'));
    app.all(BALANCE, methodNotAllowed('GET'));
  },
  prefixedRoutes(app: Hono<AppEnv>) {
    // Under /compat/picsart/ every path is Picsart's, so unknown ones answer {"message","detail"}, not the native envelope.
    app.all('*', (c) => {
      throw new GatewayError('not_found', { message: `No route for ${c.req.method} ${c.req.path}.` });
    });
  },
};
