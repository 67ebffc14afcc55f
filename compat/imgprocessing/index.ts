// compat/imgprocessing/index.ts
// IMG Processing's images API (seed 002, api.img-processing.com/v1): images are resources created by upload or URL,
// remove-background creates a NEW PNG image from one, and images can be fetched, downloaded, published, deleted.
// Every choice where the vendor's docs are silent is listed in compat/README.md ("IMG Processing").
//
// What the vendor confirms (docs, official SDKs) and we follow: x-api-key; POST /v1/images (JSON name + url) and
// POST /v1/images/upload (multipart name + image), 201 with the Image object; GET /v1/images/{id} 200;
// GET /v1/images/{id}/download (the bytes, image/png|jpeg|webp); DELETE /v1/images/{id}; POST …/publish and
// …/unpublish; POST …/remove-background (optional name 1–30, default the source's name) 201 with a new PNG image;
// errors {"type": "https://docs.img-processing.com/errors/<slug>", "error", "status", "message", "errors"?}, body
// validation 422 "Validation Error"; an empty body with Content-Type application/json is a 400.
import { STATUS_CODES } from 'node:http';
import type { Context, Hono } from 'hono';
import sharp, { type Metadata } from 'sharp';
import { GatewayError } from '../../src/errors.js';
import type { Gateway } from '../../src/gateway.js';
import { readNativeKey } from '../../src/http/auth.js';
import type { ParsedBody } from '../../src/http/body.js';
import type { AppEnv } from '../../src/http/env.js';
import { makeJob } from '../../src/job.js';
import { sniffImageType } from '../../src/pipeline/sniff.js';
import { admit, commonErrorHeaders, execute } from '../mount.js';
import type { CompatAdapter } from '../types.js';
import { CONTENT_TYPE, ImageStore, type ImageFormat, type StoredImage } from './images.js';

const NAME_MAX = 30;
const PUBLIC_PATH = '/storage/images';
const PREFIX = '/compat/imgprocessing';
/** The vendor's billing counts a background removal as two operations, every other 201 as one. */
const REMOVAL_OPERATIONS = 2;

/** A body-validation failure, answered like the vendor's (Fastify/ajv) 422 with ajv-style messages. */
function validationError(...errors: string[]): GatewayError {
  return new GatewayError('invalid_parameter', { message: errors.join(', '), details: { imgprocStatus: 422, errors } });
}

function notFound(id: string): GatewayError {
  return new GatewayError('not_found', { message: `Image with id ${id.slice(0, 80)} not found.` });
}

const slug = (phrase: string) => phrase.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

function renderImgprocError(err: GatewayError, c: Context<AppEnv>): Response {
  const status = typeof err.details.imgprocStatus === 'number' ? err.details.imgprocStatus : err.status;
  const error = status === 422 ? 'Validation Error' : (STATUS_CODES[status] ?? (status === 499 ? 'Client Closed Request' : 'Error'));
  const errors = Array.isArray(err.details.errors) ? (err.details.errors as string[]) : undefined;
  const body = { type: `https://docs.img-processing.com/errors/${slug(error)}`, error, status, message: err.message, ...(errors ? { errors } : {}) };
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...commonErrorHeaders(err, c) } });
}

/** X-Image-Processing-Usage: the operations the vendor would bill; test (synthetic) keys are never billed. */
function usage(c: Context<AppEnv>, operations: number): Record<string, string> {
  return { 'X-Image-Processing-Usage': c.get('apiKey')?.mode === 'synthetic' ? '0' : String(operations), 'X-Request-Id': c.get('requestId') };
}

function mediaType(c: Context<AppEnv>): string {
  return (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
}

/** What Fastify (the vendor's server) refuses before any route runs: an empty JSON body, or a body it cannot parse. */
function checkBody(c: Context<AppEnv>, body: ParsedBody): void {
  const type = mediaType(c);
  if ((type === 'application/json' || type.endsWith('+json')) && body.kind === 'none') {
    throw new GatewayError('invalid_body', { message: "Body cannot be empty when content-type is set to 'application/json'" });
  }
  if (body.kind === 'raw') throw new GatewayError('unsupported_media_type', { message: `Unsupported Media Type: ${type || 'no Content-Type'}` });
}

/** `name`: 1–30 characters (code points, as ajv counts them); JSON keeps "" and non-strings, so read it there. */
function readName(body: ParsedBody, required: boolean): { name?: string; errors: string[] } {
  const value: unknown = body.kind === 'json' ? body.json?.name : body.fields.get('name');
  if (value === undefined) return { errors: required ? ["body must have required property 'name'"] : [] };
  if (typeof value !== 'string') return { errors: ['body/name must be string'] };
  const length = [...value].length;
  if (length < 1) return { errors: ['body/name must NOT have fewer than 1 characters'] };
  if (length > NAME_MAX) return { errors: [`body/name must NOT have more than ${NAME_MAX} characters`] };
  return { name: value, errors: [] };
}

interface Described {
  format: ImageFormat;
  width: number;
  height: number;
}

/** The vendor takes jpeg, png and webp only (its Image object has no other format). */
async function describe(bytes: Uint8Array, field: string, gw: Gateway): Promise<Described> {
  const type = sniffImageType(bytes);
  if (type !== 'jpeg' && type !== 'png' && type !== 'webp') {
    throw validationError(`body/${field} must be a valid image format (jpeg, png, webp)${type ? `; got ${type}` : ''}`);
  }
  let meta: Metadata;
  try {
    meta = await sharp(bytes).metadata();
  } catch {
    throw validationError(`body/${field} could not be decoded as ${type}`);
  }
  // Displayed size: a JPEG rotated by EXIF reports the size a viewer (and the cut-out) has.
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (!width || !height) throw validationError(`body/${field} could not be decoded as ${type}`);
  if (width * height > gw.config.MAX_INPUT_PIXELS) throw validationError(`body/${field} must have at most ${gw.config.MAX_INPUT_PIXELS} pixels`);
  return { format: type, width, height };
}

function publicBase(c: Context<AppEnv>, gw: Gateway): string {
  const base = (gw.config.PUBLIC_BASE_URL ?? new URL(c.req.url).origin).replace(/\/$/, '');
  return `${base}${c.req.path.startsWith(`${PREFIX}/`) ? PREFIX : ''}${PUBLIC_PATH}`;
}

/** `url` of POST /v1/images: a URL this gateway published is read from the store, anything else is fetched. */
async function loadUrl(c: Context<AppEnv>, gw: Gateway, images: ImageStore, value: unknown): Promise<Uint8Array> {
  if (typeof value !== 'string') throw validationError('body/url must be string');
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw validationError('body/url must match format "uri"');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw validationError('body/url must be an http(s) URL');
  const own = new RegExp(`${PUBLIC_PATH}/(image_[a-z0-9]{24})/?$`).exec(url.pathname)?.[1];
  if (own) {
    const image = await images.find(own);
    const published = image ? await images.publicUrl(own) : null;
    if (image && published && published === url.href.replace(/\/$/, '')) return image.bytes;
  }
  if (!gw.pipeline.fetchImage) throw new GatewayError('url_not_allowed', { message: 'Creating images from a URL is disabled on this server.' });
  return gw.pipeline.fetchImage(url.href, c.req.raw.signal);
}

/** POST /v1/images (JSON url, or a multipart upload) and POST /v1/images/upload (multipart only). */
async function createImage(c: Context<AppEnv>, gw: Gateway, images: ImageStore, uploadOnly: boolean): Promise<Response> {
  const body = (await admit(c, gw, imgprocessing, true))!;
  checkBody(c, body);
  const { name, errors } = readName(body, true);
  const file = body.files.get('image');
  const url = body.kind === 'json' ? body.json?.url : body.fields.get('url');
  if (!file && (uploadOnly || url === undefined)) errors.push(uploadOnly ? "body must have required property 'image'" : "body must have required property 'url'");
  if (errors.length || !name) throw validationError(...errors);
  const bytes = file ? file.bytes : await loadUrl(c, gw, images, url);
  const facts = await describe(bytes, file ? 'image' : 'url', gw);
  const image = await images.create(c.get('apiKey')!.fingerprint, bytes, { name, ...facts });
  return c.json(await images.toObject(image), 201, usage(c, 1));
}

async function owned(c: Context<AppEnv>, images: ImageStore): Promise<StoredImage> {
  const id = c.req.param('image_id') ?? '';
  const image = await images.get(id, c.get('apiKey')!.fingerprint);
  if (!image) throw notFound(id);
  return image;
}

async function removeBackground(c: Context<AppEnv>, gw: Gateway, images: ImageStore): Promise<Response> {
  const body = (await admit(c, gw, imgprocessing, true))!;
  checkBody(c, body);
  // The vendor validates the body before it looks the image up.
  const { name, errors } = readName(body, false);
  if (errors.length) throw validationError(...errors);
  const source = await owned(c, images);
  const job = makeJob({ source: { kind: 'bytes', bytes: source.bytes }, format: 'png', channels: 'rgba', size: 'full' });
  const result = await execute(c, gw, job, body.bytesIn);
  const created = await images.create(source.owner, result.bytes, { name: name ?? source.object.name, width: result.width, height: result.height, format: 'png' });
  return c.json(await images.toObject(created), 201, usage(c, REMOVAL_OPERATIONS));
}

function bytesResponse(c: Context<AppEnv>, image: StoredImage, cache: string): Response {
  return new Response(image.bytes, {
    headers: {
      'Content-Type': CONTENT_TYPE[image.object.format],
      'Content-Length': String(image.bytes.byteLength),
      'Cache-Control': cache,
      'X-Request-Id': c.get('requestId'),
    },
  });
}

export const imgprocessing: CompatAdapter = {
  name: 'imgprocessing',
  readApiKey: (c) => readNativeKey(c),
  renderError: renderImgprocError,
  routes: [],
  extraRoutes(app: Hono<AppEnv>, gw: Gateway) {
    const images = new ImageStore(gw);

    app.post('/v1/images', (c) => createImage(c, gw, images, false));
    app.post('/v1/images/upload', (c) => createImage(c, gw, images, true));

    app.get('/v1/images/:image_id', async (c) => {
      await admit(c, gw, imgprocessing, false);
      return c.json(await images.toObject(await owned(c, images)), 200, { 'X-Request-Id': c.get('requestId') });
    });

    app.get('/v1/images/:image_id/download', async (c) => {
      await admit(c, gw, imgprocessing, false);
      return bytesResponse(c, await owned(c, images), 'private, no-store');
    });

    app.delete('/v1/images/:image_id', async (c) => {
      await admit(c, gw, imgprocessing, false);
      await images.delete((await owned(c, images)).object.id);
      return c.body(null, 204, { 'X-Request-Id': c.get('requestId') });
    });

    app.post('/v1/images/:image_id/remove-background', (c) => removeBackground(c, gw, images));

    app.post('/v1/images/:image_id/publish', async (c) => {
      checkBody(c, (await admit(c, gw, imgprocessing, true))!);
      const image = await owned(c, images);
      // Publishing twice keeps the first URL: links already shared stay valid.
      if (!(await images.publicUrl(image.object.id))) await images.publish(image, `${publicBase(c, gw)}/${image.object.id}`);
      return c.json(await images.toObject(image), 201, usage(c, 1));
    });

    app.post('/v1/images/:image_id/unpublish', async (c) => {
      checkBody(c, (await admit(c, gw, imgprocessing, true))!);
      const image = await owned(c, images);
      await images.unpublish(image.object.id);
      return c.json(await images.toObject(image), 201, usage(c, 1));
    });

    // The published URL needs no key, like the vendor's CDN link; it stops working at once on unpublish or delete.
    app.get(`${PUBLIC_PATH}/:image_id`, async (c) => {
      const id = c.req.param('image_id');
      const image = await images.find(id);
      if (!image || !(await images.publicUrl(id))) throw notFound(id);
      return bytesResponse(c, image, 'no-store');
    });
  },
};
