// src/pipeline/bmp.ts
// BMP in and out: libvips (and so sharp) has no BMP codec, yet the contract offers format=bmp
// and clients upload screenshots as BMP. Uncompressed 24/32-bit files cover what is sent in practice.
import { GatewayError } from '../errors.js';

export interface RawImage {
  data: Buffer;
  width: number;
  height: number;
  channels: 3 | 4;
}

/** 24-bit bottom-up BMP from interleaved RGB. */
export function encodeBmp(rgb: Uint8Array, width: number, height: number): Buffer {
  const stride = (width * 3 + 3) & ~3;
  const size = 54 + stride * height;
  const out = Buffer.alloc(size);
  out.write('BM', 0, 'ascii');
  out.writeUInt32LE(size, 2);
  out.writeUInt32LE(54, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(24, 28);
  out.writeUInt32LE(stride * height, 34);
  out.writeInt32LE(2835, 38); // 72 dpi
  out.writeInt32LE(2835, 42);
  for (let y = 0; y < height; y++) {
    let o = 54 + (height - 1 - y) * stride;
    let i = y * width * 3;
    for (let x = 0; x < width; x++, i += 3, o += 3) {
      out[o] = rgb[i + 2]!;
      out[o + 1] = rgb[i + 1]!;
      out[o + 2] = rgb[i]!;
    }
  }
  return out;
}

/** Decodes BI_RGB / BI_BITFIELDS 24- and 32-bit BMPs; anything else is refused as unsupported. */
export function decodeBmp(b: Uint8Array): RawImage {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf.length < 54) throw new GatewayError('invalid_image', { message: 'The BMP file is truncated.' });
  const offset = buf.readUInt32LE(10);
  const headerSize = buf.readUInt32LE(14);
  const width = buf.readInt32LE(18);
  const rawHeight = buf.readInt32LE(22);
  const bpp = buf.readUInt16LE(28);
  const compression = buf.readUInt32LE(30);
  const height = Math.abs(rawHeight);
  const topDown = rawHeight < 0;
  if (headerSize < 40 || width <= 0 || height <= 0) throw new GatewayError('invalid_image', { message: 'The BMP header is invalid.' });
  if (!((bpp === 24 && compression === 0) || (bpp === 32 && (compression === 0 || compression === 3)))) {
    throw new GatewayError('unsupported_media_type', {
      message: `BMP with ${bpp} bits per pixel and compression ${compression} is not supported; send PNG, JPEG or an uncompressed 24/32-bit BMP.`,
    });
  }
  const bytesPer = bpp / 8;
  const stride = (width * bytesPer + 3) & ~3;
  if (offset + stride * height > buf.length) throw new GatewayError('invalid_image', { message: 'The BMP file is truncated.' });
  // 32-bit BI_RGB files usually carry 0 in the fourth byte; only BITFIELDS with an alpha mask means real alpha.
  const hasAlpha = bpp === 32 && compression === 3 && headerSize >= 56 && buf.readUInt32LE(54 + 12) !== 0;
  const channels = hasAlpha ? 4 : 3;
  const data = Buffer.allocUnsafe(width * height * channels);
  for (let y = 0; y < height; y++) {
    let i = offset + (topDown ? y : height - 1 - y) * stride;
    let o = y * width * channels;
    for (let x = 0; x < width; x++, i += bytesPer, o += channels) {
      data[o] = buf[i + 2]!;
      data[o + 1] = buf[i + 1]!;
      data[o + 2] = buf[i]!;
      if (hasAlpha) data[o + 3] = buf[i + 3]!;
    }
  }
  return { data, width, height, channels };
}
