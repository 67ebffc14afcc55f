// bench/photo.ts
// Camera-like test photos made on the spot: the fixture scene plus sensor-like noise, JPEG q90,
// so compressibility resembles a real photo (a flat synthetic image would flatter every encoder).
import sharp from 'sharp';
import { subjectFixture } from '../test/helpers/fixtures.js';

export async function cameraPhoto(width: number, height: number, seed = 1): Promise<Buffer> {
  const base = await subjectFixture({ width, height, background: 'textured', format: 'png' });
  const { data, info } = await sharp(base.bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    // xorshift noise, roughly Gaussian via the sum of three uniforms, sigma ≈ 5
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    const n = ((s & 0xff) + ((s >>> 8) & 0xff) + ((s >>> 16) & 0xff) - 382.5) / 12.8;
    const v = data[i]! + n;
    data[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return sharp(data, { raw: { width: info.width, height: info.height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}
