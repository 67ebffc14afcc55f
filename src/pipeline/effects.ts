// src/pipeline/effects.ts
// Effects several dialects share (remove.bg, Picsart, the effects tool): region of interest, subject layout on a
// canvas, outline stroke and drop shadow. They work on the cut-out raster before any background is flattened in.
import sharp from 'sharp';
import type { ForegroundBox, RemovalJob, Rgba } from '../job.js';
import { subjectBox, type Raster } from './compose.js';
import { morphAlpha } from './morph.js';

type Length = NonNullable<RemovalJob['roi']>['x1'];

function resolve(length: Length, full: number): number {
  return 'px' in length ? length.px : length.fraction * full;
}

/**
 * Keeps only subject pixels inside the region of interest. Coordinates refer to the (oriented) input image,
 * so they are scaled to the working size first.
 */
export function applyRoi(alpha: Buffer, width: number, height: number, roi: NonNullable<RemovalJob['roi']>, input: { width: number; height: number }): void {
  const sx = width / input.width;
  const sy = height / input.height;
  const x1 = clamp(Math.floor(resolve(roi.x1, input.width) * sx), 0, width);
  const y1 = clamp(Math.floor(resolve(roi.y1, input.height) * sy), 0, height);
  const x2 = clamp(Math.ceil(resolve(roi.x2, input.width) * sx), 0, width);
  const y2 = clamp(Math.ceil(resolve(roi.y2, input.height) * sy), 0, height);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    if (y < y1 || y >= y2) {
      alpha.fill(0, row, row + width);
      continue;
    }
    alpha.fill(0, row, row + x1);
    alpha.fill(0, row + x2, row + width);
  }
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/**
 * Places the subject on a canvas: scaled so its box fits (or fills) `scale` of the canvas, then positioned by
 * fractions (0 = left/top edge, 1 = right/bottom edge). Pixels outside the subject's box become transparent.
 */
export async function layoutSubject(r: Raster, layout: NonNullable<RemovalJob['layout']>): Promise<{ raster: Raster; foreground: ForegroundBox }> {
  const width = layout.width ?? r.width;
  const height = layout.height ?? r.height;
  const box = subjectBox(r.alpha!, r.width, r.height);
  if (box.width === 0) return { raster: blankCanvas(r, width, height), foreground: { left: 0, top: 0, width: 0, height: 0 } };

  // The frame is what gets scaled and placed: the subject's box, or the whole cut-out (transparent margins too).
  const frame = layout.frame === 'image' ? { left: 0, top: 0, width: r.width, height: r.height } : box;
  let k = 1;
  if (layout.scale !== undefined) {
    const fx = (width * layout.scale) / frame.width;
    const fy = (height * layout.scale) / frame.height;
    k = layout.mode === 'fill' ? Math.max(fx, fy) : Math.min(fx, fy);
  }
  const w = Math.max(1, Math.round(frame.width * k));
  const h = Math.max(1, Math.round(frame.height * k));
  // No position means "where it was", scaled with the canvas when the canvas size changes.
  const left = layout.position
    ? Math.round((width - w) * layout.position.x)
    : Math.round(frame.left * (width / r.width) + (frame.width * (width / r.width) - w) / 2);
  const top = layout.position
    ? Math.round((height - h) * layout.position.y)
    : Math.round(frame.top * (height / r.height) + (frame.height * (height / r.height) - h) / 2);

  const subject = await resizedSubject(r, frame, w, h);
  const out = blankCanvas(r, width, height);
  const channels = r.channels;
  // Copy with clipping: a scaled or positioned subject may hang over the canvas edge.
  for (let y = Math.max(0, -top); y < h && top + y < height; y++) {
    for (let x = Math.max(0, -left); x < w && left + x < width; x++) {
      const s = (y * w + x) * 4;
      const p = (top + y) * width + left + x;
      for (let c = 0; c < 3; c++) out.data[p * channels + c] = subject[s + c]!;
      out.alpha![p] = subject[s + 3]!;
    }
  }
  const foreground = subjectBox(out.alpha!, width, height);
  return { raster: out, foreground };
}

function blankCanvas(r: Raster, width: number, height: number): Raster {
  return { data: Buffer.alloc(width * height * r.channels), width, height, channels: r.channels, alpha: Buffer.alloc(width * height) };
}

/** The subject's box as RGBA, resized with premultiplied alpha (sharp does that for 4-channel input). */
async function resizedSubject(r: Raster, box: ForegroundBox, w: number, h: number): Promise<Buffer> {
  const n = box.width * box.height;
  const rgba = Buffer.allocUnsafe(n * 4);
  for (let y = 0; y < box.height; y++) {
    for (let x = 0; x < box.width; x++) {
      const p = (box.top + y) * r.width + box.left + x;
      const o = (y * box.width + x) * 4;
      rgba[o] = r.data[p * r.channels]!;
      rgba[o + 1] = r.data[p * r.channels + 1]!;
      rgba[o + 2] = r.data[p * r.channels + 2]!;
      rgba[o + 3] = r.alpha![p]!;
    }
  }
  if (w === box.width && h === box.height) return rgba;
  return sharp(rgba, { raw: { width: box.width, height: box.height, channels: 4 } }).resize(w, h, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer();
}

/** Puts a coloured layer with its own alpha under the raster ("destination over"): the cut-out stays on top. */
export function layerUnder(r: Raster, color: Pick<Rgba, 'r' | 'g' | 'b'>, layer: Uint8Array): Raster {
  const n = r.width * r.height;
  const alpha = r.alpha!;
  const data = Buffer.allocUnsafe(n * 3);
  const outAlpha = Buffer.allocUnsafe(n);
  for (let p = 0, i = 0, o = 0; p < n; p++, i += r.channels, o += 3) {
    const a = alpha[p]! / 255;
    const l = (layer[p]! / 255) * (1 - a);
    const oa = a + l;
    outAlpha[p] = Math.round(oa * 255);
    if (oa <= 0) {
      data[o] = data[o + 1] = data[o + 2] = 0;
      continue;
    }
    data[o] = Math.round((r.data[i]! * a + color.r * l) / oa);
    data[o + 1] = Math.round((r.data[i + 1]! * a + color.g * l) / oa);
    data[o + 2] = Math.round((r.data[i + 2]! * a + color.b * l) / oa);
  }
  return { data, width: r.width, height: r.height, channels: 3, alpha: outAlpha };
}

/** An outline `width` pixels wide around the subject, in the stroke's colour and opacity. */
export function addStroke(r: Raster, stroke: NonNullable<RemovalJob['stroke']>): Raster {
  if (stroke.width <= 0 || stroke.color.alpha <= 0) return r;
  const grown = morphAlpha(r.alpha!, r.width, r.height, stroke.width, 'dilate');
  const layer = stroke.color.alpha >= 1 ? grown : grown.map((v) => Math.round(v * stroke.color.alpha));
  return layerUnder(r, stroke.color, layer);
}

/**
 * A drop shadow: the subject's silhouette, offset and blurred, under the subject. Offsets and blur are fractions of
 * the subject box's longer side so the look does not depend on the output size.
 */
export async function addShadow(r: Raster, shadow: NonNullable<RemovalJob['shadow']>): Promise<Raster> {
  if (shadow.opacity <= 0) return r;
  const box = subjectBox(r.alpha!, r.width, r.height);
  const side = Math.max(box.width, box.height, 1);
  const dx = Math.round(shadow.offsetX * side);
  const dy = Math.round(shadow.offsetY * side);
  const shifted = Buffer.alloc(r.width * r.height);
  const squash = shadow.squash;
  // A squashed shadow (car/3D style) is the silhouette flattened towards the subject's base line.
  const base = box.top + box.height;
  for (let y = 0; y < r.height; y++) {
    const sy = squash < 1 ? Math.round(base - (base - y) / squash) - dy : y - dy;
    if (sy < 0 || sy >= r.height) continue;
    const from = sy * r.width;
    const to = y * r.width;
    for (let x = 0; x < r.width; x++) {
      const sx = x - dx;
      if (sx >= 0 && sx < r.width) shifted[to + x] = r.alpha![from + sx]!;
    }
  }
  const sigma = shadow.blur * side;
  // extractChannel: sharp may widen one-channel raw input to three channels on output.
  const blurred = sigma >= 0.3 ? await sharp(shifted, { raw: { width: r.width, height: r.height, channels: 1 } }).blur(sigma).extractChannel(0).raw().toBuffer() : shifted;
  const layer = blurred.map((v) => Math.round(v * shadow.opacity));
  return layerUnder(r, shadow.color, layer);
}
