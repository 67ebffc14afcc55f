// bench/pipeline.ts
// `npm run bench:pipeline [-- --rounds N --model NAME]`: model-only vs whole-pipeline time at 1 MP and 12 MP, side by side
// in one run, against the unavoidable part (a bare sharp decode + a bare encode of a same-size output in the same format).
import sharp from 'sharp';
import { loadConfig } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { makeJob, type OutputFormat } from '../src/job.js';
import { runJob, type PipelineDeps } from '../src/pipeline/run-job.js';
import { cameraPhoto } from './photo.js';

sharp.cache(false);
const args = process.argv.slice(2);
const arg = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const rounds = Number(arg('rounds', '5'));
const config = loadConfig(process.env);
const model = arg('model', config.MODEL);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const time = async (fn: () => Promise<unknown>) => {
  const t = performance.now();
  await fn();
  return performance.now() - t;
};

const engine = await Engine.start({ modelsDir: config.MODELS_DIR, defaultModel: model, extraModels: [], provider: config.EXECUTION_PROVIDER, workers: 1, threads: config.INFERENCE_THREADS, memArena: config.INFERENCE_MEM_ARENA });
const deps: PipelineDeps = {
  engine,
  limits: { maxInputPixels: config.MAX_INPUT_PIXELS, maxOutputPixels: config.MAX_OUTPUT_PIXELS },
  encode: { pngCompressionLevel: config.PNG_COMPRESSION_LEVEL, pngAdaptiveFiltering: config.PNG_ADAPTIVE_FILTERING },
  // The server's own matte setting, so this measures what a request to the gateway costs.
  matteRefine: config.MATTE_REFINE,
};
const spec = engine.spec(model);
const formats: OutputFormat[] = ['png', 'webp', 'jpg'];

/** The same encoder settings the pipeline uses, applied to a same-size raw image: the floor no pipeline can beat. */
function bareEncode(raw: Buffer, w: number, h: number, channels: 3 | 4, format: OutputFormat): Promise<Buffer> {
  const img = sharp(raw, { raw: { width: w, height: h, channels } });
  if (format === 'png') return img.png({ compressionLevel: config.PNG_COMPRESSION_LEVEL, adaptiveFiltering: config.PNG_ADAPTIVE_FILTERING, palette: false }).toBuffer();
  if (format === 'webp') return img.webp({ quality: 90, alphaQuality: 100, effort: 2 }).toBuffer();
  return img.jpeg({ quality: 90 }).toBuffer();
}

console.log(`bench:pipeline  model=${model} provider=${engine.provider} rounds=${rounds} threads=${config.INFERENCE_THREADS} arena=${config.INFERENCE_MEM_ARENA} refine=${config.MATTE_REFINE} png=cl${config.PNG_COMPRESSION_LEVEL}${config.PNG_ADAPTIVE_FILTERING ? '+adaptive' : ''}`);
const rows: string[][] = [];
const stageRows: string[][] = [];
for (const [label, w, h] of [['1 MP', 1152, 864], ['12 MP', 4032, 3024]] as const) {
  const jpeg = await cameraPhoto(w, h);
  const rgbSmall = await sharp(jpeg).resize(spec.inputSize, spec.inputSize, { fit: 'fill' }).removeAlpha().raw().toBuffer();
  // Warm every path once; the bare encoders get the pipeline's own output pixels, so both encode the same picture.
  await engine.infer(model, new Uint8Array(rgbSmall));
  const outputs: Partial<Record<OutputFormat, Buffer>> = {};
  for (const f of formats) {
    const result = await runJob(makeJob({ source: { kind: 'bytes', bytes: jpeg }, format: f }), deps);
    outputs[f] = await sharp(result.bytes)[f === 'jpg' ? 'removeAlpha' : 'ensureAlpha']().raw().toBuffer();
  }

  const t: Record<string, number[]> = {};
  const push = (k: string, v: number) => (t[k] ??= []).push(v);
  const stages: Record<string, Record<string, number[]>> = {};
  for (let r = 0; r < rounds; r++) {
    push('model', await time(() => engine.infer(model, new Uint8Array(rgbSmall))));
    push('decode', await time(() => sharp(jpeg).rotate().raw().toBuffer()));
    for (const f of formats) {
      push(`encode:${f}`, await time(() => bareEncode(outputs[f]!, w, h, f === 'jpg' ? 3 : 4, f)));
      let timings: Record<string, number> = {};
      push(`pipeline:${f}`, await time(async () => {
        timings = (await runJob(makeJob({ source: { kind: 'bytes', bytes: jpeg }, format: f }), deps)).timings;
      }));
      for (const [k, v] of Object.entries(timings)) ((stages[f] ??= {})[k] ??= []).push(v);
    }
  }
  for (const f of formats) {
    const m = median(t.model!);
    const p = median(t[`pipeline:${f}`]!);
    const bare = median(t.decode!) + median(t[`encode:${f}`]!);
    const outside = p - m;
    rows.push([label, f, m.toFixed(0), p.toFixed(0), (p / m).toFixed(2), outside.toFixed(0), bare.toFixed(0), (outside / bare).toFixed(2), outside / bare <= 1.3 ? 'ok' : 'OVER']);
    const st = stages[f]!;
    stageRows.push([label, f, ...['decode', 'infer', 'matte', 'crop', 'compose', 'encode'].map((k) => (st[k] ? median(st[k]).toFixed(0) : '-'))]);
  }
}

const table = (head: string[], body: string[][]) => {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of body) console.log(line(r));
};
console.log('\nmedians in ms; "outside" = pipeline − model-only; "bare" = sharp decode + bare encode of the same-size output; target outside/bare ≤ 1.3');
table(['photo', 'format', 'model-only', 'pipeline', 'pipeline/model', 'outside', 'bare dec+enc', 'outside/bare', 'target'], rows);
console.log('\npipeline stage medians (ms; "infer" includes the resize to the model input and the worker round trip)');
table(['photo', 'format', 'decode', 'infer', 'matte', 'crop', 'compose', 'encode'], stageRows);

if (args.includes('--png-sweep')) {
  const jpeg = await cameraPhoto(4032, 3024);
  const rgba = await sharp(jpeg).ensureAlpha().raw().toBuffer();
  const sweep: string[][] = [];
  for (const level of [0, 1, 2, 3, 6]) {
    for (const adaptive of [false, true]) {
      const times: number[] = [];
      let size = 0;
      for (let r = 0; r < 2; r++) {
        const t0 = performance.now();
        const out = await sharp(rgba, { raw: { width: 4032, height: 3024, channels: 4 } }).png({ compressionLevel: level, adaptiveFiltering: adaptive, palette: false }).toBuffer();
        times.push(performance.now() - t0);
        size = out.length;
      }
      sweep.push([String(level), String(adaptive), median(times).toFixed(0), (size / 1e6).toFixed(1)]);
    }
  }
  console.log('\nPNG settings at 12 MP RGBA (ms, MB)');
  table(['level', 'adaptive', 'ms', 'MB'], sweep);
}
await engine.close();
