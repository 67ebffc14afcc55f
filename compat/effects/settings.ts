// compat/effects/settings.ts
// The effects tool's parameters (seed 001): form fields and/or a `settings` JSON part, validated once.
import { GatewayError, invalidParameter } from '../../src/errors.js';
import type { ParsedBody } from '../../src/http/body.js';
import type { Rgba } from '../../src/job.js';
import { enumMap, readBool, readColor, readEnum, readInt, readNumber } from '../fields.js';

export const BACKGROUND_TYPES = ['transparent', 'color', 'gradient', 'blur', 'image'] as const;
export const EFFECT_FORMATS = ['png', 'webp', 'avif'] as const;

export interface EffectSettings {
  backgroundType: (typeof BACKGROUND_TYPES)[number];
  backgroundColor?: Rgba;
  gradientColor1?: Rgba;
  gradientColor2?: Rgba;
  /** CSS convention: 0 = towards the top, 90 = towards the right, 180 (default) = top to bottom. */
  gradientAngle: number;
  blurEnabled: boolean;
  /** 0–100; 100 blurs with a sigma of 4 % of the longer side. */
  blurIntensity: number;
  shadowEnabled: boolean;
  /** 0–100. */
  shadowOpacity: number;
  outputFormat: (typeof EFFECT_FORMATS)[number];
}

/**
 * Fields come from the form and from the `settings` JSON part (the seed's examples use the latter); settings win.
 * JSON numbers and booleans are read as their string forms so one set of readers validates both.
 */
export function mergedFields(body: ParsedBody, required: boolean): Map<string, string> {
  const fields = new Map(body.fields);
  const raw = body.fields.get('settings') ?? (body.json?.settings !== undefined ? JSON.stringify(body.json.settings) : undefined);
  fields.delete('settings');
  if (raw === undefined) {
    if (required) throw new GatewayError('invalid_parameter', { message: 'settings is required: a JSON object with jobId and filename.', details: { field: 'settings' } });
    return fields;
  }
  let parsed: unknown;
  try {
    parsed = typeof raw === 'string' ? JSON.parse(raw) : raw;
  } catch {
    throw invalidParameter('settings', 'a JSON object', raw.slice(0, 60));
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalidParameter('settings', 'a JSON object', raw.slice(0, 60));
  for (const [k, v] of Object.entries(parsed)) {
    if (v === null || v === '') continue;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') fields.set(k, String(v));
    else throw invalidParameter(k, 'a string, number or boolean', JSON.stringify(v).slice(0, 60));
  }
  return fields;
}

export function readEffectSettings(f: Map<string, string>): EffectSettings {
  const settings: EffectSettings = {
    backgroundType: readEnum(f, 'backgroundType', BACKGROUND_TYPES, enumMap(BACKGROUND_TYPES)) ?? 'transparent',
    gradientAngle: readNumber(f, 'gradientAngle', -3600, 3600) ?? 180,
    blurEnabled: readBool(f, 'blurEnabled') ?? false,
    blurIntensity: readNumber(f, 'blurIntensity', 0, 100) ?? 50,
    shadowEnabled: readBool(f, 'shadowEnabled') ?? false,
    shadowOpacity: readNumber(f, 'shadowOpacity', 0, 100) ?? 50,
    outputFormat: readEnum(f, 'outputFormat', EFFECT_FORMATS, enumMap(EFFECT_FORMATS)) ?? 'png',
  };
  const bg = readColor(f, 'backgroundColor');
  const g1 = readColor(f, 'gradientColor1');
  const g2 = readColor(f, 'gradientColor2');
  if (bg) settings.backgroundColor = bg;
  if (g1) settings.gradientColor1 = g1;
  if (g2) settings.gradientColor2 = g2;
  return settings;
}

/** Phase-1-only fields: the matte itself. */
export function readMatteSettings(f: Map<string, string>): { edgeRefine: number; decontaminate: boolean; model?: string } {
  const model = f.get('model')?.trim();
  return {
    edgeRefine: readInt(f, 'edgeRefine', 0, 3) ?? 1,
    decontaminate: readBool(f, 'decontaminate') ?? false,
    ...(model ? { model } : {}),
  };
}

/** True when the output differs from the plain transparent PNG cut-out. */
export function hasEffects(s: EffectSettings): boolean {
  return s.backgroundType !== 'transparent' || s.blurEnabled || s.shadowEnabled || s.outputFormat !== 'png';
}

/** `photo.jpg` → `photo`: safe in a URL path and a Content-Disposition header. */
export function fileStem(filename: string | undefined): string {
  const base = (filename ?? '').split(/[\\/]/).pop() ?? '';
  const stem = base.replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 100);
  return stem || 'image';
}
