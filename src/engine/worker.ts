// src/engine/worker.ts
// One ONNX session per worker thread: session.run() is synchronous on its calling thread,
// so keeping it here leaves the HTTP event loop free while a model runs.
import { existsSync, readlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { withDynamicBatch } from './onnx-batch.js';
import type { ItemResult, Provider, RunRequest, WorkerInit, WorkerMessage } from './protocol.js';
import { toAlpha, toPlanarFloat } from './tensor.js';

const init = workerData as WorkerInit;
const port = parentPort!;
const post = (msg: WorkerMessage, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

function sessionOptions(provider: Provider): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: provider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    graphOptimizationLevel: 'all',
    // 'sequential' is 1.65–1.9× faster than 'parallel' on these graphs (little branch parallelism).
    executionMode: 'sequential',
    ...(init.threads > 0 ? { intraOpNumThreads: init.threads, interOpNumThreads: 1 } : {}),
    // Measured on this 2-core machine (`npm run bench:ort-memory`, bench/RESULTS.md): without the arena every run
    // allocates its buffers afresh and u2net runs 2×, IS-Net 2.5× slower. The memory pattern planner, on top of
    // the arena, only adds resident memory (u2net +180 MB, IS-Net +840 MB) at the same speed, so it stays off.
    enableCpuMemArena: init.memArena,
    enableMemPattern: false,
    // Spinning threads fight the sharp work running beside inference; turning it off costs nothing measurable.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

/** The CUDA EP ships as a separate library that onnxruntime-node installs only with ONNXRUNTIME_NODE_INSTALL=cuda12. */
function cudaLibraryInstalled(): boolean {
  try {
    const pkg = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
    const dir = path.join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
    return existsSync(path.join(dir, 'libonnxruntime_providers_cuda.so')) || existsSync(path.join(dir, 'onnxruntime_providers_cuda.dll'));
  } catch {
    return false;
  }
}

type ModelSource = string | Uint8Array;
const create = (source: ModelSource, provider: Provider) =>
  typeof source === 'string' ? ort.InferenceSession.create(source, sessionOptions(provider)) : ort.InferenceSession.create(source, sessionOptions(provider));

async function createSession(source: ModelSource): Promise<{ session: ort.InferenceSession; provider: Provider; fallbackReason?: string }> {
  if (init.provider === 'auto' && !cudaLibraryInstalled()) {
    // Probing anyway would work but makes ORT print a scary load error on every CPU start.
    const fallbackReason = 'CUDA execution provider not installed (install with ONNXRUNTIME_NODE_INSTALL=cuda12)';
    return { session: await create(source, 'cpu'), provider: 'cpu', fallbackReason };
  }
  if (init.provider === 'cpu') return { session: await create(source, 'cpu'), provider: 'cpu' };
  try {
    return { session: await create(source, 'cuda'), provider: 'cuda' };
  } catch (err) {
    if (init.provider === 'cuda') throw err;
    const fallbackReason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return { session: await create(source, 'cpu'), provider: 'cpu', fallbackReason };
  }
}

interface Ready {
  session: ort.InferenceSession;
  provider: Provider;
  fallbackReason?: string;
  maxBatch: number;
  batchNote?: string;
}

/**
 * A batching session needs the model rewritten with a symbolic batch dimension, and a trial run at batch 2
 * proves the graph allows it (IS-Net's quantised file does not: constant Resize sizes). Any failure falls back
 * to the plain file at batch 1, with the reason reported for health and logs.
 */
async function openSession(): Promise<Ready> {
  const plain = async (batchNote?: string): Promise<Ready> => ({ ...(await createSession(init.modelFile)), maxBatch: 1, ...(batchNote ? { batchNote } : {}) });
  if (init.batch === 1) return plain();
  if (init.batch === 'auto') {
    // Decide by provider: on CPU the convolutions already fill the cores, so batching only adds latency and memory.
    const first = await plain();
    if (first.provider !== 'cuda') return first;
    await first.session.release();
  }
  const want = init.batch === 'auto' ? 8 : init.batch;
  try {
    const dynamic = withDynamicBatch(await readFile(init.modelFile));
    const created = await createSession(dynamic);
    const size = init.spec.inputSize;
    const probe = new ort.Tensor('float32', new Float32Array(2 * 3 * size * size), [2, 3, size, size]);
    const inputName = created.session.inputNames.includes(init.spec.input) ? init.spec.input : created.session.inputNames[0]!;
    await created.session.run({ [inputName]: probe }, [created.session.outputNames[init.spec.outputIndex]!]);
    return { ...created, maxBatch: want };
  } catch (err) {
    return plain(`batching unavailable for ${init.spec.name}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
}

/**
 * Lowers this thread's CPU priority before the session exists, so ORT's intra-op threads, created with the session,
 * inherit it: with every core busy in inference, the event loop and sharp still get a core when they need one, and
 * the model takes the rest. Linux keeps nice per thread and lets anyone lower their own; elsewhere this is skipped.
 */
function lowerPriority(nice: number): void {
  if (nice <= 0 || process.platform !== 'linux') return;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) os.setPriority(tid, Math.min(19, os.getPriority(tid) + nice));
  } catch {
    // Best effort: without it inference still runs, only at the event loop's priority.
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  lowerPriority(init.nice);
  let ready: Ready;
  try {
    ready = await openSession();
  } catch (err) {
    post({ type: 'init-failed', message: err instanceof Error ? err.message : String(err) });
    return;
  }
  const { session, provider, maxBatch } = ready;
  const spec = init.spec;
  const size = spec.inputSize;
  const plane = 3 * size * size;
  const inputName = session.inputNames.includes(spec.input) ? spec.input : session.inputNames[0]!;
  const outputName = session.outputNames[spec.outputIndex]!;
  const input = new Float32Array(maxBatch * plane);

  const run = async (n: number) => {
    const out = await session.run({ [inputName]: new ort.Tensor('float32', input.subarray(0, n * plane), [n, 3, size, size]) }, [outputName]);
    const tensor = out[outputName]!;
    const data = tensor.data as Float32Array;
    const masks = Array.from({ length: n }, (_, i) => toAlpha(data.subarray(i * size * size, (i + 1) * size * size), spec.output));
    tensor.dispose?.();
    return masks;
  };

  // Warm-up: the first run grows ORT's arena and is slower; pay it at start, not on the first request.
  await run(1);
  post({
    type: 'ready',
    provider,
    loadMs: performance.now() - started,
    maxBatch,
    ...(ready.fallbackReason ? { fallbackReason: ready.fallbackReason } : {}),
    ...(ready.batchNote ? { batchNote: ready.batchNote } : {}),
  });

  port.on('message', async (msg: RunRequest) => {
    if (msg.type !== 'run') return;
    const t0 = performance.now();
    const items: ItemResult[] = msg.batch.map(() => ({ error: 'not run' }));
    // Bad pixels fail their own image; the rest of the batch runs without it.
    const good: number[] = [];
    for (const [i, rgb] of msg.batch.entries()) {
      try {
        toPlanarFloat(rgb, spec, input.subarray(good.length * plane, (good.length + 1) * plane));
        good.push(i);
      } catch (err) {
        items[i] = { error: err instanceof Error ? err.message : String(err) };
      }
    }
    const t1 = performance.now();
    if (good.length > 0) {
      try {
        const masks = await run(good.length);
        good.forEach((at, k) => (items[at] = { mask: masks[k]! }));
      } catch (err) {
        if (good.length === 1) items[good[0]!] = { error: err instanceof Error ? err.message : String(err) };
        else {
          // A batch that fails is retried one image at a time, so one bad input cannot fail its neighbours.
          for (const at of good) {
            try {
              toPlanarFloat(msg.batch[at]!, spec, input.subarray(0, plane));
              items[at] = { mask: (await run(1))[0]! };
            } catch (e) {
              items[at] = { error: e instanceof Error ? e.message : String(e) };
            }
          }
        }
      }
    }
    const t2 = performance.now();
    const transfer = items.flatMap((r) => ('mask' in r ? [r.mask.buffer as ArrayBuffer] : []));
    post({ type: 'result', id: msg.id, items, inferMs: t2 - t1, prepMs: t1 - t0 }, transfer);
  });
}

void main();
