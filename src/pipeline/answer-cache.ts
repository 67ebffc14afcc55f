// src/pipeline/answer-cache.ts
// The finished answer to an identical retry (same upload, model and options), kept in the mask cache's store
// under the same TTL and byte bound: a client that timed out and retries gets its bytes back without decode,
// inference or encode. Packed as [u32 meta length][meta JSON][image bytes] so both store kinds can hold it.
import { createHash } from 'node:crypto';
import type { RemovalJob, RemovalResult } from '../job.js';
import type { MaskCache } from '../store/types.js';

/** A key over everything that changes the answer; the source itself enters as its hash. */
export function answerKey(job: RemovalJob, model: string, sourceHash: string): string {
  const options = JSON.stringify({ ...job, source: undefined }, (_k, v: unknown) =>
    v instanceof Uint8Array ? createHash('sha256').update(v).digest('hex') : v,
  );
  return `out:${model}:${sourceHash}:${createHash('sha256').update(options).digest('hex')}`;
}

type Meta = Omit<RemovalResult, 'bytes' | 'maskCached' | 'timings'>;

/**
 * Large answers (a 12 MP PNG is ~17 MB) would evict hundreds of masks for one retry that is cheap to redo
 * from its cached mask anyway; only answers up to this size are kept.
 */
const MAX_ANSWER_BYTES = 8 << 20;

export async function getAnswer(cache: MaskCache, key: string): Promise<RemovalResult | undefined> {
  const hit = await cache.get(key).catch(() => undefined);
  // Answers are stored with size 0, which no model mask has: a key collision cannot mix the two.
  if (!hit || hit.size !== 0 || hit.data.byteLength < 4) return undefined;
  const buf = Buffer.from(hit.data.buffer, hit.data.byteOffset, hit.data.byteLength);
  const metaLength = buf.readUInt32LE(0);
  const meta = JSON.parse(buf.subarray(4, 4 + metaLength).toString('utf8')) as Meta;
  return { ...meta, bytes: buf.subarray(4 + metaLength), maskCached: true, timings: {} };
}

export async function putAnswer(cache: MaskCache, key: string, result: RemovalResult): Promise<void> {
  if (cache.ttlSeconds <= 0 || result.bytes.byteLength > MAX_ANSWER_BYTES) return;
  const { bytes, maskCached: _m, timings: _t, ...meta } = result;
  const head = Buffer.from(JSON.stringify(meta satisfies Meta), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(head.length, 0);
  await cache.set(key, { size: 0, data: Buffer.concat([length, head, bytes]) }).catch(() => undefined);
}
