// compat/fields.ts
// Field readers shared by every dialect: lenient where real clients are sloppy, exact in their error messages.
import { invalidParameter } from '../src/errors.js';
import { parseColor } from '../src/pipeline/color.js';
import type { Rgba } from '../src/job.js';

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

export function readBool(fields: Map<string, string>, name: string): boolean | undefined {
  const v = fields.get(name);
  if (v === undefined) return undefined;
  const s = v.trim().toLowerCase();
  if (TRUE.has(s)) return true;
  if (FALSE.has(s)) return false;
  throw invalidParameter(name, 'one of true, false, 1, 0', v);
}

/** Case-insensitive enum with aliases: `{ jpeg: 'jpg' }`. */
export function readEnum<T extends string>(
  fields: Map<string, string>,
  name: string,
  allowed: readonly string[],
  map: Record<string, T>,
): T | undefined {
  const v = fields.get(name);
  if (v === undefined) return undefined;
  const s = v.trim().toLowerCase();
  const hit = map[s];
  if (hit === undefined) throw invalidParameter(name, `one of ${allowed.join(', ')}`, v);
  return hit;
}

export function readColor(fields: Map<string, string>, name: string): Rgba | undefined {
  const v = fields.get(name);
  return v === undefined ? undefined : parseColor(v, name);
}

export function readInt(fields: Map<string, string>, name: string, min: number, max: number): number | undefined {
  const v = fields.get(name);
  if (v === undefined) return undefined;
  const n = Number(v.trim());
  if (!Number.isInteger(n) || n < min || n > max) throw invalidParameter(name, `an integer from ${min} to ${max}`, v);
  return n;
}

export function readNumber(fields: Map<string, string>, name: string, min: number, max: number): number | undefined {
  const v = fields.get(name);
  if (v === undefined) return undefined;
  const n = Number(v.trim());
  if (!Number.isFinite(n) || n < min || n > max) throw invalidParameter(name, `a number from ${min} to ${max}`, v);
  return n;
}

/** Builds `{ value: value }` for a plain enum plus aliases. */
export function enumMap<T extends string>(values: readonly T[], aliases: Record<string, T> = {}): Record<string, T> {
  return { ...Object.fromEntries(values.map((v) => [v, v])), ...aliases } as Record<string, T>;
}
