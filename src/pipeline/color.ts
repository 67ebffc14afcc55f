// src/pipeline/color.ts
// Colour strings as clients send them: bare hex (FFFFFF, as remove.bg documents), #rgb, #rrggbbaa, CSS names, rgb().
import { parse, rgb as toRgb } from 'culori';
import { invalidParameter } from '../errors.js';
import type { Rgba } from '../job.js';

const BARE_HEX = /^(?:[0-9a-f]{3}|[0-9a-f]{4}|[0-9a-f]{6}|[0-9a-f]{8})$/i;

export function parseColor(value: string, field = 'bg_color'): Rgba {
  const text = value.trim();
  const parsed = parse(BARE_HEX.test(text) ? `#${text}` : text);
  const rgb = parsed ? toRgb(parsed) : undefined;
  if (!rgb) throw invalidParameter(field, 'a colour: hex (FFFFFF, #fff, #ffffff80), a CSS name or rgb()/rgba()', value);
  const channel = (v: number) => Math.round(Math.min(1, Math.max(0, v)) * 255);
  return { r: channel(rgb.r), g: channel(rgb.g), b: channel(rgb.b), alpha: Math.min(1, Math.max(0, rgb.alpha ?? 1)) };
}
