// test/pipeline.test.ts
// The removal pipeline end to end with the real default model: quality, orientation, formats, crop, sizes, colours, errors.
import { unzipSync } from 'fflate';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/engine/engine.js';
import { GatewayError } from '../src/errors.js';
import { makeJob, type RemovalJobInput } from '../src/job.js';
import { decodeBmp } from '../src/pipeline/bmp.js';
import { runJob, type PipelineDeps } from '../src/pipeline/run-job.js';
import { MemoryMaskCache } from '../src/store/memory/index.js';
import { startPipeline } from './helpers/engine.js';
import { alphaOf, decodeRgba, iou, subjectFixture, type Fixture } from './helpers/fixtures.js';

let engine: Engine;
let deps: PipelineDeps;
let fx: Fixture;

beforeAll(async () => {
  ({ engine, deps } = await startPipeline());
  fx = await subjectFixture();
});
afterAll(async () => engine?.close());

const run = (bytes: Uint8Array, options: Omit<RemovalJobInput, 'source'> = {}, d: PipelineDeps = deps) =>
  runJob(makeJob({ source: { kind: 'bytes', bytes }, ...options }), d);

async function rejectsWith(p: Promise<unknown>, code: string): Promise<GatewayError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  expect((err as GatewayError).code).toBe(code);
  return err as GatewayError;
}

describe('cut-out quality', () => {
  it.each(['plain', 'textured'] as const)('matches the known mask on a %s background (IoU ≥ 0.9)', async (background) => {
    const f = await subjectFixture({ background });
    const result = await run(f.bytes);
    const out = await decodeRgba(result.bytes);
    expect([out.width, out.height]).toEqual([f.width, f.height]);
    expect(iou(alphaOf(out.data), f.mask)).toBeGreaterThan(0.9);
  });

  it('keeps soft alpha at the edges rather than a hard 0/255 cut', async () => {
    const out = await decodeRgba((await run(fx.bytes)).bytes);
    const alpha = alphaOf(out.data);
    const soft = alpha.filter((a) => a > 10 && a < 245).length;
    expect(soft).toBeGreaterThan(100);
  });
});

describe('orientation', () => {
  it('applies EXIF orientation so the cut-out comes out upright', async () => {
    // Store the pixels rotated 90° anticlockwise and tag orientation 6 ("rotate 90° clockwise to display").
    const stored = await sharp(fx.bytes).rotate(-90).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const meta = await sharp(stored).metadata();
    expect([meta.width, meta.height, meta.orientation]).toEqual([fx.height, fx.width, 6]);
    const result = await run(stored);
    expect([result.width, result.height]).toEqual([fx.width, fx.height]);
    const out = await decodeRgba(result.bytes);
    expect(iou(alphaOf(out.data), fx.mask)).toBeGreaterThan(0.9);
  });
});

describe('input formats', () => {
  const inputs: [string, () => Promise<Buffer>][] = [
    ['PNG', () => sharp(fx.bytes).png().toBuffer()],
    ['WebP', () => sharp(fx.bytes).webp().toBuffer()],
    ['AVIF', () => sharp(fx.bytes).avif({ effort: 0 }).toBuffer()],
    ['TIFF', () => sharp(fx.bytes).tiff().toBuffer()],
    ['GIF', () => sharp(fx.bytes).gif().toBuffer()],
    ['CMYK JPEG', () => sharp(fx.bytes).toColourspace('cmyk').jpeg().toBuffer()],
    ['16-bit PNG', () => sharp(fx.bytes).toColourspace('rgb16').png().toBuffer()],
    ['greyscale JPEG', () => sharp(fx.bytes).greyscale().jpeg().toBuffer()],
    ['PNG with alpha', () => sharp(fx.bytes).ensureAlpha(1).png().toBuffer()],
  ];
  it.each(inputs)('decodes %s', async (_name, make) => {
    const bytes = await make();
    const result = await run(bytes, { format: 'png' });
    expect([result.width, result.height]).toEqual([fx.width, fx.height]);
    const out = await decodeRgba(result.bytes);
    expect(iou(alphaOf(out.data), fx.mask)).toBeGreaterThan(0.8);
  });

  it('decodes uncompressed BMP, which libvips cannot', async () => {
    const { data, info } = await sharp(fx.bytes).raw().toBuffer({ resolveWithObject: true });
    const { encodeBmp } = await import('../src/pipeline/bmp.js');
    const bmp = encodeBmp(data, info.width, info.height);
    const result = await run(bmp);
    expect([result.width, result.height]).toEqual([fx.width, fx.height]);
    expect(result.input.type).toBe('bmp');
  });

  it('keeps transparent input pixels transparent', async () => {
    // Left half of the upload fully transparent: the cut-out there must be too.
    const { data, info } = await sharp(fx.bytes).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    for (let y = 0; y < info.height; y++) for (let x = 0; x < info.width / 2; x++) data[(y * info.width + x) * 4 + 3] = 0;
    const png = await sharp(data, { raw: { width: info.width, height: info.height, channels: 4 } }).png().toBuffer();
    const out = await decodeRgba((await run(png)).bytes);
    const alpha = alphaOf(out.data);
    let maxLeft = 0;
    for (let y = 0; y < out.height; y++) for (let x = 0; x < out.width / 2; x++) maxLeft = Math.max(maxLeft, alpha[y * out.width + x]!);
    expect(maxLeft).toBe(0);
  });
});

describe('output formats', () => {
  it.each([
    ['png', 'png', 4],
    ['webp', 'webp', 4],
    ['tiff', 'tiff', 4],
    ['avif', 'heif', 4],
    ['jpg', 'jpeg', 3],
    ['gif', 'gif', 3],
  ] as const)('%s decodes back at the right size with the right channels', async (format, sharpFormat, channels) => {
    const result = await run(fx.bytes, { format });
    const meta = await sharp(result.bytes).metadata();
    expect(meta.format).toBe(sharpFormat);
    expect([meta.width, meta.height]).toEqual([fx.width, fx.height]);
    if (channels === 4) {
      expect(meta.hasAlpha).toBe(true);
      const out = await decodeRgba(result.bytes);
      expect(iou(alphaOf(out.data), fx.mask)).toBeGreaterThan(0.85);
    } else {
      // Flattened on white: the corner (background) is white, the centre (subject) is not.
      const { data } = await sharp(result.bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      expect(data[0]).toBeGreaterThan(240);
      const centre = (Math.round(fx.height * 0.7) * fx.width + fx.width / 2) * 3;
      expect(data[centre]! + data[centre + 1]! + data[centre + 2]!).toBeLessThan(600);
    }
  });

  it('bmp is a 24-bit BMP, flattened on white', async () => {
    const result = await run(fx.bytes, { format: 'bmp' });
    expect(result.contentType).toBe('image/bmp');
    const img = decodeBmp(result.bytes);
    expect([img.width, img.height, img.channels]).toEqual([fx.width, fx.height, 3]);
    expect([img.data[0], img.data[1], img.data[2]]).toEqual([255, 255, 255]);
  });

  it('zip holds color.jpg and alpha.png, as remove.bg clients expect', async () => {
    const result = await run(fx.bytes, { format: 'zip' });
    expect(result.contentType).toBe('application/zip');
    const files = unzipSync(result.bytes);
    expect(Object.keys(files).sort()).toEqual(['alpha.png', 'color.jpg']);
    const color = await sharp(files['color.jpg']!).metadata();
    const alpha = await sharp(files['alpha.png']!).metadata();
    expect([color.format, color.width, color.height]).toEqual(['jpeg', fx.width, fx.height]);
    expect([alpha.format, alpha.width, alpha.height, alpha.channels]).toEqual(['png', fx.width, fx.height, 1]);
    const mask = await sharp(files['alpha.png']!).extractChannel(0).raw().toBuffer();
    expect(iou(mask, fx.mask)).toBeGreaterThan(0.9);
  });

  it('channels=alpha gives a single-channel mask', async () => {
    const result = await run(fx.bytes, { channels: 'alpha' });
    const meta = await sharp(result.bytes).metadata();
    expect([meta.format, meta.channels, meta.width, meta.height]).toEqual(['png', 1, fx.width, fx.height]);
    expect(iou(await sharp(result.bytes).extractChannel(0).raw().toBuffer(), fx.mask)).toBeGreaterThan(0.9);
  });

  it('PNG is never palette-quantised', async () => {
    const meta = await sharp((await run(fx.bytes)).bytes).metadata();
    expect(meta.isPalette ?? false).toBe(false);
    expect(meta.channels).toBe(4);
  });
});

describe('crop and sizes', () => {
  // The fixture's subject spans x 0.34–0.66 of the width and y 0.17–0.95 of the height.
  it('crop=true returns just the subject box', async () => {
    const result = await run(fx.bytes, { crop: true });
    const expectedW = fx.width * 0.32;
    const expectedH = fx.height * (0.95 - 0.17);
    expect(Math.abs(result.width - expectedW)).toBeLessThan(fx.width * 0.04);
    expect(Math.abs(result.height - expectedH)).toBeLessThan(fx.height * 0.05);
    expect(result.foreground).toEqual({ left: 0, top: 0, width: result.width, height: result.height });
  });

  it('crop margin grows the box and stays inside the image', async () => {
    const plain = await run(fx.bytes, { crop: true });
    const wide = await run(fx.bytes, { crop: true, cropMargin: { px: 20, fraction: 0 } });
    expect(wide.width).toBe(plain.width + 40);
    expect(wide.foreground.left).toBe(20);
    const huge = await run(fx.bytes, { crop: true, cropMargin: { px: 5000, fraction: 0 } });
    expect([huge.width, huge.height]).toEqual([fx.width, fx.height]);
  });

  it('reports the subject box without cropping', async () => {
    const result = await run(fx.bytes);
    expect(Math.abs(result.foreground.left - fx.width * 0.34)).toBeLessThan(fx.width * 0.03);
    expect(Math.abs(result.foreground.top - fx.height * 0.17)).toBeLessThan(fx.height * 0.04);
  });

  it.each([
    ['preview', 250_000],
    ['medium', 1_500_000],
    ['hd', 4_000_000],
  ] as const)('size=%s caps pixels and never upscales', async (size, cap) => {
    const big = await subjectFixture({ width: 2400, height: 1800 });
    const result = await run(big.bytes, { size });
    expect(result.width * result.height).toBeLessThanOrEqual(cap);
    expect(Math.abs(result.width / result.height - 4 / 3)).toBeLessThan(0.01);
    const small = await run(fx.bytes, { size: size === 'preview' ? 'medium' : size });
    expect([small.width, small.height]).toEqual([fx.width, fx.height]);
  });

  it('size=full keeps the original size up to the configured maximum', async () => {
    const capped = { ...deps, limits: { ...deps.limits, maxOutputPixels: 100_000 } };
    const result = await run(fx.bytes, { size: 'full' }, capped);
    expect(result.width * result.height).toBeLessThanOrEqual(100_000);
    expect((await run(fx.bytes, { size: 'full' })).width).toBe(fx.width);
  });
});

describe('backgrounds', () => {
  const corner = async (bytes: Uint8Array) => {
    const { data } = await sharp(bytes).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    return [data[0], data[1], data[2], data[3]];
  };
  it.each([
    ['FF0000', [255, 0, 0, 255]],
    ['#0f0', [0, 255, 0, 255]],
    ['rebeccapurple', [102, 51, 153, 255]],
    ['rgb(10, 20, 30)', [10, 20, 30, 255]],
  ])('bg_color %s flattens the background', async (value, expected) => {
    const { parseColor } = await import('../src/pipeline/color.js');
    const result = await run(fx.bytes, { bgColor: parseColor(value) });
    expect(await corner(result.bytes)).toEqual(expected);
  });

  it('8-digit hex keeps a translucent background', async () => {
    const { parseColor } = await import('../src/pipeline/color.js');
    const result = await run(fx.bytes, { bgColor: parseColor('0000ff80') });
    const [r, g, b, a] = await corner(result.bytes);
    expect([r, g, b]).toEqual([0, 0, 255]);
    expect(Math.abs(a! - 128)).toBeLessThanOrEqual(1);
  });

  it('rejects colours it cannot parse, naming the field', async () => {
    const { parseColor } = await import('../src/pipeline/color.js');
    expect(() => parseColor('notacolour')).toThrow(/bg_color/);
  });

  it('despill removes the old background colour from edge pixels', async () => {
    const green = await subjectFixture();
    // Recolour the plain background to saturated green, as on a green screen.
    const { data, info } = await sharp(green.bytes).raw().toBuffer({ resolveWithObject: true });
    for (let p = 0; p < green.mask.length; p++) if (green.mask[p]! < 128) data.set([20, 200, 40], p * 3);
    const screen = await sharp(data, { raw: { width: info.width, height: info.height, channels: 3 } }).png().toBuffer();
    const greenness = async (despill: boolean) => {
      const out = await decodeRgba((await run(screen, { despill })).bytes);
      let sum = 0;
      let n = 0;
      for (let p = 0; p < out.width * out.height; p++) {
        const a = out.data[p * 4 + 3]!;
        if (a > 30 && a < 220) {
          sum += out.data[p * 4 + 1]! - (out.data[p * 4]! + out.data[p * 4 + 2]!) / 2;
          n++;
        }
      }
      return sum / Math.max(n, 1);
    };
    expect(await greenness(true)).toBeLessThan((await greenness(false)) - 20);
  });
});

describe('bad input', () => {
  it('random bytes are invalid_image', async () => {
    await rejectsWith(run(Buffer.from('this is not an image at all, just text')), 'invalid_image');
  });
  it('a truncated PNG is invalid_image', async () => {
    const png = await sharp(fx.bytes).png().toBuffer();
    await rejectsWith(run(png.subarray(0, 400)), 'invalid_image');
  });
  it('SVG and PSD are unsupported_media_type', async () => {
    await rejectsWith(run(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>')), 'unsupported_media_type');
    await rejectsWith(run(Buffer.concat([Buffer.from('8BPS'), Buffer.alloc(40)])), 'unsupported_media_type');
  });
  it('too many pixels is image_too_large, before decoding', async () => {
    const tight = { ...deps, limits: { ...deps.limits, maxInputPixels: 100_000 } };
    const err = await rejectsWith(run(fx.bytes, {}, tight), 'image_too_large');
    expect(err.status).toBe(413);
  });
});

describe('mask cache', () => {
  it('a retried upload costs no inference', async () => {
    const cached = { ...deps, maskCache: new MemoryMaskCache(1 << 20, 60) };
    const before = engine.runs;
    const first = await run(fx.bytes, {}, cached);
    const second = await run(fx.bytes, { format: 'webp' }, cached);
    expect(engine.runs - before).toBe(1);
    expect([first.maskCached, second.maskCached]).toEqual([false, true]);
  });

  it('an identical retry gets the same answer back without decoding or encoding again', async () => {
    const cached = { ...deps, maskCache: new MemoryMaskCache(8 << 20, 60) };
    const first = await run(fx.bytes, { format: 'png', crop: true }, cached);
    const retry = await run(fx.bytes, { format: 'png', crop: true }, cached);
    expect(Buffer.compare(Buffer.from(retry.bytes), Buffer.from(first.bytes))).toBe(0);
    expect([retry.width, retry.height, retry.foreground]).toEqual([first.width, first.height, first.foreground]);
    expect(retry.timings.decode).toBeUndefined();
    expect(first.timings.decode).toBeDefined();
    // Any option that changes the answer is part of the key.
    const other = await run(fx.bytes, { format: 'png', crop: true, bgColor: { r: 0, g: 0, b: 255, alpha: 1 } }, cached);
    expect(other.timings.decode).toBeDefined();
    expect(Buffer.compare(Buffer.from(other.bytes), Buffer.from(first.bytes))).not.toBe(0);
  });
});
