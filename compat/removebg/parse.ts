// compat/removebg/parse.ts
// remove.bg's POST /v1.0/removebg fields (compat-apis §1, every one) → the canonical job.
// Values are case-insensitive; empty strings are "unset" (the body parser drops them); booleans arrive as strings.
import sharp from 'sharp';
import { GatewayError, invalidParameter } from '../../src/errors.js';
import { guardStore, type Gateway } from '../../src/gateway.js';
import type { ParsedBody } from '../../src/http/body.js';
import { makeJob, type JobSource, type OutputFormat, type RemovalJob, type RemovalJobInput, type Rgba, type SizeName } from '../../src/job.js';
import { currentPeriod, planFor } from '../../src/plans.js';
import type { ApiKeyRecord } from '../../src/store/types.js';
import { readBool, readColor } from '../fields.js';
import { decodeBase64Image, exactlyOne } from '../sources.js';

const MP = 1_000_000;

/** What the renderer needs that the canonical job does not carry. */
export interface RemoveBgMeta {
  /** X-Type value; absent when type_level=none. */
  xType?: string;
}

const meta = new WeakMap<RemovalJob, RemoveBgMeta>();
export const metaOf = (job: RemovalJob): RemoveBgMeta => meta.get(job) ?? {};

// ---- size ---------------------------------------------------------------------------------------------------------

type RbSize = 'preview' | 'medium' | 'hd' | 'full' | '50MP' | 'auto';
const SIZE_ALIASES: Record<string, RbSize> = {
  preview: 'preview',
  small: 'preview',
  regular: 'preview',
  medium: 'medium',
  hd: 'hd',
  full: 'full',
  '4k': 'full',
  '50mp': '50MP',
  auto: 'auto',
};
const SIZE_NAMES = 'preview, small, regular, medium, hd, full, 4k, 50MP, auto';

// ---- type ---------------------------------------------------------------------------------------------------------

const TYPES = ['auto', 'person', 'product', 'car', 'animal', 'graphic', 'transportation', 'car_interior', 'car_part', 'graphics', 'other'] as const;
type RbType = (typeof TYPES)[number];
/** type_level=1 classes (person, product, animal, car, other). */
const LEVEL1: Record<RbType, string> = {
  auto: 'other',
  person: 'person',
  product: 'product',
  animal: 'animal',
  car: 'car',
  car_interior: 'car',
  car_part: 'car',
  transportation: 'car',
  graphic: 'other',
  graphics: 'other',
  other: 'other',
};
/** type_level=2 / latest add car_interior, car_part, transportation and graphics. */
const LEVEL2: Record<RbType, string> = { ...LEVEL1, car_interior: 'car_interior', car_part: 'car_part', transportation: 'transportation', graphic: 'graphics', graphics: 'graphics' };

// ---- shadow -------------------------------------------------------------------------------------------------------

type ShadowKind = 'car' | '3D' | 'drop';
/** shadow_type=auto per subject type (compat-apis §1). */
const AUTO_SHADOW: Record<string, ShadowKind> = { car: 'car', product: 'drop', person: '3D', animal: 'drop', transportation: '3D', graphic: 'drop', other: 'drop' };
/** Shadow kinds on the canonical shadow: drop = offset and blurred; car = flat under the subject; 3D = a squashed cast shadow. */
const SHADOWS: Record<ShadowKind, NonNullable<RemovalJobInput['shadow']>> = {
  drop: { offsetX: 0.025, offsetY: 0.035, blur: 0.02, squash: 1 },
  car: { offsetX: 0, offsetY: 0.02, blur: 0.02, squash: 0.1 },
  '3D': { offsetX: 0.12, offsetY: 0, blur: 0.03, squash: 0.3 },
};

/** The subject-type key for per-type fields (`shadow_type[car]`), from the requested type. */
function shadowKey(type: RbType): string {
  if (type === 'auto') return 'other';
  if (type === 'graphics') return 'graphic';
  if (type === 'car_interior' || type === 'car_part') return 'car';
  return type;
}

// ---- small readers ------------------------------------------------------------------------------------------------

const LENGTH = /^(\d+(?:\.\d+)?)\s*(px|%)?$/i;

/** `30px`, `10%` or a bare number (pixels). */
function length(token: string, field: string, allowed: string): { px: number } | { fraction: number } {
  const m = LENGTH.exec(token);
  if (!m) throw invalidParameter(field, allowed, token);
  const n = Number(m[1]);
  if (m[2] === '%') {
    if (n > 100) throw invalidParameter(field, allowed, token);
    return { fraction: n / 100 };
  }
  return { px: n };
}

function tokens(value: string): string[] {
  return value.trim().split(/[\s,]+/).filter(Boolean);
}

function percent(token: string, field: string, allowed: string, min = 0, max = 100): number {
  const m = /^(\d+(?:\.\d+)?)\s*%?$/.exec(token);
  const n = m ? Number(m[1]) : NaN;
  if (!Number.isFinite(n) || n < min || n > max) throw invalidParameter(field, allowed, token);
  return n / 100;
}

/** A per-type field: `name[type]` (form/multipart), `{"name": {"type": …}}` (JSON), then plain `name`. */
function perType(body: ParsedBody, name: string, key: string): string | undefined {
  const bracketed = body.fields.get(`${name}[${key}]`);
  if (bracketed) return bracketed;
  const nested = body.json?.[name];
  if (nested && typeof nested === 'object' && !Array.isArray(nested)) {
    const v = (nested as Record<string, unknown>)[key];
    if (typeof v === 'string' && v.trim()) return v;
    if (typeof v === 'number') return String(v);
  }
  return body.fields.get(name);
}

// ---- image sources ------------------------------------------------------------------------------------------------

const ACCEPTED = 'image_file, image_file_b64 or image_url';

function readSource(body: ParsedBody, maxBytes: number): JobSource {
  const found: { field: string; source: JobSource }[] = [];
  const file = body.files.get('image_file');
  if (file) found.push({ field: 'image_file', source: { kind: 'bytes', bytes: file.bytes, ...(file.filename ? { filename: file.filename } : {}) } });
  // Not documented: some clients put the base64 string under image_file in JSON or form bodies.
  const fileText = file ? undefined : body.fields.get('image_file');
  if (fileText) found.push({ field: 'image_file', source: { kind: 'bytes', bytes: decodeBase64Image(fileText, 'image_file', maxBytes) } });
  const b64 = body.fields.get('image_file_b64');
  if (b64) found.push({ field: 'image_file_b64', source: { kind: 'bytes', bytes: decodeBase64Image(b64, 'image_file_b64', maxBytes) } });
  const url = body.fields.get('image_url')?.trim();
  if (url) found.push({ field: 'image_url', source: { kind: 'url', url } });
  // Not documented by remove.bg; accepted so a raw image POST works too.
  if (found.length === 0 && body.raw) found.push({ field: 'body', source: { kind: 'bytes', bytes: body.raw.bytes } });
  return exactlyOne(found, ACCEPTED);
}

/** Oriented pixel count from the header alone; undefined when unreadable (the pipeline then reports it). */
async function pixelsOf(bytes: Uint8Array): Promise<number | undefined> {
  try {
    const m = await sharp(bytes, { limitInputPixels: false }).metadata();
    if (!m.width || !m.height) return undefined;
    return m.width * (m.pageHeight ?? m.height);
  } catch {
    return undefined;
  }
}

/** Credits the key can still spend this period; Infinity when unlimited or never billed. */
async function creditsLeft(gw: Gateway, key: ApiKeyRecord): Promise<number> {
  const plan = planFor(gw.plans, key.plan);
  if (key.mode === 'synthetic' || plan.monthlyCredits === null) return Infinity;
  const usage = await guardStore(gw.stores.usage.get(key.fingerprint, currentPeriod()), gw.config.STORE_TIMEOUT_MS);
  return plan.monthlyCredits - usage.credits;
}

async function fetchBackground(gw: Gateway, url: string, signal: AbortSignal): Promise<Uint8Array> {
  if (!gw.pipeline.fetchImage) throw new GatewayError('url_not_allowed', { message: 'bg_image_url is disabled on this server.', details: { field: 'bg_image_url' } });
  try {
    return await gw.pipeline.fetchImage(url, signal);
  } catch (err) {
    if (err instanceof GatewayError) {
      throw new GatewayError(err.code, { message: err.message.replace(/^The image URL/, 'bg_image_url').replace('image_url', 'bg_image_url'), details: { ...err.details, field: 'bg_image_url' }, cause: err });
    }
    throw err;
  }
}

// ---- the job ------------------------------------------------------------------------------------------------------

export interface ParseDeps {
  gw: Gateway;
  key: ApiKeyRecord;
  signal: AbortSignal;
}

export async function parseRemoveBgJob(body: ParsedBody, { gw, key, signal }: ParseDeps): Promise<RemovalJob> {
  const f = body.fields;
  let source = readSource(body, gw.config.MAX_UPLOAD_BYTES);

  // type / type_level → X-Type (we run one general model: no classifier, so `auto` reports "other").
  const typeRaw = f.get('type')?.trim().toLowerCase();
  if (typeRaw !== undefined && !(TYPES as readonly string[]).includes(typeRaw)) throw invalidParameter('type', `one of ${TYPES.join(', ')}`, typeRaw);
  const type = (typeRaw ?? 'auto') as RbType;
  const level = f.get('type_level')?.trim().toLowerCase() ?? '1';
  if (!['none', '1', '2', 'latest'].includes(level)) throw invalidParameter('type_level', 'one of none, 1, 2, latest', level);
  const xType = level === 'none' ? undefined : level === '1' ? LEVEL1[type] : LEVEL2[type];

  // channels
  const channelsRaw = f.get('channels')?.trim().toLowerCase();
  if (channelsRaw !== undefined && channelsRaw !== 'rgba' && channelsRaw !== 'alpha') throw invalidParameter('channels', 'one of rgba, alpha', channelsRaw);
  const channels = (channelsRaw ?? 'rgba') as 'rgba' | 'alpha';

  // backgrounds: bg_color, bg_image_url and bg_image_file exclude each other.
  const bgColor: Rgba | undefined = readColor(f, 'bg_color');
  const bgUrl = f.get('bg_image_url')?.trim();
  const bgFile = body.files.get('bg_image_file');
  const bgGiven = [bgColor && 'bg_color', bgUrl && 'bg_image_url', bgFile && 'bg_image_file'].filter(Boolean);
  if (bgGiven.length > 1) {
    throw new GatewayError('invalid_parameter', { message: `Invalid parameters: ${bgGiven.join(' and ')} are mutually exclusive; send only one background.`, details: { fields: bgGiven } });
  }

  // format: auto = PNG when the result has transparency, else JPG. Decided here from the request: an opaque
  // background (bg_color without alpha, a background image) gives JPG; a cut-out or a matte gives PNG.
  const formatRaw = f.get('format')?.trim().toLowerCase() ?? 'auto';
  const FORMATS: Record<string, OutputFormat | 'auto'> = { auto: 'auto', png: 'png', jpg: 'jpg', jpeg: 'jpg', webp: 'webp', zip: 'zip' };
  const requested = FORMATS[formatRaw];
  if (!requested) throw invalidParameter('format', 'one of auto, png, jpg, webp, zip', formatRaw);
  const opaqueBackground = (bgColor !== undefined && bgColor.alpha >= 1) || bgUrl !== undefined || bgFile !== undefined;
  const format: OutputFormat = requested === 'auto' ? (channels === 'rgba' && opaqueBackground ? 'jpg' : 'png') : requested;

  // size, its caps and its price.
  const sizeRaw = f.get('size')?.trim().toLowerCase() ?? 'preview';
  const rbSize = SIZE_ALIASES[sizeRaw];
  if (!rbSize) throw invalidParameter('size', `one of ${SIZE_NAMES}`, sizeRaw);
  const pngCap = format === 'png' ? 10 * MP : Infinity;
  let size: SizeName;
  let maxPixels: number | undefined;
  switch (rbSize) {
    case 'preview':
    case 'medium':
    case 'hd':
      size = rbSize;
      break;
    case 'full':
      size = 'full';
      maxPixels = Math.min(25 * MP, pngCap);
      break;
    case '50MP':
      size = 'full';
      maxPixels = Math.min(50 * MP, pngCap);
      break;
    case 'auto': {
      // "Highest resolution allowed by the image and the credits, at most 25 MP": an image that is already
      // preview-sized, or a key with less than one credit left, gets (and pays for) a preview.
      if (source.kind === 'url') source = { kind: 'bytes', bytes: await fetchSource(gw, source.url, signal) };
      const pixels = await pixelsOf(source.bytes);
      const left = await creditsLeft(gw, key);
      if ((pixels !== undefined && pixels <= 250_000) || (left < 1 && left >= 0.25)) size = 'preview';
      else {
        size = 'full';
        maxPixels = Math.min(25 * MP, pngCap);
      }
      break;
    }
  }

  // roi "x1 y1 x2 y2", each px or %.
  let roi: RemovalJobInput['roi'];
  const roiRaw = f.get('roi');
  if (roiRaw !== undefined) {
    const allowed = 'four values "x1 y1 x2 y2", each in px or % (e.g. "0% 0% 100% 100%")';
    const t = tokens(roiRaw);
    if (t.length !== 4) throw invalidParameter('roi', allowed, roiRaw);
    const [x1, y1, x2, y2] = t.map((v) => length(v, 'roi', allowed)) as [ReturnType<typeof length>, ReturnType<typeof length>, ReturnType<typeof length>, ReturnType<typeof length>];
    const sameUnit = (a: typeof x1, b: typeof x1) => ('px' in a && 'px' in b ? a.px >= b.px : 'fraction' in a && 'fraction' in b ? a.fraction >= b.fraction : false);
    if (sameUnit(x1, x2) || sameUnit(y1, y2)) throw invalidParameter('roi', `${allowed} with x1 < x2 and y1 < y2`, roiRaw);
    roi = { x1, y1, x2, y2 };
  }

  // crop and crop_margin (1, 2 or 4 values; at most 500 px or 50 % per side; only with crop=true).
  const crop = readBool(f, 'crop') ?? false;
  let cropMargin: RemovalJobInput['cropMargin'];
  const marginRaw = f.get('crop_margin');
  if (marginRaw !== undefined) {
    const allowed = '1, 2 or 4 values in px or % (e.g. "30px", "10%", "10px 20px")';
    const t = tokens(marginRaw);
    if (![1, 2, 4].includes(t.length)) throw invalidParameter('crop_margin', allowed, marginRaw);
    const v = t.map((x) => {
      const l = length(x, 'crop_margin', allowed);
      return 'px' in l ? { px: Math.min(500, Math.round(l.px)), fraction: 0 } : { px: 0, fraction: Math.min(0.5, l.fraction) };
    });
    const [top, right, bottom, left] = v.length === 1 ? [v[0]!, v[0]!, v[0]!, v[0]!] : v.length === 2 ? [v[0]!, v[1]!, v[0]!, v[1]!] : (v as [typeof v[0], typeof v[0], typeof v[0], typeof v[0]]);
    if (crop) cropMargin = { px: 0, fraction: 0, sides: { top: top!, right: right!, bottom: bottom!, left: left! } };
  }

  // scale and position → the subject on the canvas.
  let layout: RemovalJobInput['layout'];
  const scaleRaw = f.get('scale')?.trim().toLowerCase();
  const positionRaw = f.get('position')?.trim().toLowerCase();
  let scale: number | undefined;
  if (scaleRaw !== undefined && scaleRaw !== 'original') scale = percent(scaleRaw, 'scale', '"original" or a percentage from 10% to 100%', 10, 100);
  let position: { x: number; y: number } | undefined;
  if (positionRaw !== undefined && positionRaw !== 'original') {
    const allowed = '"original", "center", or one or two percentages (horizontal vertical) from 0% to 100%';
    const t = tokens(positionRaw).map((v) => (v === 'center' || v === 'centre' ? 0.5 : percent(v, 'position', allowed)));
    if (t.length < 1 || t.length > 2) throw invalidParameter('position', allowed, positionRaw);
    position = { x: t[0]!, y: t[1] ?? t[0]! };
  } else if (positionRaw === undefined && scale !== undefined) {
    // "Scaling the subject implies position=center (unless specified otherwise)."
    position = { x: 0.5, y: 0.5 };
  }
  if (scale !== undefined || position !== undefined) {
    layout = { mode: 'fit', ...(scale !== undefined ? { scale } : {}), ...(position ? { position } : {}) };
  }

  // Shadows: shadow_type / shadow_opacity (also per subject type), and the deprecated add_shadow (= car shadow).
  const key2 = shadowKey(type);
  let kind: ShadowKind | undefined;
  const shadowRaw = perType(body, 'shadow_type', key2)?.trim().toLowerCase();
  if (shadowRaw !== undefined) {
    const map: Record<string, ShadowKind | 'none' | 'auto'> = { car: 'car', '3d': '3D', drop: 'drop', none: 'none', auto: 'auto' };
    const s = map[shadowRaw];
    if (!s) throw invalidParameter('shadow_type', 'one of car, 3D, drop, none, auto', shadowRaw);
    kind = s === 'none' ? undefined : s === 'auto' ? AUTO_SHADOW[key2] : s;
  } else if (readBool(f, 'add_shadow')) {
    // add_shadow only ever shadowed cars; an unclassified (auto) subject gets it too, since we cannot tell.
    if (type === 'auto' || key2 === 'car') kind = 'car';
  }
  let shadow: RemovalJobInput['shadow'];
  if (kind) {
    const opacityRaw = perType(body, 'shadow_opacity', key2)?.trim().toLowerCase();
    const opacity = opacityRaw === undefined || opacityRaw === 'auto' ? (kind === 'car' ? 0.9 : 0.5) : percent(opacityRaw, 'shadow_opacity', '"auto" or an integer from 0 to 100');
    shadow = { ...SHADOWS[kind], opacity };
  }

  const semitransparency = readBool(f, 'semitransparency') ?? true;
  const bgImage = bgFile ? bgFile.bytes : bgUrl ? await fetchBackground(gw, bgUrl, signal) : undefined;

  const job = makeJob({
    source,
    format,
    channels,
    size,
    ...(maxPixels !== undefined ? { maxPixels } : {}),
    crop,
    ...(cropMargin ? { cropMargin } : {}),
    ...(bgColor ? { bgColor } : {}),
    ...(bgImage ? { bgImage } : {}),
    // remove.bg's colours are edge-corrected (its zip says so): solve the soft edges' true foreground colour.
    foregroundEstimation: true,
    semitransparency,
    ...(roi ? { roi } : {}),
    ...(layout ? { layout } : {}),
    ...(shadow ? { shadow } : {}),
  });
  meta.set(job, { ...(xType ? { xType } : {}) });
  return job;
}

async function fetchSource(gw: Gateway, url: string, signal: AbortSignal): Promise<Uint8Array> {
  if (!gw.pipeline.fetchImage) throw new GatewayError('url_not_allowed', { message: 'image_url is disabled on this server.', details: { field: 'image_url' } });
  return gw.pipeline.fetchImage(url, signal);
}
