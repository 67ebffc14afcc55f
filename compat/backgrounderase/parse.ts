// compat/backgrounderase/parse.ts
// Seed 003's fields → the canonical job.
import type { ParsedBody } from '../../src/http/body.js';
import { makeJob, type JobSource, type OutputFormat, type RemovalJob, type SizeName } from '../../src/job.js';
import { enumMap, readBool, readColor, readEnum } from '../fields.js';
import { decodeBase64Image, exactlyOne } from '../sources.js';

const FORMATS = ['png', 'jpg', 'jpeg', 'webp', 'bmp', 'tiff', 'tif', 'gif'] as const;
const formatMap = enumMap<OutputFormat>(['png', 'jpg', 'webp', 'bmp', 'tiff', 'gif'], { jpeg: 'jpg', tif: 'tiff' });
const SIZES = ['preview', 'medium', 'hd', 'full', 'auto'] as const;
const sizeMap = enumMap<SizeName>([...SIZES]);
const CHANNELS = ['rgba', 'alpha'] as const;
const channelMap = enumMap<'rgba' | 'alpha'>([...CHANNELS]);

const legacyMaskJobs = new WeakSet<RemovalJob>();

/** Jobs from the legacy JSON `image` field answer with `{"mask": base64 PNG}`. */
export function isLegacyMaskJob(job: RemovalJob): boolean {
  return legacyMaskJobs.has(job);
}

const ACCEPTED = 'image_file, image_url, image_base64, image_file_b64, image (legacy JSON) or a raw image body';

export function parseNativeJob(body: ParsedBody, maxUploadBytes: number): RemovalJob {
  const found: { field: string; source: JobSource }[] = [];
  const file = body.files.get('image_file');
  if (file) found.push({ field: 'image_file', source: { kind: 'bytes', bytes: file.bytes, ...(file.filename ? { filename: file.filename } : {}) } });
  const url = body.fields.get('image_url');
  if (url) found.push({ field: 'image_url', source: { kind: 'url', url: url.trim() } });
  for (const field of ['image_base64', 'image_file_b64'] as const) {
    const v = body.fields.get(field);
    if (v) found.push({ field, source: { kind: 'bytes', bytes: decodeBase64Image(v, field, maxUploadBytes) } });
  }
  const legacy = body.kind === 'json' ? body.fields.get('image') : undefined;
  if (legacy) found.push({ field: 'image', source: { kind: 'bytes', bytes: decodeBase64Image(legacy, 'image', maxUploadBytes) } });
  if (body.raw) found.push({ field: 'body', source: { kind: 'bytes', bytes: body.raw.bytes } });
  const source = exactlyOne(found, ACCEPTED);

  const f = body.fields;
  const isLegacy = found[0]!.field === 'image';
  const job = makeJob({
    source,
    format: isLegacy ? 'png' : (readEnum(f, 'format', FORMATS, formatMap) ?? 'png'),
    channels: isLegacy ? 'alpha' : (readEnum(f, 'channels', CHANNELS, channelMap) ?? 'rgba'),
    size: readEnum(f, 'size', SIZES, sizeMap) ?? 'full',
    crop: readBool(f, 'crop') ?? false,
    ...(readColor(f, 'bg_color') ? { bgColor: readColor(f, 'bg_color')! } : {}),
    despill: readBool(f, 'despill') ?? false,
  });
  if (isLegacy) legacyMaskJobs.add(job);
  return job;
}
