// compat/effects/render.ts
// Re-renders a cut-out onto the effects tool's backgrounds from the cached cut-out and original: no model run.
import sharp from 'sharp';
import { GatewayError } from '../../src/errors.js';
import type { Rgba } from '../../src/job.js';
import { backgroundImage } from '../../src/pipeline/compose.js';
import { encodeRaster, type EncodeOptions } from '../../src/pipeline/encode.js';
import type { EffectSettings } from './settings.js';

const WHITE: Rgba = { r: 255, g: 255, b: 255, alpha: 1 };
const BLACK: Rgba = { r: 0, g: 0, b: 0, alpha: 1 };

export interface RenderInputs {
  /** The transparent cut-out PNG from phase 1 (straight alpha). */
  cutout: Uint8Array;
  /** The upright original, same size as the cut-out. */
  original: Uint8Array;
  backgroundImage?: Uint8Array;
  maxInputPixels: number;
  encode: EncodeOptions;
}

export async function renderEffects(s: EffectSettings, inputs: RenderInputs): Promise<Buffer> {
  const { data: rgba, info } = await sharp(inputs.cutout).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  const { width, height } = info;
  const n = width * height;
  const alpha = Buffer.allocUnsafe(n);
  for (let p = 0; p < n; p++) alpha[p] = rgba[p * 4 + 3]!;

  const blur = s.backgroundType === 'blur' || s.blurEnabled;
  let bg: Buffer | undefined;
  switch (s.backgroundType) {
    case 'color':
      bg = solid(width, height, s.backgroundColor ?? WHITE);
      break;
    case 'gradient':
      bg = linearGradient(width, height, s.gradientColor1 ?? WHITE, s.gradientColor2 ?? BLACK, s.gradientAngle);
      break;
    case 'image':
      if (!inputs.backgroundImage) {
        throw new GatewayError('invalid_parameter', { message: 'backgroundType image needs a backgroundImage file part.', details: { field: 'backgroundImage' } });
      }
      bg = await backgroundImage(inputs.backgroundImage, width, height, inputs.maxInputPixels);
      break;
    case 'blur':
    case 'transparent':
      if (blur) bg = await sharp(inputs.original).resize(width, height, { fit: 'fill' }).removeAlpha().raw().toBuffer();
      break;
  }
  // Blur applies to whatever lies behind the subject; a solid colour blurs to itself, so skip the work.
  if (bg && blur && s.backgroundType !== 'color') {
    const sigma = Math.max(0.3, (s.blurIntensity / 100) * 0.04 * Math.max(width, height));
    bg = await sharp(bg, { raw: { width, height, channels: 3 } }).blur(sigma).raw().toBuffer();
  }
  const shadow = s.shadowEnabled && s.shadowOpacity > 0 ? await dropShadow(alpha, width, height, s.shadowOpacity / 100) : undefined;

  if (!bg) {
    // Transparent output: the shadow is a black, partly transparent layer under the subject.
    if (shadow) {
      for (let p = 0, i = 0; p < n; p++, i += 4) {
        const a = alpha[p]! / 255;
        const sa = (shadow[p]! / 255) * (1 - a);
        const oa = a + sa;
        rgba[i] = oa > 0 ? (rgba[i]! * a) / oa : 0;
        rgba[i + 1] = oa > 0 ? (rgba[i + 1]! * a) / oa : 0;
        rgba[i + 2] = oa > 0 ? (rgba[i + 2]! * a) / oa : 0;
        rgba[i + 3] = Math.round(oa * 255);
      }
    }
    for (let p = 0; p < n; p++) alpha[p] = rgba[p * 4 + 3]!;
    return encodeRaster({ data: rgba, width, height, channels: 4, alpha }, s.outputFormat, inputs.encode);
  }
  const out = Buffer.allocUnsafe(n * 3);
  for (let p = 0, i = 0, o = 0; p < n; p++, i += 4, o += 3) {
    const a = alpha[p]! / 255;
    const keep = shadow ? 1 - shadow[p]! / 255 : 1;
    out[o] = rgba[i]! * a + bg[o]! * keep * (1 - a);
    out[o + 1] = rgba[i + 1]! * a + bg[o + 1]! * keep * (1 - a);
    out[o + 2] = rgba[i + 2]! * a + bg[o + 2]! * keep * (1 - a);
  }
  return encodeRaster({ data: out, width, height, channels: 3 }, s.outputFormat, inputs.encode);
}

function solid(width: number, height: number, c: Rgba): Buffer {
  const out = Buffer.allocUnsafe(width * height * 3);
  for (let o = 0; o < out.length; o += 3) {
    out[o] = c.r;
    out[o + 1] = c.g;
    out[o + 2] = c.b;
  }
  return out;
}

/** CSS linear-gradient geometry: the gradient line passes through the centre and just reaches the far corners. */
export function linearGradient(width: number, height: number, from: Rgba, to: Rgba, angleDeg: number): Buffer {
  const t = (angleDeg * Math.PI) / 180;
  const dx = Math.sin(t);
  const dy = -Math.cos(t);
  const length = Math.abs(width * dx) + Math.abs(height * dy) || 1;
  const out = Buffer.allocUnsafe(width * height * 3);
  for (let y = 0, o = 0; y < height; y++) {
    const py = (y + 0.5 - height / 2) * dy;
    for (let x = 0; x < width; x++, o += 3) {
      const f = Math.min(1, Math.max(0, 0.5 + ((x + 0.5 - width / 2) * dx + py) / length));
      out[o] = from.r + (to.r - from.r) * f;
      out[o + 1] = from.g + (to.g - from.g) * f;
      out[o + 2] = from.b + (to.b - from.b) * f;
    }
  }
  return out;
}

/** The subject's alpha, softened and offset down-right, scaled by the opacity. */
async function dropShadow(alpha: Buffer, width: number, height: number, opacity: number): Promise<Buffer> {
  const long = Math.max(width, height);
  const sigma = Math.max(0.5, long * 0.012);
  const dx = Math.round(long * 0.012);
  const dy = Math.round(long * 0.02);
  const soft = await sharp(alpha, { raw: { width, height, channels: 1 } }).blur(sigma).extractChannel(0).raw().toBuffer();
  const out = Buffer.alloc(width * height);
  for (let y = dy; y < height; y++) {
    const row = y * width;
    const src = (y - dy) * width;
    for (let x = dx; x < width; x++) out[row + x] = soft[src + x - dx]! * opacity;
  }
  return out;
}
