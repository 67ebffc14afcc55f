// test/effects.test.ts
// Shared effects in the canonical pipeline (region of interest, layout on a canvas, stroke, drop shadow), with the real model.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/engine/engine.js';
import { makeJob, type RemovalJobInput } from '../src/job.js';
import { subjectBox } from '../src/pipeline/compose.js';
import { runJob, type PipelineDeps } from '../src/pipeline/run-job.js';
import { MemoryMaskCache } from '../src/store/memory/index.js';
import { startPipeline } from './helpers/engine.js';
import { alphaOf, decodeRgba, subjectFixture, type Fixture } from './helpers/fixtures.js';

let engine: Engine;
let deps: PipelineDeps;
let fx: Fixture;

beforeAll(async () => {
  // One inference for the whole file: every case reuses the cached mask of the same upload.
  ({ engine, deps } = await startPipeline({ maskCache: new MemoryMaskCache(64 << 20, 600) }));
  fx = await subjectFixture({ width: 320, height: 240 });
});
afterAll(async () => engine?.close());

async function cutout(options: Omit<RemovalJobInput, 'source'>) {
  const result = await runJob(makeJob({ source: { kind: 'bytes', bytes: fx.bytes }, ...options }), deps);
  const img = await decodeRgba(result.bytes);
  const alpha = alphaOf(img.data);
  return { result, img, alpha, box: subjectBox(alpha, img.width, img.height) };
}

describe('region of interest', () => {
  it('removes every subject pixel outside the region, in pixels or fractions', async () => {
    const plain = await cutout({});
    for (const roi of [
      { x1: { px: 0 }, y1: { px: 0 }, x2: { px: 160 }, y2: { px: 240 } },
      { x1: { fraction: 0 }, y1: { fraction: 0 }, x2: { fraction: 0.5 }, y2: { fraction: 1 } },
    ]) {
      const { alpha, img } = await cutout({ roi });
      let rightHalf = 0;
      for (let y = 0; y < img.height; y++) for (let x = 160; x < img.width; x++) rightHalf += alpha[y * img.width + x]!;
      expect(rightHalf).toBe(0);
      // The left half is untouched.
      expect(alpha[120 * 320 + 140]).toBe(plain.alpha[120 * 320 + 140]);
      expect(alpha[120 * 320 + 140]).toBeGreaterThan(200);
    }
  });
});

describe('layout on a canvas', () => {
  it('fits the subject into the given fraction of a new canvas, centred', async () => {
    const { img, box, result } = await cutout({ layout: { width: 600, height: 600, scale: 0.5, position: { x: 0.5, y: 0.5 } } });
    expect([img.width, img.height]).toEqual([600, 600]);
    expect(Math.max(box.width, box.height)).toBeGreaterThan(290);
    expect(Math.max(box.width, box.height)).toBeLessThanOrEqual(301);
    expect(Math.abs(box.left + box.width / 2 - 300)).toBeLessThan(4);
    expect(Math.abs(box.top + box.height / 2 - 300)).toBeLessThan(4);
    expect(result.foreground).toEqual(box);
  });

  it('puts the subject in a corner with position 0,0 and fills with mode fill', async () => {
    const corner = await cutout({ layout: { scale: 0.4, position: { x: 0, y: 0 } } });
    expect(corner.box.left).toBeLessThan(3);
    expect(corner.box.top).toBeLessThan(3);
    const fill = await cutout({ layout: { width: 200, height: 400, scale: 1, mode: 'fill', position: { x: 0.5, y: 0.5 } } });
    // Filling a tall canvas with a subject taller than wide: it spans the whole height and overflows none sideways here.
    expect(fill.box.height).toBeGreaterThanOrEqual(398);
  });
});

describe('stroke and shadow', () => {
  it('draws an opaque outline of the stroke colour just outside the subject', async () => {
    const plain = await cutout({});
    const stroked = await cutout({ stroke: { width: 6, color: { r: 0, g: 0, b: 255, alpha: 1 } } });
    const area = (a: Uint8Array) => a.filter((v) => v > 128).length;
    expect(area(stroked.alpha)).toBeGreaterThan(area(plain.alpha) * 1.05);
    // Three pixels left of the body's left edge, at mid height: blue and opaque.
    const y = 170;
    const row = plain.alpha.subarray(y * 320, (y + 1) * 320);
    const edge = row.findIndex((v) => v > 128);
    const p = (y * 320 + edge - 3) * 4;
    expect(stroked.img.data[p + 3]).toBeGreaterThan(200);
    expect(stroked.img.data[p + 2]).toBeGreaterThan(200);
    expect(stroked.img.data[p]).toBeLessThan(60);
  });

  it('casts a dark, soft shadow offset from the subject and keeps the subject on top', async () => {
    const plain = await cutout({ format: 'jpg' });
    const shadowed = await cutout({ format: 'jpg', shadow: { opacity: 0.8, offsetX: 0.1, offsetY: 0.05, blur: 0.01 } });
    // Right of the body, inside the shadow's offset: white before, darker after.
    const box = subjectBox(alphaOf((await cutout({})).img.data), 320, 240);
    const x = box.left + box.width + 8;
    const y = 200;
    // decodeRgba always answers RGBA.
    const lum = (img: { data: Buffer }, px: number) => img.data[(y * 320 + px) * 4]!;
    expect(lum(plain.img, x)).toBeGreaterThan(240);
    expect(lum(shadowed.img, x)).toBeLessThan(160);
    // The subject itself is unchanged where it is opaque.
    const inside = box.left + Math.round(box.width / 2);
    expect(Math.abs(lum(shadowed.img, inside) - lum(plain.img, inside))).toBeLessThan(12);
    // A transparent result keeps the shadow as partly transparent black.
    const rgba = await cutout({ shadow: { opacity: 0.5, offsetX: 0.1, offsetY: 0.05, blur: 0.01 } });
    const a = rgba.alpha[y * 320 + x]!;
    expect(a).toBeGreaterThan(60);
    expect(a).toBeLessThan(200);
  });
});
