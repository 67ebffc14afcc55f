// bench/quality.ts
// `npm run bench:quality -- [DATASET_DIR] [--set grabcut|coco_mval|all] [--model NAME ...] [--data DIR] [--limit N] [--rounds N] [--no-speed] [--ablation]`
// DATASET_DIR (e.g. ../shared/eval/data/grabcut) runs that one set; by default both sets under --data.
// Per model and per set, in one run and on the same masks (one inference per image): the PLAIN pipeline (the model's
// mask stretched with lanczos3, issue 7's reference) beside ours (refine off = bilinear stretch, fast, full, and a
// diagnostic 1-px choke), scored in-process by ../shared/eval/score.mjs (bench/eval-scorer.ts). Then a speed section:
// the matte stage and foreground estimation at 1 MP and 12 MP, interleaved, as a share of the model's own time.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { loadConfig, PROJECT_ROOT } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { makeJob } from '../src/job.js';
import { decodeImage, openImage, type DecodedImage } from '../src/pipeline/decode.js';
import { estimateForeground } from '../src/pipeline/foreground.js';
import { inferMask, type LowResMask } from '../src/pipeline/infer.js';
import { autoRefine, upsampleMask, type MatteOptions } from '../src/pipeline/matte.js';
import { CURVE, REFINE_PRESETS, refineMask } from '../src/pipeline/refine.js';
import { CLEANUP } from '../src/pipeline/mask-cleanup.js';
import { loadScorer, type PairScore } from './eval-scorer.js';
import { cameraPhoto } from './photo.js';

sharp.cache(false);
const args = process.argv.slice(2);
const many = (name: string) => args.flatMap((a, i) => (a === `--${name}` && args[i + 1] ? [args[i + 1]!] : []));
const one = (name: string, fallback: string) => many(name).at(-1) ?? fallback;

const config = loadConfig(process.env);
const VALUED = new Set(['--set', '--model', '--data', '--limit', '--rounds']);
const positional = args.filter((a, i) => !a.startsWith('--') && !VALUED.has(args[i - 1] ?? ''));
const single = positional[0] ? path.resolve(process.cwd(), positional[0]) : undefined;
const dataDir = single ? path.dirname(single) : path.resolve(PROJECT_ROOT, one('data', path.join('..', 'shared', 'eval', 'data')));
const setArg = single ? path.basename(single) : one('set', 'all');
const sets = setArg === 'all' ? ['grabcut', 'coco_mval'] : [setArg];
const models = (many('model').length ? many('model') : ['u2netp', 'u2net', 'isnet', 'isnet-quint8']).filter((m) => {
  const ok = fs.existsSync(path.join(config.MODELS_DIR, `${m}.onnx`));
  if (!ok) console.log(`skipping ${m}: not installed (npm run models -- ${m})`);
  return ok;
});
const limit = Number(one('limit', '0'));
const speedRounds = Number(one('rounds', '5'));
const scorer = await loadScorer(path.dirname(dataDir));
const limits = { maxInputPixels: config.MAX_INPUT_PIXELS, maxOutputPixels: config.MAX_OUTPUT_PIXELS };

type Variant = 'plain' | 'off' | 'hard' | 'curve' | 'band' | 'fast' | 'full' | 'choke';
// --ablation adds the steps of `fast` one at a time (the curve alone, then the edge band, then the clean-up = fast)
// and the stretch thresholded at half: the most confident alpha possible without moving an edge.
const VARIANTS: Variant[] = args.includes('--ablation') ? ['plain', 'off', 'hard', 'curve', 'band', 'fast', 'full', 'choke'] : ['plain', 'off', 'fast', 'full', 'choke'];
const LABEL: Record<Variant, string> = {
  plain: 'plain: lanczos stretch',
  off: 'ours, refine=off (bilinear)',
  hard: 'ablation: bilinear, threshold 0.5',
  curve: 'ablation: curve only',
  band: 'ablation: curve + edge band',
  fast: 'ours, refine=fast',
  full: 'ours, refine=full',
  choke: 'diagnostic: fast + 1-px choke',
};
const base: MatteOptions = { invertMask: false, grow: 0, semitransparency: true };

/** One variant's alpha for a decoded image and its mask; lanczos via sharp is the plain reference. */
async function matte(v: Variant, mask: LowResMask, image: DecodedImage): Promise<Buffer> {
  if (v === 'plain') {
    return sharp(mask.data, { raw: { width: mask.size, height: mask.size, channels: 1 } })
      .resize(image.width, image.height, { fit: 'fill', kernel: 'lanczos3' })
      .extractChannel(0)
      .raw()
      .toBuffer();
  }
  if (v === 'choke') return upsampleMask(mask, image, { ...base, refine: 'fast', grow: -1 });
  if (v === 'hard') return upsampleMask(mask, image, { ...base, refine: 'off', semitransparency: false });
  if (v === 'curve' || v === 'band') {
    const saved = { ...CLEANUP };
    Object.assign(CLEANUP, { speck: 0, pinhole: 0 });
    try {
      return refineMask(mask.data, mask.size, image, { ...REFINE_PRESETS.fast, ...(v === 'curve' ? { iterations: 0 } : {}) });
    } finally {
      Object.assign(CLEANUP, saved);
    }
  }
  return upsampleMask(mask, image, { ...base, refine: v });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
const table = (head: string[], body: string[][]) => {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  console.log(`| ${head.map((h, i) => h.padEnd(widths[i]!)).join(' | ')} |`);
  console.log(`|${widths.map((w, i) => (i < 3 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of body) console.log(`| ${r.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`);
};

async function loadGrey(file: string): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(file).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

console.log(`bench:quality  ${new Date().toISOString()}  models=${models.join(',')} sets=${sets.join(',')} scorer=${scorer.source}`);
console.log(
  `presets: ${Object.entries(REFINE_PRESETS)
    .map(([k, p]) => `${k} work ≤${p.workLongSide}px & ≤${p.workPerMaskPx}×mask, band ±${p.bandMaskPx} mask px, ${p.iterations} sweeps`)
    .join('; ')}; curve gain ${CURVE.minGain}–${CURVE.maxGain} (${CURVE.gainPerSlope}/slope); cleanup specks/pinholes < ${CLEANUP.speck * 100} % of the mask`,
);

interface Row {
  set: string;
  model: string;
  n: number;
  modelMs: number;
  scores: Record<Variant, PairScore>;
  ms: Record<Variant, number>;
}
const rows: Row[] = [];

for (const model of models) {
  // One engine per model keeps peak memory to one session (isnet alone is ~2 GB).
  const engine = await Engine.start({ modelsDir: config.MODELS_DIR, defaultModel: model, extraModels: [], provider: config.EXECUTION_PROVIDER, workers: 1, threads: config.INFERENCE_THREADS, memArena: config.INFERENCE_MEM_ARENA });
  for (const set of sets) {
    const dir = path.join(dataDir, set);
    let files = fs.readdirSync(path.join(dir, 'images')).sort();
    if (limit > 0) files = files.slice(0, limit);
    const sums = Object.fromEntries(VARIANTS.map((v) => [v, { iou: 0, mae: 0, sad: 0, mse: 0, grad: 0, bF: 0 }])) as Record<Variant, PairScore>;
    const ms = Object.fromEntries(VARIANTS.map((v) => [v, [] as number[]])) as Record<Variant, number[]>;
    const modelMs: number[] = [];
    for (const [k, file] of files.entries()) {
      const id = file.replace(/\.[^.]+$/, '');
      const bytes = fs.readFileSync(path.join(dir, 'images', file));
      const opened = await openImage(bytes, limits);
      const image = await decodeImage(opened, makeJob({ source: { kind: 'bytes', bytes } }), limits);
      const mask = await inferMask(engine, model, opened);
      modelMs.push(mask.inferMs);
      const gt = await loadGrey(path.join(dir, 'masks', `${id}.png`));
      if (gt.width !== image.width || gt.height !== image.height) throw new Error(`${set}/${id}: ground truth ${gt.width}x${gt.height} vs image ${image.width}x${image.height}`);
      const G = Float32Array.from(gt.data, (v) => v / 255);
      const ignoreFile = path.join(dir, 'ignore', `${id}.png`);
      const ignore = fs.existsSync(ignoreFile) ? Uint8Array.from((await loadGrey(ignoreFile)).data, (v) => (v >= 128 ? 1 : 0)) : null;
      // Alternate the order so no variant always runs first (warm caches, JIT).
      for (const v of k % 2 ? [...VARIANTS].reverse() : VARIANTS) {
        const t0 = performance.now();
        const alpha = await matte(v, mask, image);
        ms[v].push(performance.now() - t0);
        const s = scorer.scorePair(Float32Array.from(alpha, (a) => a / 255), G, image.width, image.height, ignore);
        for (const key of Object.keys(sums[v]) as (keyof PairScore)[]) sums[v][key] += s[key];
      }
    }
    const n = files.length;
    for (const v of VARIANTS) for (const key of Object.keys(sums[v]) as (keyof PairScore)[]) sums[v][key] /= n;
    rows.push({ set, model, n, modelMs: mean(modelMs), scores: sums, ms: Object.fromEntries(VARIANTS.map((v) => [v, mean(ms[v])])) as Record<Variant, number> });
    const r = rows.at(-1)!;
    console.log(`${set} ${model} (${n} images, model ${r.modelMs.toFixed(0)} ms/img): fast vs plain MAE ${pct((r.scores.plain.mae - r.scores.fast.mae) / r.scores.plain.mae)}, bF ${pct((r.scores.fast.bF - r.scores.plain.bF) / r.scores.plain.bF)}`);
  }
  await engine.close();
}

console.log('\nQuality: mean per image; "matte ms" = the mask stage alone per image (the eval photos are 0.1–0.3 MP);');
console.log('"added" = (matte − plain matte) / model ms. MAE/bF "vs plain" = relative improvement over the lanczos stretch.');
for (const set of sets) {
  console.log(`\n${set}`);
  const body: string[][] = [];
  for (const r of rows.filter((x) => x.set === set)) {
    for (const v of VARIANTS) {
      const s = r.scores[v], p = r.scores.plain;
      body.push([
        r.model,
        LABEL[v],
        String(r.n),
        s.iou.toFixed(3),
        s.mae.toFixed(4),
        s.bF.toFixed(3),
        v === 'plain' ? '' : (s.iou - p.iou >= 0 ? '+' : '') + (s.iou - p.iou).toFixed(3),
        v === 'plain' ? '' : pct((p.mae - s.mae) / p.mae),
        v === 'plain' ? '' : pct((s.bF - p.bF) / p.bF),
        r.ms[v].toFixed(1),
        r.modelMs.toFixed(0),
        v === 'plain' ? '' : pct((r.ms[v] - r.ms.plain) / r.modelMs),
      ]);
    }
  }
  table(['model', 'pipeline', 'n', 'IoU', 'MAE', 'bF', 'IoU Δ', 'MAE vs plain', 'bF vs plain', 'matte ms', 'model ms', 'added'], body);
}

if (!args.includes('--no-speed') && models.length) {
  console.log(`\nSpeed at camera sizes: median of ${speedRounds} interleaved rounds, ms (refine=auto picks ${autoRefine(1152, 864)} at 1 MP, ${autoRefine(4032, 3024)} at 12 MP)`);
  // A real contour matters (the band follows it): an eval photo upscaled with sensor-like noise, its own mask.
  const sample = path.join(dataDir, 'grabcut', 'images', '153077.jpg');
  const photo = (w: number, h: number) => (fs.existsSync(sample) ? cameraJpeg(sample, w, h) : cameraPhoto(w, h));
  const speed: string[][] = [];
  for (const model of models) {
    const engine = await Engine.start({ modelsDir: config.MODELS_DIR, defaultModel: model, extraModels: [], provider: config.EXECUTION_PROVIDER, workers: 1, threads: config.INFERENCE_THREADS, memArena: config.INFERENCE_MEM_ARENA });
    for (const [label, w, h] of [['1 MP', 1152, 864], ['12 MP', 4032, 3024]] as const) {
      const jpeg = await photo(w, h);
      const opened = await openImage(jpeg, limits);
      const image = await decodeImage(opened, makeJob({ source: { kind: 'bytes', bytes: jpeg } }), limits);
      await inferMask(engine, model, opened);
      const t: Record<string, number[]> = { model: [], off: [], fast: [], full: [], plain: [], fg: [] };
      for (let r = 0; r < speedRounds; r++) {
        const mask = await inferMask(engine, model, opened);
        t.model!.push(mask.inferMs);
        for (const v of (r % 2 ? ['full', 'fast', 'off', 'plain'] : ['plain', 'off', 'fast', 'full']) as Variant[]) {
          const t0 = performance.now();
          await matte(v, mask, image);
          t[v]!.push(performance.now() - t0);
        }
        const alpha = await matte('fast', mask, image);
        const copy = Buffer.from(image.data);
        const t0 = performance.now();
        estimateForeground(copy, image.channels, alpha, image.width, image.height);
        t.fg!.push(performance.now() - t0);
      }
      const m = median(t.model!);
      const added = (k: string) => pct((median(t[k]!) - median(t.plain!)) / m);
      speed.push([label, model, m.toFixed(0), median(t.plain!).toFixed(0), median(t.off!).toFixed(0), median(t.fast!).toFixed(0), added('fast'), median(t.full!).toFixed(0), added('full'), median(t.fg!).toFixed(0), pct(median(t.fg!) / m)]);
    }
    await engine.close();
  }
  table(['photo', 'model', 'model ms', 'plain (lanczos)', 'off (bilinear)', 'fast', 'fast added', 'full', 'full added', 'colour estimation', 'its share'], speed);
}

/** An eval photo at w×h (lanczos3) with sensor-like noise, JPEG q90, as bench/photo.ts does for its fixture. */
async function cameraJpeg(file: string, width: number, height: number): Promise<Buffer> {
  const { data, info } = await sharp(file).resize(width, height, { fit: 'fill', kernel: 'lanczos3' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let s = 1;
  for (let i = 0; i < data.length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    const v = data[i]! + ((s & 0xff) + ((s >>> 8) & 0xff) + ((s >>> 16) & 0xff) - 382.5) / 12.8;
    data[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return sharp(data, { raw: { width: info.width, height: info.height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}
