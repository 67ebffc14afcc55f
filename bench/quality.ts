// bench/quality.ts
// `npm run bench:quality -- [--set grabcut|coco_mval|all] [--model NAME ...] [--data DIR] [--limit N] [--no-speed]`
// Runs, per model and per set, the PLAIN pipeline (mask stretched with lanczos, and with the pipeline's bilinear,
// no refinement) and OURS (edge-aware guided refinement, refine=auto) side by side in one run, on the same masks
// (one inference per image, shared through a mask cache). Predictions go to a temp dir and are scored by
// ../shared/eval/score.mjs. Then a speed section: matte time plain vs fast vs full at 1 MP and 12 MP, interleaved,
// as a share of the model's own time.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { loadConfig, PROJECT_ROOT } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { makeJob } from '../src/job.js';
import { decodeImage } from '../src/pipeline/decode.js';
import { upsampleMask } from '../src/pipeline/matte.js';
import { REFINE_PRESETS } from '../src/pipeline/refine.js';
import { runJob, type PipelineDeps } from '../src/pipeline/run-job.js';
import type { CachedMask, MaskCache } from '../src/store/types.js';
import { cameraPhoto } from './photo.js';

sharp.cache(false);
const run = promisify(execFile);
const args = process.argv.slice(2);
const many = (name: string) => args.flatMap((a, i) => (a === `--${name}` && args[i + 1] ? [args[i + 1]!] : []));
const one = (name: string, fallback: string) => many(name).at(-1) ?? fallback;

const config = loadConfig(process.env);
const dataDir = path.resolve(PROJECT_ROOT, one('data', path.join('..', 'shared', 'eval', 'data')));
const scorer = path.resolve(dataDir, '..', 'score.mjs');
const setArg = one('set', 'all');
const sets = setArg === 'all' ? ['grabcut', 'coco_mval'] : [setArg];
const models = many('model').length ? many('model') : ['u2netp', 'u2net', 'isnet'];
const limit = Number(one('limit', '0'));
const speedRounds = Number(one('rounds', '3'));
// Tuning overrides for both presets.
for (const p of Object.values(REFINE_PRESETS)) {
  if (many('eps').length) p.eps = Number(one('eps', '0'));
  if (many('radius').length) p.radiusMaskPx = Number(one('radius', '0'));
}
if (!fs.existsSync(scorer)) throw new Error(`scorer not found at ${scorer} (use --data DIR pointing at <eval>/data)`);
if (!fs.existsSync(path.join(path.dirname(scorer), 'node_modules'))) throw new Error(`run: cd ${path.dirname(scorer)} && npm install`);

class MemoryMasks implements MaskCache {
  readonly m = new Map<string, CachedMask>();
  readonly ttlSeconds = 3600;
  // Masks only: finished answers (keys "out:…") would make the repeated plain run look free.
  async get(k: string) {
    return k.startsWith('out:') ? undefined : this.m.get(k);
  }
  async set(k: string, v: CachedMask) {
    if (!k.startsWith('out:')) this.m.set(k, v);
  }
  clear() {
    this.m.clear();
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const table = (head: string[], body: string[][]) => {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of body) console.log(line(r));
};

const available = models.filter((m) => fs.existsSync(path.join(config.MODELS_DIR, `${m}.onnx`)));
for (const m of models) if (!available.includes(m)) console.log(`skipping ${m}: not installed (npm run models -- ${m})`);
const engine = await Engine.start({ modelsDir: config.MODELS_DIR, defaultModel: available[0]!, extraModels: available.slice(1), provider: config.EXECUTION_PROVIDER, workers: 1, threads: config.INFERENCE_THREADS });
const masks = new MemoryMasks();
const deps: PipelineDeps = {
  engine,
  limits: { maxInputPixels: config.MAX_INPUT_PIXELS, maxOutputPixels: config.MAX_OUTPUT_PIXELS },
  encode: { pngCompressionLevel: 1, pngAdaptiveFiltering: false },
  maskCache: masks,
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-quality-'));
const presets = Object.entries(REFINE_PRESETS).map(([k, p]) => `${k}: work ${p.workLongSide}px r ${p.radiusMaskPx} mask px eps ${p.eps}`).join('; ');
console.log(`bench:quality  ${new Date().toISOString()}  models=${available.join(',')} sets=${sets.join(',')} provider=${engine.provider} threads=${config.INFERENCE_THREADS}`);
console.log(`refinement presets: ${presets}; predictions in ${tmp}`);

type Variant = 'plain-lanczos' | 'plain' | 'ours';
const VARIANTS: Variant[] = ['plain-lanczos', 'plain', 'ours'];
const rows: string[][] = [];
const summary: Record<string, Record<Variant, { iou: number; mae: number; bF: number }>> = {};

for (const set of sets) {
  const dir = path.join(dataDir, set);
  let ids = fs.readdirSync(path.join(dir, 'images')).sort();
  if (limit > 0) ids = ids.slice(0, limit);
  for (const model of available) {
    const out = Object.fromEntries(VARIANTS.map((v) => [v, path.join(tmp, set, model, v)])) as Record<Variant, string>;
    for (const d of Object.values(out)) fs.mkdirSync(d, { recursive: true });
    const modelMs: number[] = [];
    const matteMs: Record<Variant, number[]> = { 'plain-lanczos': [], plain: [], ours: [] };
    const totalMs: Record<Variant, number[]> = { 'plain-lanczos': [], plain: [], ours: [] };
    for (const [k, file] of ids.entries()) {
      const id = file.replace(/\.[^.]+$/, '');
      const bytes = fs.readFileSync(path.join(dir, 'images', file));
      masks.clear();
      // The first pipeline run infers (its infer time is the model's own time, incl. the resize to its input).
      let t0 = performance.now();
      const first = await runJob(makeJob({ source: { kind: 'bytes', bytes }, model, channels: 'alpha', format: 'png', refine: 'off' }), deps);
      const inferMs = first.timings.infer!;
      modelMs.push(inferMs);
      const order: Variant[] = k % 2 ? ['ours', 'plain', 'plain-lanczos'] : ['plain-lanczos', 'plain', 'ours'];
      for (const v of order) {
        t0 = performance.now();
        let png: Uint8Array;
        let matte: number;
        if (v === 'plain-lanczos') {
          // The plain reference of issue 7: the model's mask stretched back with lanczos3.
          const image = await decodeImage(bytes, makeJob({ source: { kind: 'bytes', bytes } }), deps.limits);
          const hit = [...masks.m.values()][0]!;
          const tm = performance.now();
          const alpha = await sharp(hit.data, { raw: { width: hit.size, height: hit.size, channels: 1 } }).resize(image.width, image.height, { fit: 'fill', kernel: 'lanczos3' }).extractChannel(0).raw().toBuffer();
          matte = performance.now() - tm;
          png = await sharp(alpha, { raw: { width: image.width, height: image.height, channels: 1 } }).png({ compressionLevel: 1 }).toBuffer();
        } else {
          const r = await runJob(makeJob({ source: { kind: 'bytes', bytes }, model, channels: 'alpha', format: 'png', refine: v === 'plain' ? 'off' : 'auto' }), deps);
          png = r.bytes;
          matte = r.timings.matte!;
        }
        const wall = performance.now() - t0;
        matteMs[v].push(matte);
        totalMs[v].push(wall + inferMs);
        fs.writeFileSync(path.join(out[v], `${id}.png`), png);
      }
    }
    const scored = {} as Record<Variant, { iou: number; mae: number; bF: number }>;
    for (const v of VARIANTS) {
      const json = path.join(tmp, `${set}-${model}-${v}.json`);
      await run(process.execPath, [scorer, out[v], dir, '--quiet', '--json', json], { cwd: path.dirname(scorer), maxBuffer: 64 << 20 });
      const s = JSON.parse(fs.readFileSync(json, 'utf8')).summary as { iou: number; mae: number; bF: number };
      scored[v] = s;
      const m = mean(modelMs);
      const added = v === 'plain' ? 0 : mean(matteMs[v]) - mean(matteMs.plain);
      rows.push([set, model, v, s.iou.toFixed(3), s.mae.toFixed(4), s.bF.toFixed(3), mean(totalMs[v]).toFixed(0), m.toFixed(0), mean(matteMs[v]).toFixed(1), `${((100 * added) / m).toFixed(1)} %`]);
    }
    summary[`${set}/${model}`] = scored;
    const better = (plain: number, ours: number, lowerIsBetter: boolean) => `${((((lowerIsBetter ? plain - ours : ours - plain) / plain) * 100)).toFixed(1)} %`;
    console.log(`${set} ${model} (${ids.length} images): ours vs plain-lanczos IoU ${(scored.ours.iou - scored['plain-lanczos'].iou).toFixed(3)}, MAE better by ${better(scored['plain-lanczos'].mae, scored.ours.mae, true)}, bF better by ${better(scored['plain-lanczos'].bF, scored.ours.bF, false)}`);
  }
}

console.log('\nmeans per image; "ms/img" = model + the rest of the pipeline to an alpha PNG; "model ms" = inference incl. resize to its input;');
console.log('"matte ms" = the mask stage alone; "added" = (matte − plain bilinear matte) / model time');
table(['set', 'model', 'pipeline', 'IoU', 'MAE', 'bF', 'ms/img', 'model ms', 'matte ms', 'added'], rows);
console.log('\ngains of ours over plain-lanczos (MAE and bF: relative improvement; target ≥ 10 % on grabcut, IoU not worse)');
table(
  ['set/model', 'IoU Δ', 'MAE better', 'bF better'],
  Object.entries(summary).map(([k, s]) => [
    k,
    (s.ours.iou - s['plain-lanczos'].iou).toFixed(3),
    `${(((s['plain-lanczos'].mae - s.ours.mae) / s['plain-lanczos'].mae) * 100).toFixed(1)} %`,
    `${(((s.ours.bF - s['plain-lanczos'].bF) / s['plain-lanczos'].bF) * 100).toFixed(1)} %`,
  ]),
);

if (!args.includes('--no-speed')) {
  console.log(`\nspeed: matte stage at 1 MP and 12 MP (camera-like JPEG), medians of ${speedRounds} interleaved rounds, ms`);
  const speed: string[][] = [];
  for (const [label, w, h] of [['1 MP', 1152, 864], ['12 MP', 4032, 3024]] as const) {
    const jpeg = await cameraPhoto(w, h);
    const image = await decodeImage(jpeg, makeJob({ source: { kind: 'bytes', bytes: jpeg } }), deps.limits);
    for (const model of available) {
      const spec = engine.spec(model);
      const rgb = await sharp(jpeg).resize(spec.inputSize, spec.inputSize, { fit: 'fill' }).removeAlpha().raw().toBuffer();
      const t: Record<string, number[]> = { model: [], off: [], fast: [], full: [] };
      const base = { invertMask: false, grow: 0, semitransparency: true } as const;
      await engine.infer(model, new Uint8Array(rgb));
      for (let r = 0; r < speedRounds; r++) {
        let t0 = performance.now();
        const res = await engine.infer(model, new Uint8Array(rgb));
        t.model!.push(performance.now() - t0);
        const mask = { data: res.mask, size: res.size, inferMs: 0 };
        for (const mode of r % 2 ? (['full', 'fast', 'off'] as const) : (['off', 'fast', 'full'] as const)) {
          t0 = performance.now();
          await upsampleMask(mask, image, { ...base, refine: mode });
          t[mode]!.push(performance.now() - t0);
        }
      }
      const m = median(t.model!);
      const pct = (k: string) => `${(((median(t[k]!) - median(t.off!)) / m) * 100).toFixed(1)} %`;
      speed.push([label, model, m.toFixed(0), median(t.off!).toFixed(0), median(t.fast!).toFixed(0), median(t.full!).toFixed(0), pct('fast'), pct('full')]);
    }
  }
  table(['photo', 'model', 'model ms', 'plain matte', 'fast matte', 'full matte', 'fast added', 'full added'], speed);
}
await engine.close();
fs.rmSync(tmp, { recursive: true, force: true });
