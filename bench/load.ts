// bench/load.ts
// Load, overload, soak, disconnect and Redis-fault runs against a real server process on 127.0.0.1.
// Bounded in count and time; stops by itself; exits non-zero when a target is missed.
//   npm run bench:load                      # all scenarios, short
//   npm run bench:load -- --soak-seconds 600 --only soak
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { cameraPhoto } from './photo.js';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    'overload-seconds': { type: 'string', default: '20' },
    'soak-seconds': { type: 'string', default: '60' },
    'fault-seconds': { type: 'string', default: '6' },
  },
});
const root = path.resolve(import.meta.dirname, '..');
const KEY = 'bge_live_load_bench_key_0123456789abcdef';
const failures: string[] = [];
const wants = (name: string) => !args.only || args.only.split(',').includes(name);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]! : NaN);
const fmt = (ms: number) => (Number.isFinite(ms) ? `${Math.round(ms)} ms` : '–');

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

interface Server {
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

async function startServer(env: Record<string, string>): Promise<Server> {
  const port = await freePort();
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'error', API_KEYS: KEY, DEFAULT_PLAN: 'Unlimited', MASK_CACHE_TTL_SECONDS: '0', ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}`);
    const ok = await fetch(`${url}/v2/health`).then((r) => r.ok, () => false);
    if (ok) break;
    await sleep(200);
  }
  return {
    url,
    proc,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([exited, sleep(30_000)]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}

interface Outcome {
  status: number | 'timeout' | 'error';
  ms: number;
  retryAfter: string | null;
  code?: string;
}

async function removal(url: string, image: Buffer, timeoutMs = 60_000): Promise<Outcome> {
  const started = performance.now();
  try {
    const res = await fetch(`${url}/v2`, {
      method: 'POST',
      headers: { 'x-api-key': KEY, 'content-type': 'image/jpeg' },
      body: image,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = Buffer.from(await res.arrayBuffer());
    const code = res.status >= 400 ? (JSON.parse(body.toString()) as { error?: { code?: string } }).error?.code : undefined;
    return { status: res.status, ms: performance.now() - started, retryAfter: res.headers.get('retry-after'), ...(code ? { code } : {}) };
  } catch (err) {
    return { status: (err as Error).name === 'TimeoutError' ? 'timeout' : 'error', ms: performance.now() - started, retryAfter: null };
  }
}

async function rssMiB(url: string): Promise<number> {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  const m = /bgw_process_resident_memory_bytes (\d+)/.exec(text);
  return m ? Number(m[1]) / 2 ** 20 : NaN;
}

function summarise(label: string, outcomes: Outcome[]): void {
  const by = new Map<string, Outcome[]>();
  for (const o of outcomes) {
    const k = String(o.status) + (o.code ? ` ${o.code}` : '');
    by.set(k, [...(by.get(k) ?? []), o]);
  }
  console.log(`  ${label}: ${outcomes.length} requests`);
  for (const [k, os] of [...by].sort()) {
    const ms = os.map((o) => o.ms);
    console.log(`    ${k.padEnd(28)} ${String(os.length).padStart(5)}   p50 ${fmt(pct(ms, 50)).padStart(8)}   p99 ${fmt(pct(ms, 99)).padStart(8)}`);
  }
}

/** Closed loop at the queue's concurrency: the server's capacity in images per second. */
async function capacity(url: string, image: Buffer, concurrency: number, count: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < count) await removal(url, image);
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

/** Open loop: requests arrive at `rate` per second whatever the answers, for `seconds`. */
async function openLoop(url: string, image: Buffer, rate: number, seconds: number, during?: (elapsed: number) => void): Promise<Outcome[]> {
  const pending: Promise<Outcome>[] = [];
  const started = performance.now();
  for (let i = 0; ; i++) {
    const due = started + (i / rate) * 1000;
    if (due - started > seconds * 1000) break;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    during?.((performance.now() - started) / 1000);
    pending.push(removal(url, image, 30_000));
  }
  return Promise.all(pending);
}

async function overload(image: Buffer): Promise<void> {
  console.log('\n== overload: open loop at 2× measured capacity');
  const server = await startServer({ QUEUE_CONCURRENCY: '2', QUEUE_MAX_WAITING: '4' });
  try {
    await removal(server.url, image);
    const cap = await capacity(server.url, image, 2, 12);
    console.log(`  capacity ${cap.toFixed(2)} img/s (closed loop, concurrency 2)`);
    const outcomes = await openLoop(server.url, image, cap * 2, Number(args['overload-seconds']));
    summarise(`2× capacity = ${(cap * 2).toFixed(2)} req/s for ${args['overload-seconds']} s`, outcomes);
    const bad = outcomes.filter((o) => !(o.status === 200 || ((o.status === 503 || o.status === 429) && o.retryAfter)));
    const refusals = outcomes.filter((o) => o.status === 503).map((o) => o.ms);
    console.log(`  served ${outcomes.filter((o) => o.status === 200).length}, refused with Retry-After ${refusals.length} (p99 ${fmt(pct(refusals, 99))}), other ${bad.length}`);
    if (bad.length) failures.push(`overload: ${bad.length} requests neither served nor refused with Retry-After`);
    if (pct(refusals, 99) > 1000) failures.push(`overload: refusals are slow (p99 ${fmt(pct(refusals, 99))})`);
  } finally {
    await server.stop();
  }
}

async function soak(image: Buffer): Promise<void> {
  const seconds = Number(args['soak-seconds']);
  console.log(`\n== soak: steady load near capacity for ${seconds} s, RSS sampled`);
  const server = await startServer({ QUEUE_CONCURRENCY: '2', QUEUE_MAX_WAITING: '8' });
  try {
    await removal(server.url, image);
    const samples: [number, number][] = [];
    const started = performance.now();
    const sampler = setInterval(() => void rssMiB(server.url).then((mb) => samples.push([(performance.now() - started) / 1000, mb])), Math.max(1000, (seconds * 1000) / 30));
    let stop = false;
    const outcomes: Outcome[] = [];
    const timer = setTimeout(() => (stop = true), seconds * 1000);
    await Promise.all(
      Array.from({ length: 2 }, async () => {
        while (!stop) outcomes.push(await removal(server.url, image));
      }),
    );
    clearTimeout(timer);
    clearInterval(sampler);
    summarise('soak', outcomes);
    console.log(`  RSS MiB over time: ${samples.map(([t, mb]) => `${t.toFixed(0)}s:${mb.toFixed(0)}`).join(' ')}`);
    // Growth across the second half: a leak keeps climbing after the allocators have warmed up.
    const half = samples.filter(([t]) => t >= seconds / 2).map(([, mb]) => mb);
    const growth = half.length > 1 ? half.at(-1)! - Math.min(...half) : 0;
    console.log(`  RSS growth over the second half: ${growth.toFixed(0)} MiB`);
    if (growth > 100) failures.push(`soak: RSS kept growing (${growth.toFixed(0)} MiB in the second half)`);
    if (outcomes.some((o) => o.status !== 200)) failures.push('soak: some requests failed');
  } finally {
    await server.stop();
  }
}

async function disconnects(image: Buffer): Promise<void> {
  console.log('\n== disconnects: clients that leave mid-upload or while queued');
  const server = await startServer({ QUEUE_CONCURRENCY: '1', QUEUE_MAX_WAITING: '64' });
  try {
    await removal(server.url, image);
    const rssBefore = await rssMiB(server.url);
    for (let round = 0; round < 5; round++) {
      // Mid-upload: send half the bytes with a declared full length, then drop the socket.
      await Promise.all(
        Array.from({ length: 10 }, () =>
          new Promise<void>((resolve) => {
            const sock = net.connect(Number(new URL(server.url).port), '127.0.0.1', () => {
              sock.write(`POST /v2 HTTP/1.1\r\nHost: x\r\nx-api-key: ${KEY}\r\ncontent-type: image/jpeg\r\ncontent-length: ${image.length}\r\n\r\n`);
              sock.write(image.subarray(0, image.length >> 1), () => setTimeout(() => (sock.destroy(), resolve()), 20));
            });
            sock.on('error', () => resolve());
          }),
        ),
      );
      // While queued: many requests, all aborted shortly after they are accepted.
      await Promise.all(Array.from({ length: 20 }, () => removal(server.url, image, 150)));
    }
    await sleep(3000);
    const metrics = await fetch(`${server.url}/metrics`).then((r) => r.text());
    const waiting = Number(/bgw_queue_jobs\{state="waiting"\} (\d+)/.exec(metrics)?.[1]);
    const inferences = Number(/bgw_inference_seconds_count\{[^}]*\} (\d+)/.exec(metrics)?.[1] ?? 0);
    const rssAfter = await rssMiB(server.url);
    console.log(`  150 abandoned requests: queue waiting afterwards ${waiting}, inferences run ${inferences} for 100 requests abandoned while queued and 50 mid-upload, RSS ${rssBefore.toFixed(0)} → ${rssAfter.toFixed(0)} MiB`);
    if (waiting !== 0) failures.push('disconnects: jobs left in the queue');
    if (inferences > 20) failures.push(`disconnects: ${inferences} inferences ran for clients that had gone`);
    if (rssAfter - rssBefore > 150) failures.push(`disconnects: RSS grew ${(rssAfter - rssBefore).toFixed(0)} MiB`);
    const ok = await removal(server.url, image);
    if (ok.status !== 200) failures.push('disconnects: server unhealthy afterwards');
  } finally {
    await server.stop();
  }
}

async function redisFault(image: Buffer): Promise<void> {
  const seconds = Number(args['fault-seconds']);
  console.log('\n== Redis faults mid-load: unresponsive (SIGSTOP), then killed and restarted');
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bgw-redis-'));
  const redisArgs = ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir];
  let redis = spawn('redis-server', redisArgs, { stdio: 'ignore' });
  await sleep(500);
  const server = await startServer({ REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_KEY_PREFIX: `bench:${process.pid}:`, QUEUE_CONCURRENCY: '2', QUEUE_MAX_WAITING: '8', STORE_TIMEOUT_MS: '500' });
  try {
    await removal(server.url, image);
    const cap = await capacity(server.url, image, 2, 6);
    const phases: Record<string, Outcome[]> = { before: [], down: [], after: [] };
    let phase = 'before';
    const run = async (fault: () => Promise<void>, recover: () => Promise<void>) => {
      const outcomes: [string, Promise<Outcome>][] = [];
      const started = performance.now();
      let faulted = false;
      let recovered = false;
      for (let i = 0; (performance.now() - started) / 1000 < seconds * 3; i++) {
        const t = (performance.now() - started) / 1000;
        if (!faulted && t > seconds) await fault().then(() => ((faulted = true), (phase = 'down')));
        if (!recovered && t > seconds * 2) await recover().then(() => ((recovered = true), (phase = 'recovering')));
        if (phase === 'recovering' && t > seconds * 2 + 1.5) phase = 'after';
        outcomes.push([phase, removal(server.url, image, 20_000)]);
        await sleep(1000 / cap);
      }
      for (const [p, o] of outcomes) if (phases[p]) phases[p]!.push(await o);
    };
    await run(
      async () => void redis.kill('SIGSTOP'),
      async () => void redis.kill('SIGCONT'),
    );
    for (const [p, os] of Object.entries(phases)) summarise(`unresponsive Redis, ${p}`, os);
    check('unresponsive', phases);
    for (const k of Object.keys(phases)) phases[k] = [];
    phase = 'before';
    await run(
      async () => {
        redis.kill('SIGKILL');
        await new Promise((r) => redis.once('exit', r));
      },
      async () => {
        redis = spawn('redis-server', redisArgs, { stdio: 'ignore' });
        await sleep(300);
      },
    );
    for (const [p, os] of Object.entries(phases)) summarise(`killed Redis, ${p}`, os);
    check('killed', phases);
  } finally {
    await server.stop();
    redis.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }

  function check(name: string, phases: Record<string, Outcome[]>) {
    const down = phases.down!;
    const wrong = down.filter((o) => !(o.status === 200 || (o.status === 503 && o.code === 'store_unavailable' && o.retryAfter)));
    const slow = pct(down.filter((o) => o.status === 503).map((o) => o.ms), 99);
    const after = phases.after!;
    const recoveredOk = after.length > 0 && after.filter((o) => o.status === 200).length / after.length >= 0.9;
    console.log(`  ${name}: while down ${down.filter((o) => o.status === 503).length}/${down.length} got 503 store_unavailable (p99 ${fmt(slow)}), other ${wrong.length}; after recovery ${after.filter((o) => o.status === 200).length}/${after.length} served`);
    if (wrong.length) failures.push(`redis ${name}: ${wrong.length} requests got neither 200 nor 503 store_unavailable with Retry-After`);
    if (slow > 2000) failures.push(`redis ${name}: store_unavailable is slow (p99 ${fmt(slow)})`);
    if (!recoveredOk) failures.push(`redis ${name}: did not recover`);
  }
}

async function main(): Promise<void> {
  const image = await cameraPhoto(800, 600);
  console.log(`image: 800×600 JPEG, ${(image.length / 1024).toFixed(0)} KiB; model ${process.env.MODEL ?? 'u2net'}; ${os.availableParallelism()} cores`);
  if (wants('overload')) await overload(image);
  if (wants('disconnects')) await disconnects(image);
  if (wants('redis')) await redisFault(image);
  if (wants('soak')) await soak(image);
  console.log(failures.length ? `\nFAILED:\n  ${failures.join('\n  ')}` : '\nall load targets met');
  process.exit(failures.length ? 1 : 0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
