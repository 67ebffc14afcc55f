// test/helpers/fixtures.ts
// Images drawn in the tests themselves, each with its exact foreground mask, so no files outside the repo are needed.
import sharp from 'sharp';

export interface Fixture {
  bytes: Buffer;
  width: number;
  height: number;
  /** Ground truth: 255 inside the subject, 0 outside. */
  mask: Uint8Array;
}

export interface FixtureOptions {
  width?: number;
  height?: number;
  background?: 'plain' | 'textured';
  format?: 'jpeg' | 'png' | 'webp';
}

/** A bold, high-contrast figure (head + body, like a person or product shot) on a plain or textured background. */
export async function subjectFixture(o: FixtureOptions = {}): Promise<Fixture> {
  const width = o.width ?? 640;
  const height = o.height ?? 480;
  const cx = width / 2;
  const headR = height * 0.13;
  const headCy = height * 0.3;
  const body = { x: cx - width * 0.16, y: height * 0.45, w: width * 0.32, h: height * 0.5, r: width * 0.05 };
  const shapes = (fill: string, stroke = '') =>
    `<circle cx="${cx}" cy="${headCy}" r="${headR}" fill="${fill}" ${stroke}/>` +
    `<rect x="${body.x}" y="${body.y}" width="${body.w}" height="${body.h}" rx="${body.r}" fill="${fill}" ${stroke}/>`;
  const bg =
    o.background === 'textured'
      ? `<defs><pattern id="p" width="40" height="40" patternUnits="userSpaceOnUse"><rect width="40" height="40" fill="#d8d2c4"/><rect width="20" height="20" fill="#c9c1b0"/></pattern></defs><rect width="${width}" height="${height}" fill="url(#p)"/>`
      : `<rect width="${width}" height="${height}" fill="#e9eef2"/>`;
  const subject = `<defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#b3261e"/><stop offset="1" stop-color="#3b0f0c"/></linearGradient></defs>${shapes('url(#g)')}`;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${bg}${subject}</svg>`;
  const maskSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="${width}" height="${height}" fill="#000"/>${shapes('#fff')}</svg>`;
  const img = sharp(Buffer.from(svg));
  const format = o.format ?? 'jpeg';
  const bytes = await (format === 'jpeg' ? img.jpeg({ quality: 92 }) : format === 'png' ? img.png() : img.webp({ quality: 92 })).toBuffer();
  const mask = await sharp(Buffer.from(maskSvg)).extractChannel(0).raw().toBuffer();
  return { bytes, width, height, mask: new Uint8Array(mask) };
}

/** Intersection over union of two masks thresholded at 50 %. */
export function iou(alpha: Uint8Array, truth: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < truth.length; i++) {
    const a = alpha[i]! >= 128;
    const t = truth[i]! >= 128;
    if (a && t) inter++;
    if (a || t) union++;
  }
  return union === 0 ? 1 : inter / union;
}

/**
 * Decodes any returned image to raw RGBA for assertions. `data` is always 4 bytes per pixel; `channels` is the
 * encoded file's own count (3 for an opaque PNG or JPEG), so it says whether the answer had alpha and must not be
 * used as the stride into `data` (use `rgbaAt`).
 */
export async function decodeRgba(bytes: Uint8Array): Promise<{ data: Buffer; width: number; height: number; channels: number; format: string | undefined }> {
  const meta = await sharp(bytes).metadata();
  const { data, info } = await sharp(bytes).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: meta.channels ?? info.channels, format: meta.format };
}

/** The [r, g, b, a] of one pixel of a `decodeRgba` result. */
export function rgbaAt(img: { data: Buffer; width: number }, x: number, y: number): number[] {
  const i = (Math.round(y) * img.width + Math.round(x)) * 4;
  return [...img.data.subarray(i, i + 4)];
}

export function alphaOf(rgba: Buffer): Uint8Array {
  const out = new Uint8Array(rgba.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = rgba[i * 4 + 3]!;
  return out;
}
