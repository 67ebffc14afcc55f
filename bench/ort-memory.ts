// bench/ort-memory.ts
// `npm run bench:ort-memory [-- --models u2netp,u2net,isnet --runs 8]`
// ORT's CPU memory arena and memory-pattern planner, side by side: per model and setting, a fresh process creates
// the session exactly as the gateway's worker does (sequential, intra-op threads, no spinning), runs it back to
// back and reports the median run and the process's resident memory. Chose INFERENCE_MEM_ARENA's default.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config.js';
import { getModelSpec, modelPath } from '../src/models/manifest.js';

const argv = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1]! : fallback;
};

if (argv[0] === '--child') {
  const [, file, size, runs, arena, pattern, threads] = argv;
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(file!, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: Number(threads),
    interOpNumThreads: 1,
    enableCpuMemArena: arena === '1',
    enableMemPattern: pattern === '1',
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  const n = Number(size);
  const data = new Float32Array(3 * n * n).map((_, i) => Math.sin(i * 0.37) * 2);
  const input = new ort.Tensor('float32', data, [1, 3, n, n]);
  const times: number[] = [];
  for (let i = 0; i < Number(runs) + 1; i++) {
    const t = performance.now();
    await session.run({ [session.inputNames[0]!]: input }, [session.outputNames[0]!]);
    times.push(performance.now() - t);
  }
  times.shift(); // the first run allocates
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ median: times[times.length >> 1], rss: process.memoryUsage().rss / 1048576 }));
  process.exit(0);
}

const config = loadConfig(process.env);
const models = opt('models', 'u2netp,u2net,isnet').split(',');
const runs = opt('runs', '6');
const settings = [
  { label: 'arena off', arena: '0', pattern: '1' },
  { label: 'arena + pattern (ORT default)', arena: '1', pattern: '1' },
  { label: 'arena, no pattern (ours)', arena: '1', pattern: '0' },
];
const self = fileURLToPath(import.meta.url);
console.log(`bench:ort-memory  ${new Date().toISOString()}  threads=${config.INFERENCE_THREADS}  runs=${runs}\n`);
console.log('| model | setting | median run ms | RSS MiB | speed vs arena off |');
console.log('|---|---|---|---|---|');
for (const model of models) {
  const file = modelPath(config.MODELS_DIR, model);
  const spec = getModelSpec(model);
  if (!spec || !existsSync(file)) {
    console.log(`| ${model} | not installed (npm run models -- ${model}) | | | |`);
    continue;
  }
  let off = NaN;
  for (const s of settings) {
    const out = execFileSync(process.execPath, ['--import', 'tsx', self, '--child', file, String(spec.inputSize), runs, s.arena, s.pattern, String(config.INFERENCE_THREADS)], { encoding: 'utf8' });
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as { median: number; rss: number };
    if (s.arena === '0') off = r.median;
    console.log(`| ${model} | ${s.label} | ${Math.round(r.median)} | ${Math.round(r.rss)} | ${(off / r.median).toFixed(2)}× |`);
  }
}
