// src/pipeline/decode.ts
// Bytes → upright sRGB pixels at the output size. The only stage that touches the client's encoded bytes.
import sharp, { type Metadata, type Sharp, type SharpOptions } from 'sharp';
import { GatewayError } from '../errors.js';
import type { RemovalJob } from '../job.js';
import { decodeBmp } from './bmp.js';
import { outputSize } from './sizes.js';
import { DECODABLE, sniffImageType, type ImageType } from './sniff.js';

export interface DecodeLimits {
  maxInputPixels: number;
  maxOutputPixels: number;
}

export interface DecodedImage {
  /** Interleaved 8-bit sRGB, 3 channels, or 4 when the input had alpha. */
  data: Buffer;
  width: number;
  height: number;
  channels: 3 | 4;
  input: { width: number; height: number; type: ImageType };
}

/** An upload whose header has been read and checked: type, upright size, and a way to start decoding it. */
export interface OpenedImage {
  type: ImageType;
  /** Upright (EXIF-oriented) dimensions. */
  width: number;
  height: number;
  hasAlpha: boolean;
  /** A fresh sharp pipeline over the upload (EXIF rotation applied), or over raw pixels already decoded in JS. */
  sharpInput: () => Sharp;
}

/** Reads the header only: sniffs the type, checks the pixel limit. Cheap, so both decodes can start from it at once. */
export async function openImage(bytes: Uint8Array, limits: DecodeLimits): Promise<OpenedImage> {
  const source = await openSource(bytes, limits);
  if (source.width * source.height > limits.maxInputPixels) throw tooManyPixels(source.width, source.height, limits.maxInputPixels);
  return source;
}

export async function decodeImage(
  bytes: Uint8Array | OpenedImage,
  job: Pick<RemovalJob, 'size' | 'maxWidth' | 'maxHeight'> & { maxPixels?: number | undefined },
  limits: DecodeLimits,
): Promise<DecodedImage> {
  const source = bytes instanceof Uint8Array ? await openImage(bytes, limits) : bytes;
  const out = outputSize(source.width, source.height, job, limits.maxOutputPixels);
  let img = source.sharpInput();
  if (out.scale < 1) img = img.resize(out.width, out.height, { fit: 'fill', kernel: 'lanczos3' });
  try {
    const { data, info } = await img.toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels === 3 || info.channels === 4) {
      return { data, width: info.width, height: info.height, channels: info.channels, input: { width: source.width, height: source.height, type: source.type } };
    }
    // Two-band (grey + alpha) output can survive toColourspace on some inputs; widen it once here.
    const widened = await sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    return {
      data: widened.data,
      width: info.width,
      height: info.height,
      channels: widened.info.channels === 4 ? 4 : 3,
      input: { width: source.width, height: source.height, type: source.type },
    };
  } catch (err) {
    throw decodeFailure(err);
  }
}

/**
 * The model's square RGB input, straight from the upload: for a large JPEG libvips decodes at 1/2–1/8 scale
 * (shrink-on-load), so this costs a fraction of a full decode and inference can start before the full-size
 * pixels exist. Transparent areas become white, as the model should see them.
 */
export async function modelInput(source: OpenedImage, size: number, kernel: 'nearest' | 'linear' | 'cubic' | 'lanczos3'): Promise<Uint8Array> {
  let img = source.sharpInput().resize(size, size, { fit: 'fill', kernel });
  if (source.hasAlpha) img = img.flatten({ background: '#ffffff' });
  try {
    const { data, info } = await img.toColourspace('srgb').removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels === 3) return data;
    // Rare band layouts (grey left after toColourspace) are widened once.
    return await sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } }).toColourspace('srgb').removeAlpha().raw().toBuffer();
  } catch (err) {
    throw decodeFailure(err);
  }
}

async function openSource(bytes: Uint8Array, limits: DecodeLimits): Promise<OpenedImage> {
  const type = sniffImageType(bytes);
  if (!type) {
    throw new GatewayError('invalid_image', { message: 'The file is not an image we can read (JPEG, PNG, WebP, AVIF, HEIF, TIFF, GIF or BMP).' });
  }
  if (!DECODABLE.has(type)) {
    throw new GatewayError('unsupported_media_type', {
      message: `${type.toUpperCase()} images are not supported; send JPEG, PNG, WebP, AVIF, HEIF, TIFF, GIF or BMP.`,
      details: { detected_type: type },
    });
  }
  if (type === 'bmp') {
    const raw = decodeBmp(bytes);
    return {
      type,
      width: raw.width,
      height: raw.height,
      hasAlpha: raw.channels === 4,
      sharpInput: () => sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } }),
    };
  }
  const options: SharpOptions = { limitInputPixels: limits.maxInputPixels, failOn: 'error', animated: false, sequentialRead: true };
  let meta: Metadata;
  try {
    // The header alone: the pixel limit is checked below with a clearer message than libvips gives.
    meta = await sharp(bytes, { ...options, limitInputPixels: false }).metadata();
  } catch (err) {
    throw decodeFailure(err);
  }
  if (!meta.width || !meta.height) throw new GatewayError('invalid_image', { message: 'The image has no dimensions.' });
  // EXIF orientations 5–8 swap the axes.
  const swap = (meta.orientation ?? 1) >= 5;
  const width = swap ? meta.height : meta.width;
  // A GIF's metadata height covers every frame; only the first is decoded.
  const frameHeight = meta.pageHeight ?? meta.height;
  const height = swap ? meta.width : frameHeight;
  return {
    type,
    width: swap ? frameHeight : width,
    height,
    hasAlpha: meta.hasAlpha ?? false,
    sharpInput: () => sharp(bytes, options).rotate(),
  };
}

function tooManyPixels(width: number, height: number, max: number): GatewayError {
  return new GatewayError('image_too_large', {
    message: `The image has ${width}×${height} = ${(width * height / 1e6).toFixed(1)} megapixels; the limit is ${(max / 1e6).toFixed(1)}.`,
    details: { width, height, max_pixels: max },
  });
}

function decodeFailure(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const text = err instanceof Error ? err.message : String(err);
  if (/pixel limit/i.test(text)) return new GatewayError('image_too_large', { message: 'The image has too many pixels.', cause: err });
  // sharp's text names internal files and libraries; clients get a stable message, logs keep the cause.
  return new GatewayError('invalid_image', { message: 'The image could not be decoded: the file is damaged or truncated.', cause: err });
}
