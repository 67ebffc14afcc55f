// src/pipeline/compose.ts
// Alpha + colour → the picture to encode: crop to the subject, then flatten onto a colour or an image if asked.
import sharp from 'sharp';
import type { ForegroundBox, RemovalJob, Rgba } from '../job.js';
import { inBands } from './slice.js';

/** Alpha above this counts as subject when finding its box (ignores faint model noise). */
const SUBJECT_ALPHA = 8;

export interface Raster {
  data: Buffer;
  width: number;
  height: number;
  /** 1 for a grey picture (the matte itself). */
  channels: 1 | 3 | 4;
  /** Final alpha, one byte per pixel; absent once flattened. */
  alpha?: Buffer;
}

export function subjectBox(alpha: Uint8Array, width: number, height: number): ForegroundBox {
  const scan = boxScanner(alpha, width);
  scan.rows(0, height);
  return scan.box();
}

/** subjectBox over a full-resolution matte, in bands with the event loop let in between. */
export async function subjectBoxSliced(alpha: Uint8Array, width: number, height: number): Promise<ForegroundBox> {
  const scan = boxScanner(alpha, width);
  await inBands(height, width, scan.rows);
  return scan.box();
}

function boxScanner(alpha: Uint8Array, width: number) {
  // top, bottom, left, right
  const acc = new Int32Array([-1, -1, width, -1]);
  const rows = (y0: number, y1: number) => scanRows(alpha, width, y0, y1, acc);
  const box = (): ForegroundBox => {
    const [top, bottom, left, right] = acc as unknown as [number, number, number, number];
    return top < 0 ? { left: 0, top: 0, width: 0, height: 0 } : { left, top, width: right - left + 1, height: bottom - top + 1 };
  };
  return { rows, box };
}

/** Rows y0..y1 of the subject-box scan; a plain function with its arrays as arguments, which V8 runs fastest. */
function scanRows(alpha: Uint8Array, width: number, y0: number, y1: number, acc: Int32Array): void {
  let top = acc[0]!, bottom = acc[1]!, left = acc[2]!, right = acc[3]!;
  for (let y = y0; y < y1; y++) {
    const row = y * width;
    let first = -1;
    for (let x = 0; x < width; x++) {
      if (alpha[row + x]! > SUBJECT_ALPHA) {
        first = x;
        break;
      }
    }
    if (first < 0) continue;
    let last = first;
    for (let x = width - 1; x > first; x--) {
      if (alpha[row + x]! > SUBJECT_ALPHA) {
        last = x;
        break;
      }
    }
    if (top < 0) top = y;
    bottom = y;
    if (first < left) left = first;
    if (last > right) right = last;
  }
  acc[0] = top;
  acc[1] = bottom;
  acc[2] = left;
  acc[3] = right;
}

/** The crop rectangle: the subject box grown by the margin, clamped to the image; the whole image if no subject. */
export function cropRect(box: ForegroundBox, width: number, height: number, margin: RemovalJob['cropMargin']): ForegroundBox {
  if (box.width === 0 || box.height === 0) return { left: 0, top: 0, width, height };
  const m = Math.round(margin.px + margin.fraction * Math.max(box.width, box.height));
  const s = margin.sides;
  const side = (v: { px: number; fraction: number }, along: number) => Math.round(v.px + v.fraction * along);
  const left = Math.max(0, box.left - (s ? side(s.left, box.width) : m));
  const top = Math.max(0, box.top - (s ? side(s.top, box.height) : m));
  const right = Math.min(width, box.left + box.width + (s ? side(s.right, box.width) : m));
  const bottom = Math.min(height, box.top + box.height + (s ? side(s.bottom, box.height) : m));
  return { left, top, width: right - left, height: bottom - top };
}

/** Copies a rectangle out of an interleaved buffer, row by row. */
export function extractRect(data: Buffer, width: number, channels: number, rect: ForegroundBox): Buffer {
  if (rect.left === 0 && rect.width === width) return data.subarray(rect.top * width * channels, (rect.top + rect.height) * width * channels);
  const out = Buffer.allocUnsafe(rect.width * rect.height * channels);
  const rowBytes = rect.width * channels;
  for (let y = 0; y < rect.height; y++) {
    const from = ((rect.top + y) * width + rect.left) * channels;
    data.copy(out, y * rowBytes, from, from + rowBytes);
  }
  return out;
}

export function cropRaster(r: Raster, rect: ForegroundBox): Raster {
  if (rect.left === 0 && rect.top === 0 && rect.width === r.width && rect.height === r.height) return r;
  return {
    data: extractRect(r.data, r.width, r.channels, rect),
    width: rect.width,
    height: rect.height,
    channels: r.channels,
    ...(r.alpha ? { alpha: extractRect(r.alpha, r.width, 1, rect) } : {}),
  };
}

/**
 * Flattens onto an opaque colour: 3 channels out. Three-channel pixels are blended in place (the decoded
 * buffer is not needed afterwards), and runs of fully opaque or fully transparent pixels are handled in bulk:
 * most of a cut-out is one or the other, so only edge pixels pay for arithmetic.
 * Integer blend; `(x + 128) * 257 >> 16` is x / 255 rounded.
 */
export async function flattenOnColor(r: Raster, color: Pick<Rgba, 'r' | 'g' | 'b'>): Promise<Raster> {
  const alpha = r.alpha!;
  const out = r.channels === 3 ? r.data : Buffer.allocUnsafe(r.width * r.height * 3);
  const pattern = Buffer.from([color.r, color.g, color.b]);
  await inBands(r.height, r.width, (y0, y1) => flattenRange(alpha, r.data, r.channels, out, pattern, y0 * r.width, y1 * r.width));
  return { data: out, width: r.width, height: r.height, channels: 3 };
}

function flattenRange(alpha: Uint8Array, src: Buffer, step: number, out: Buffer, pattern: Buffer, from: number, to: number): void {
  const br = pattern[0]!, bg = pattern[1]!, bb = pattern[2]!;
  let p = from;
  while (p < to) {
    const a = alpha[p]!;
    if (a === 255 || a === 0) {
      let end = p + 1;
      while (end < to && alpha[end] === a) end++;
      if (a === 0) out.fill(pattern, p * 3, end * 3);
      else if (step !== 3) for (let q = p, i = p * step, o = p * 3; q < end; q++, i += step, o += 3) {
        out[o] = src[i]!;
        out[o + 1] = src[i + 1]!;
        out[o + 2] = src[i + 2]!;
      }
      p = end;
      continue;
    }
    const i = p * step, o = p * 3, ia = 255 - a;
    out[o] = ((src[i]! * a + br * ia + 128) * 257) >> 16;
    out[o + 1] = ((src[i + 1]! * a + bg * ia + 128) * 257) >> 16;
    out[o + 2] = ((src[i + 2]! * a + bb * ia + 128) * 257) >> 16;
    p++;
  }
}

/** Composites over a translucent colour: alpha stays, so the result still has 4 channels. */
export async function overTranslucentColor(r: Raster, color: Rgba): Promise<Raster> {
  const alpha = r.alpha!;
  const out = Buffer.allocUnsafe(r.width * r.height * 3);
  const outAlpha = Buffer.allocUnsafe(r.width * r.height);
  const A = color.alpha;
  await inBands(r.height, r.width, (y0, y1) => {
    for (let p = y0 * r.width, i = p * r.channels, o = p * 3, end = y1 * r.width; p < end; p++, i += r.channels, o += 3) {
      const a = alpha[p]! / 255;
      const oa = a + A * (1 - a);
      outAlpha[p] = Math.round(oa * 255);
      const wf = oa > 0 ? a / oa : 0;
      const wb = 1 - wf;
      out[o] = r.data[i]! * wf + color.r * wb;
      out[o + 1] = r.data[i + 1]! * wf + color.g * wb;
      out[o + 2] = r.data[i + 2]! * wf + color.b * wb;
    }
  });
  return { data: out, width: r.width, height: r.height, channels: 3, alpha: outAlpha };
}

/** Flattens onto another picture of the same size (a background image, or the blurred original). */
export async function flattenOnRaster(r: Raster, bg: Buffer): Promise<Raster> {
  const alpha = r.alpha!;
  const out = Buffer.allocUnsafe(r.width * r.height * 3);
  await inBands(r.height, r.width, (y0, y1) => {
    for (let p = y0 * r.width, i = p * r.channels, o = p * 3, end = y1 * r.width; p < end; p++, i += r.channels, o += 3) {
      const a = alpha[p]!;
      const ia = 255 - a;
      out[o] = (r.data[i]! * a + bg[o]! * ia + 127) / 255;
      out[o + 1] = (r.data[i + 1]! * a + bg[o + 1]! * ia + 127) / 255;
      out[o + 2] = (r.data[i + 2]! * a + bg[o + 2]! * ia + 127) / 255;
    }
  });
  return { data: out, width: r.width, height: r.height, channels: 3 };
}

/** A background image scaled to cover the output and centred, as remove.bg's bg_image_url does. */
export async function backgroundImage(bytes: Uint8Array, width: number, height: number, maxInputPixels: number): Promise<Buffer> {
  return sharp(bytes, { limitInputPixels: maxInputPixels, failOn: 'error' })
    .rotate()
    .resize(width, height, { fit: 'cover', position: 'centre' })
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer();
}

export async function blurredOriginal(r: Raster, sigma: number): Promise<Buffer> {
  return sharp(r.data, { raw: { width: r.width, height: r.height, channels: r.channels } }).removeAlpha().blur(sigma).raw().toBuffer();
}
