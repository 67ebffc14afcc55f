// compat/sources.ts
// Image sources every dialect shares: base64 strings (data URLs allowed) and the one-source rule.
import { GatewayError } from '../src/errors.js';
import type { JobSource } from '../src/job.js';

const DATA_URL = /^data:[^,]*?;base64,/i;
const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;

export function decodeBase64Image(value: string, field: string, maxBytes: number): Uint8Array {
  const text = value.replace(DATA_URL, '').replace(/\s+/g, '');
  if (!text || !BASE64.test(text)) {
    throw new GatewayError('invalid_image', { message: `${field} is not valid base64.`, details: { field } });
  }
  // Decoded size is known before decoding: refuse oversize images without allocating them.
  const decodedBytes = Math.floor((text.length * 3) / 4);
  if (decodedBytes > maxBytes + 2) {
    throw new GatewayError('image_too_large', {
      message: `image too large (>${Math.round(maxBytes / (1024 * 1024))} MB).`,
      details: { field, max_bytes: maxBytes },
    });
  }
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length === 0) throw new GatewayError('invalid_image', { message: `${field} is empty.`, details: { field } });
  return bytes;
}

/** Exactly one source: none → missing_image, several → multiple_images naming them. */
export function exactlyOne(found: { field: string; source: JobSource }[], accepted: string): JobSource {
  if (found.length === 0) {
    throw new GatewayError('missing_image', { message: `No image given. Send one of ${accepted}.`, details: { accepted } });
  }
  if (found.length > 1) {
    throw new GatewayError('multiple_images', {
      message: `Send exactly one image source; got ${found.map((f) => f.field).join(', ')}.`,
      details: { fields: found.map((f) => f.field) },
    });
  }
  return found[0]!.source;
}
