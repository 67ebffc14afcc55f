// bench/http.ts
// `npm run bench:http [-- --models u2net,isnet --conc 1,2,4,8,32 --sizes 1,12 --scale 1 --no-peer]`
// Drives POST /v2 on loopback with a closed loop of undici connections at several concurrencies and image sizes, and in the same run:
// the ceiling (the model alone, back to back), the unavoidable bare decode + encode, the peer
// (@imgly/background-removal-node on the same IS-Net weights) under the same load, and a mask-cache retry.
// Everything is bounded by request counts; servers are child processes stopped at the end.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { Pool } from 'undici';
import { loadConfig } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { modelPath } from '../src/models/manifest.js';
import { cameraPhoto } from './photo.js';

sharp.cache(false);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const peerDir = path.join(root, 'bench', 'peer');
const KEY = 'bge_live_bench_http_key_0123456789abcdef';

const argv = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1]! : fallback;
};
const models = opt('models', 'u2net,isnet').split(',');
const concurrencies = opt('conc', '1,2,4,8,32').split(',').map(Number);
const sizes = opt('sizes', '1,12').split(',').map(Number);
/** Multiplies every cell's request count (0.5 for a quicker, noisier run). */
const scale = Number(opt('scale', '1'));
const withPeer = !argv.includes('--no-peer');
const peerModel = opt('peer-model', 'medium');
/**
 * Gateway settings compared side by side in the same run: `--variants "default;SHARP_CONCURRENCY=1;INFERENCE_MEM_ARENA=true"`
 * (each variant a space-separated list of VAR=value; "default" is none). Each variant is one more gateway row.
 */
const variants = opt('variants', 'default').split(';').map((v) => v.trim()).filter(Boolean).map((v) => ({
  label: v === 'default' ? 'gateway' : `gateway ${v}`,
  env: Object.fromEntries(v === 'default' ? [] : v.split(/\s+/).map((kv) => kv.split('=') as [string, string])),
}));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => pct(xs, 50);
function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}
const ms = (v: number) => (Number.isFinite(v) ? `${Math.round(v)}` : '–');

interface Child {
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function waitFor(url: string, proc: ChildProcess, seconds: number): Promise<void> {
  for (let i = 0; i < seconds * 5; i++) {
    if (proc.exitCode !== null) throw new Error(`${url}: server exited with ${proc.exitCode}`);
    if (await fetch(url).then((r) => r.ok, () => false)) return;
    await sleep(200);
  }
  throw new Error(`${url}: not ready after ${seconds} s`);
}

function stopper(proc: ChildProcess) {
  return async () => {
    if (proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await Promise.race([exited, sleep(20_000)]);
    if (proc.exitCode === null) proc.kill('SIGKILL');
  };
}

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as import('node:net').AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function startGateway(model: string, env: Record<string, string> = {}): Promise<Child> {
  const port = await freePort();
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'error',
      API_KEYS: KEY,
      DEFAULT_PLAN: 'Unlimited',
      MODEL: model,
      // Every cell repeats one image: without this, every request after the first would be a cache hit.
      MASK_CACHE_TTL_SECONDS: '0',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/v2/health`, proc, 120);
  return { url, proc, stop: stopper(proc) };
}

async function startPeer(): Promise<Child> {
  const port = await freePort();
  const proc = spawn(process.execPath, ['server.mjs'], {
    cwd: peerDir,
    env: { ...process.env, PORT: String(port), PEER_MODEL: peerModel },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(url, proc, 60);
  return { url, proc, stop: stopper(proc) };
}

async function eventLoopMaxMs(url: string): Promise<number> {
  // prom-client resets its event-loop histogram on every scrape, so each read covers the time since the last.
  const text = await fetch(`${url}/metrics`).then((r) => r.text(), () => '');
  const m = /^bgw_nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text);
  return m ? Number(m[1]) * 1000 : NaN;
}

interface Cell {
  server: string;
  model: string;
  size: number;
  conc: number;
  n: number;
  imgPerS: number;
  p50: number;
  p95: number;
  p99: number;
  rss: number;
  eld: number;
  refused: number;
  errors: number;
}

/**
 * A closed loop of `conc` keep-alive connections sending `n` requests in all, one at a time per connection, as
 * image clients do. undici (Node's own HTTP client, native llhttp parser) reads the answer and throws it away:
 * autocannon, tried first, parses bodies in JS and added ≈ 0.6 s per 37 MB PNG answer at 12 MP on the same two
 * cores as the servers it measured (server-side time 1.24 s, curl 1.45 s, autocannon 2.0–2.2 s).
 */
async function drive(target: Child, pathname: string, headers: Record<string, string>, body: Buffer, conc: number, n: number) {
  const pool = new Pool(target.url, { connections: conc, pipelining: 1, headersTimeout: 900_000, bodyTimeout: 900_000 });
  const times: number[] = [];
  const done: number[] = [];
  let ok = 0, refused = 0, errors = 0, sent = 0;
  let peak = rssMiB(target.proc.pid!);
  const poll = setInterval(() => (peak = Math.max(peak, rssMiB(target.proc.pid!))), 100);
  const started = performance.now();
  const connection = async () => {
    while (sent < n) {
      sent++;
      const t = performance.now();
      try {
        const res = await pool.request({ path: pathname, method: 'POST', headers, body });
        await res.body.dump({ limit: Number.POSITIVE_INFINITY });
        const now = performance.now();
        if (res.statusCode === 200) {
          ok++;
          times.push(now - t);
          done.push(now);
        } else if (res.statusCode === 503 || res.statusCode === 429) refused++;
        else errors++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: conc }, connection));
  const wall = (performance.now() - started) / 1000;
  clearInterval(poll);
  await pool.close();
  // Throughput at saturation: completions per second between the first and the last one, so the ramp-up (the
  // first image's whole latency, while the pipeline fills) does not count; with one completion, the wall rate.
  // A cell that is one wave (n ≤ conc) has no steady state: its completions can bunch at the end, so its rate is
  // the wall rate.
  const steady = n > conc && done.length >= 3 ? (done.length - 1) / ((done.at(-1)! - done[0]!) / 1000) : ok / wall;
  return { ok, refused, errors, imgPerS: steady, p50: pct(times, 50), p95: pct(times, 95), p99: pct(times, 99), rss: peak };
}

function requestsFor(conc: number, size: number): number {
  // Enough completions after the ramp-up for a steady rate: at least 8 (12 MP) / 12 (1 MP), and two rounds of the line.
  const base = size >= 12 ? Math.max(conc, 8) : Math.max(2 * conc, 12);
  return Math.max(conc, Math.round(base * scale));
}

/** The model alone, back to back on one warm session, on the gateway's own worker and thread settings. */
async function ceiling(model: string, rounds: number): Promise<number> {
  const config = loadConfig({ ...process.env, MODEL: model });
  const engine = await Engine.start({
    modelsDir: config.MODELS_DIR,
    defaultModel: model,
    extraModels: [],
    provider: config.EXECUTION_PROVIDER,
    workers: config.INFERENCE_WORKERS,
    threads: config.INFERENCE_THREADS,
    memArena: config.INFERENCE_MEM_ARENA,
  });
  try {
    const size = engine.spec().inputSize;
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const rgb = new Uint8Array(size * size * 3).map((_, j) => (j * 7 + i) & 0xff);
      const t = performance.now();
      await engine.infer(model, rgb);
      times.push(performance.now() - t);
    }
    return median(times);
  } finally {
    await engine.close();
  }
}

/** What no server can avoid: a bare decode of the upload and a bare PNG encode of the same-size RGBA result. */
async function bareDecodeEncode(image: Buffer, rounds: number): Promise<number> {
  const config = loadConfig(process.env);
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    const { data, info } = await sharp(image).rotate().ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    await sharp(data, { raw: { width: info.width, height: info.height, channels: 4 } })
      .png({ compressionLevel: config.PNG_COMPRESSION_LEVEL, adaptiveFiltering: config.PNG_ADAPTIVE_FILTERING })
      .toBuffer();
    times.push(performance.now() - t);
  }
  return median(times);
}

async function cacheRetry(model: string, image: Buffer): Promise<{ first: number; second: number }> {
  const gw = await startGateway(model, { MASK_CACHE_TTL_SECONDS: '600' });
  try {
    const once = async () => {
      const t = performance.now();
      const res = await fetch(`${gw.url}/v2`, { method: 'POST', headers: { 'x-api-key': KEY, 'content-type': 'image/jpeg' }, body: image });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`cache retry: status ${res.status}`);
      return performance.now() - t;
    };
    const first = await once();
    const second = await once();
    return { first, second };
  } finally {
    await gw.stop();
  }
}

async function main(): Promise<void> {
  for (const m of models) {
    if (!existsSync(modelPath(loadConfig(process.env).MODELS_DIR, m))) {
      console.error(`model ${m} is not installed: npm run models -- ${m}`);
      process.exit(2);
    }
  }
  const peerReady = withPeer && existsSync(path.join(peerDir, 'node_modules', '@imgly', 'background-removal-node'));
  if (withPeer && !peerReady) console.error(`peer not installed: (cd bench/peer && npm install) — running without it`);

  const images = new Map<number, Buffer>();
  for (const mp of sizes) {
    const [w, h] = mp >= 12 ? [4032, 3024] : [1152, 864];
    images.set(mp, await cameraPhoto(w, h));
  }
  console.log(`bench:http  ${new Date().toISOString()}  node ${process.version}  ${(await import('node:os')).availableParallelism()} cores`);
  console.log(`models ${models.join(', ')}  concurrency ${concurrencies.join(', ')}  sizes ${sizes.map((s) => `${s} MP`).join(', ')}  peer ${peerReady ? `@imgly/background-removal-node (${peerModel})` : 'off'}\n`);

  const cells: Cell[] = [];
  const ceilings = new Map<string, number>();
  const bare = new Map<number, number>();
  for (const [mp, img] of images) bare.set(mp, await bareDecodeEncode(img, 5));

  for (const model of models) {
    const c = await ceiling(model, model.startsWith('isnet') ? 5 : 9);
    ceilings.set(model, c);
    console.log(`ceiling ${model}: model alone ${ms(c)} ms/img → ${(1000 / c).toFixed(2)} img/s`);
    const targets: { server: string; start: () => Promise<Child>; path: string; headers: Record<string, string> }[] = [
      ...variants.map((v) => ({ server: v.label, start: () => startGateway(model, v.env), path: '/v2', headers: { 'x-api-key': KEY, 'content-type': 'image/jpeg' } })),
    ];
    if (peerReady && model === 'isnet') targets.push({ server: 'peer', start: startPeer, path: '/', headers: { 'content-type': 'image/jpeg' } });
    for (const t of targets) {
      const child = await t.start();
      try {
        // Warm-up at every size, so the first cells do not pay lazy loading (the peer loads its model on first
        // use) or code that is not yet optimised.
        for (const img of images.values()) await drive(child, t.path, t.headers, img, 1, 3);
        for (const [mp, img] of images) {
          for (const conc of concurrencies) {
            const n = requestsFor(conc, mp);
            if (isGateway(t.server)) await eventLoopMaxMs(child.url);
            const r = await drive(child, t.path, t.headers, img, conc, n);
            const eld = isGateway(t.server) ? await eventLoopMaxMs(child.url) : NaN;
            const cell: Cell = { server: t.server, model, size: mp, conc, n, imgPerS: r.imgPerS, p50: r.p50, p95: r.p95, p99: r.p99, rss: r.rss, eld, refused: r.refused, errors: r.errors };
            cells.push(cell);
            console.log(row(cell, ceilings));
          }
        }
      } finally {
        await child.stop();
      }
    }
  }

  console.log('\n## Table\n');
  console.log('| server | model | input | conc | n | img/s | of ceiling | p50 ms | p95 ms | p99 ms | peak RSS MiB | event-loop max ms | 503/429 | errors |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const cell of cells) console.log(row(cell, ceilings));

  console.log('\n## Reference in the same run\n');
  for (const [mp, b] of bare) console.log(`bare decode + PNG encode, ${mp} MP: ${ms(b)} ms`);
  for (const [m, c] of ceilings) {
    const c1 = cells.find((x) => x.server === 'gateway' && x.model === m && x.conc === 1 && x.size === 1);
    if (c1) console.log(`${m} 1 MP p50 at concurrency 1: ${ms(c1.p50)} ms vs target model-alone + 1.3 × bare = ${ms(c + 1.3 * bare.get(1)!)} ms`);
  }

  const peerCells = cells.filter((x) => x.server === 'peer');
  if (peerCells.length) {
    console.log('\n## Ours / peer (same weights, same load)\n');
    console.log('| input | conc | throughput × | p50 latency × | peak RSS × |');
    console.log('|---|---|---|---|---|');
    for (const p of peerCells) {
      const g = cells.find((x) => x.server === 'gateway' && x.model === p.model && x.size === p.size && x.conc === p.conc);
      if (!g) continue;
      console.log(`| ${p.size} MP | ${p.conc} | ${(g.imgPerS / p.imgPerS).toFixed(2)} | ${(g.p50 / p.p50).toFixed(2)} | ${(g.rss / p.rss).toFixed(2)} |`);
    }
  }

  const retry = await cacheRetry(models[0]!, images.get(sizes[0]!)!);
  console.log(`\nmask cache: first ${ms(retry.first)} ms, identical retry ${ms(retry.second)} ms → ${(retry.second / retry.first).toFixed(3)}× (target ≤ 0.1×)`);
}

function isGateway(server: string): boolean {
  return server.startsWith('gateway');
}

function row(c: Cell, ceilings: Map<string, number>): string {
  const ofCeiling = isGateway(c.server) ? (c.imgPerS / (1000 / ceilings.get(c.model)!)).toFixed(2) : '–';
  return `| ${c.server} | ${c.model} | ${c.size} MP | ${c.conc} | ${c.n} | ${c.imgPerS.toFixed(2)} | ${ofCeiling} | ${ms(c.p50)} | ${ms(c.p95)} | ${ms(c.p99)} | ${ms(c.rss)} | ${ms(c.eld)} | ${c.refused} | ${c.errors} |`;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
