// test/compat-effects.test.ts
// The effects tool (seed 001) over real HTTP with the real model: 202 + SSE progress (raw and through an EventSource
// client), downloads, phase-2 effects re-rendered from the cache without another inference (the engine's run
// counter), every parameter of the seed's tables measured on the output, EXIF rotation, errors checked against
// openapi.yaml, expiry on a moved clock, and two replicas on Redis.
import { randomUUID } from 'node:crypto';
import { EventSource } from 'eventsource';
import { Redis } from 'ioredis';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { effects as effectsAdapter } from '../compat/effects/index.js';
import { adapterApp } from '../compat/mount.js';
import { alphaOf, decodeRgba, iou, subjectFixture, type Fixture } from './helpers/fixtures.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';
import { expectDocumented, expectMatchesSpec, expectRoutesDocumented } from './helpers/openapi.js';

let s: TestServer;
let fx: Fixture;
const KEY = { 'x-api-key': TEST_KEY };

beforeAll(async () => {
  s = await startServer({ MASK_CACHE_MAX_BYTES: '0' });
  fx = await subjectFixture();
});
afterAll(async () => {
  vi.useRealTimers();
  await s?.close();
});

interface Complete {
  phase: 'complete';
  percent: number;
  result: { jobId: string; downloadUrl: string; maskUrl: string; originalUrl: string; originalSize: number; processedSize: number; filename: string; model: string };
}

function phase1(settings: Record<string, unknown> | undefined, extra: Record<string, string | Blob> = {}, bytes: Uint8Array = fx.bytes, name = 'photo.jpg') {
  const fd = new FormData();
  fd.append('file', new Blob([bytes], { type: 'image/jpeg' }), name);
  if (settings) fd.append('settings', JSON.stringify(settings));
  for (const [k, v] of Object.entries(extra)) fd.append(k, v);
  return fetch(`${s.url}/api/v1/tools/remove-background`, { method: 'POST', headers: KEY, body: fd });
}

/** Reads the progress stream with a real EventSource client until the final event. */
function follow(jobId: string, base = s.url): Promise<{ events: Record<string, unknown>[]; final: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const events: Record<string, unknown>[] = [];
    const es = new EventSource(`${base}/api/v1/jobs/${jobId}/progress`);
    const timer = setTimeout(() => {
      es.close();
      reject(new Error('no final progress event within 60 s'));
    }, 60_000);
    es.addEventListener('progress', (e) => {
      const data = JSON.parse(e.data) as Record<string, unknown>;
      events.push(data);
      if (data.phase === 'complete' || data.phase === 'failed') {
        clearTimeout(timer);
        es.close();
        resolve({ events, final: data });
      }
    });
    es.onerror = () => undefined;
  });
}

async function runPhase1(settings?: Record<string, unknown>, extra?: Record<string, string | Blob>): Promise<Complete> {
  const res = await phase1(settings, extra);
  expect(res.status, await res.clone().text()).toBe(202);
  const body = (await expectMatchesSpec(res, 'effectsPhase1')) as { jobId: string; async: boolean };
  expect(body.async).toBe(true);
  const { final } = await follow(body.jobId);
  await expectMatchesSpec(await fetch(`${s.url}/api/v1/jobs/${body.jobId}`), 'effectsJob');
  expect(final.phase, JSON.stringify(final)).toBe('complete');
  return final as unknown as Complete;
}

const download = async (path: string, base = s.url) => {
  const res = await fetch(`${base}${path}`);
  expect(res.status, path).toBe(200);
  await expectDocumented(res, 'effectsDownload');
  return { res, bytes: new Uint8Array(await res.arrayBuffer()) };
};

async function effects(settings: Record<string, unknown>, extra: Record<string, string | Blob> = {}, headers: Record<string, string> = KEY, base = s.url) {
  const fd = new FormData();
  fd.append('settings', JSON.stringify(settings));
  for (const [k, v] of Object.entries(extra)) fd.append(k, v);
  const res = await fetch(`${base}/api/v1/tools/remove-background/effects`, { method: 'POST', headers, body: fd });
  // Every phase-2 answer, success or error, is checked against openapi.yaml.
  await expectMatchesSpec(res, 'effectsPhase2');
  return res;
}

/** Phase 1 with any picture and settings, followed to its final event; the final event must be complete. */
async function complete(settings: Record<string, unknown> | undefined, bytes: Uint8Array = fx.bytes, name = 'photo.jpg', extra: Record<string, string | Blob> = {}): Promise<Complete['result']> {
  const res = await phase1(settings, extra, bytes, name);
  expect(res.status, await res.clone().text()).toBe(202);
  const { jobId } = (await res.json()) as { jobId: string };
  const { final } = await follow(jobId);
  expect(final.phase, JSON.stringify(final)).toBe('complete');
  return (final as unknown as Complete).result;
}

/** An effects-tool error: 4xx in {error, code, requestId}, checked against the operation's openapi.yaml entry. */
async function expectError(res: Response, status: number, operationId: string, message?: RegExp) {
  expect(res.status, await res.clone().text()).toBe(status);
  const body = (await expectMatchesSpec(res, operationId)) as { error: string; code: string; requestId: string };
  expect(body.requestId).toMatch(/^req_/);
  if (message) expect(body.error).toMatch(message);
  return body;
}

/** Max − min of channel 0 over a square at (x0, y0): how much texture survives. */
async function spread(bytes: Uint8Array, x0: number, y0: number, size: number): Promise<number> {
  const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
  let min = 255, max = 0;
  for (let y = y0; y < y0 + size; y++) for (let x = x0; x < x0 + size; x++) { const v = data[(y * info.width + x) * info.channels]!; min = Math.min(min, v); max = Math.max(max, v); }
  return max - min;
}

async function pixel(bytes: Uint8Array, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * info.channels;
  return Array.from(data.subarray(i, i + info.channels));
}

describe('phase 1: POST /api/v1/tools/remove-background', () => {
  let done: Complete;
  beforeAll(async () => {
    done = await runPhase1({ backgroundType: 'transparent', edgeRefine: 2, outputFormat: 'png' });
  });

  it('answers 202 {jobId, async}, streams progress in the documented shape and completes with the documented result', async () => {
    const r = done.result;
    expect(r.jobId).toMatch(/^[0-9a-f-]{36}$/);
    expect(done.percent).toBe(100);
    expect(r.downloadUrl).toBe(`/api/v1/download/${r.jobId}/photo_mask.png`);
    expect(r.maskUrl).toBe(`/api/v1/download/${r.jobId}/photo_mask.png`);
    expect(r.originalUrl).toBe(`/api/v1/download/${r.jobId}/photo_original.png`);
    expect(r.originalSize).toBe(fx.bytes.byteLength);
    expect(r.filename).toBe('photo.jpg');
    expect(r.model).toBe('u2net');
    const { res, bytes } = await download(r.downloadUrl);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(r.processedSize).toBe(bytes.byteLength);
    const cut = await decodeRgba(bytes);
    expect(cut.channels).toBe(4);
    expect(iou(alphaOf(cut.data), fx.mask)).toBeGreaterThan(0.9);
    const original = await sharp((await download(r.originalUrl)).bytes).metadata();
    expect([original.width, original.height]).toEqual([fx.width, fx.height]);
  });

  it('a late subscriber still gets the final event; processing events carry phase, stage and percent', async () => {
    const res = await phase1(undefined);
    const { jobId } = (await res.json()) as { jobId: string };
    const { events, final } = await follow(jobId);
    expect(final.phase).toBe('complete');
    for (const e of events.slice(0, -1)) {
      expect(['queued', 'processing']).toContain(e.phase);
      expect(typeof e.stage).toBe('string');
      expect(typeof e.percent).toBe('number');
    }
    const late = await follow(jobId);
    expect(late.events).toHaveLength(1);
    expect(late.final.phase).toBe('complete');
  });

  it('effects in phase 1 give a _nobg file in the requested format', async () => {
    const r = (await runPhase1({ backgroundType: 'color', backgroundColor: '#FF5500', outputFormat: 'webp' })).result;
    expect(r.downloadUrl).toBe(`/api/v1/download/${r.jobId}/photo_nobg.webp`);
    expect(r.maskUrl).toBe(`/api/v1/download/${r.jobId}/photo_mask.png`);
    const { res, bytes } = await download(r.downloadUrl);
    expect(res.headers.get('content-type')).toBe('image/webp');
    const [red, green, blue] = await pixel(bytes, 5, 5);
    expect(red).toBeGreaterThan(240);
    expect(green).toBeGreaterThan(70);
    expect(green).toBeLessThan(100);
    expect(blue).toBeLessThan(15);
  });

  it('form fields work without a settings part; edgeRefine 0 gives hard edges', async () => {
    const res = await phase1(undefined, { edgeRefine: '0', decontaminate: 'true' });
    const { jobId } = (await res.json()) as { jobId: string };
    const { final } = await follow(jobId);
    const cut = await decodeRgba((await download((final as unknown as Complete).result.downloadUrl)).bytes);
    expect(new Set(alphaOf(cut.data))).toEqual(new Set([0, 255]));
  });

  it('EXIF orientation is applied before removal: the cut-out and the cached original are upright', async () => {
    // Stored landscape with orientation 6 (rotate 90° clockwise to view): the viewer sees a portrait picture.
    const rotated = await sharp(fx.bytes).withMetadata({ orientation: 6 }).jpeg().toBuffer();
    const r = await complete(undefined, rotated, 'portrait.jpg');
    const cut = await decodeRgba((await download(r.downloadUrl)).bytes);
    expect([cut.width, cut.height]).toEqual([fx.height, fx.width]);
    const upright = await sharp(Buffer.from(fx.mask), { raw: { width: fx.width, height: fx.height, channels: 1 } }).rotate(90).extractChannel(0).raw().toBuffer();
    expect(iou(alphaOf(cut.data), new Uint8Array(upright))).toBeGreaterThan(0.9);
    const original = await sharp((await download(r.originalUrl)).bytes).metadata();
    expect([original.width, original.height, original.orientation ?? 1]).toEqual([fx.height, fx.width, 1]);
  });

  it('bad input: no file, bad settings JSON, bad values, unknown model → 400 naming the field', async () => {
    const fd = new FormData();
    fd.append('image', new Blob([fx.bytes]), 'a.jpg');
    const noFile = await fetch(`${s.url}/api/v1/tools/remove-background`, { method: 'POST', headers: KEY, body: fd });
    expect(noFile.status).toBe(400);
    expect(((await noFile.json()) as { error: string }).error).toMatch(/file/);
    for (const [settings, field] of [
      [{ backgroundType: 'sparkles' }, 'backgroundType'],
      [{ edgeRefine: 4 }, 'edgeRefine'],
      [{ outputFormat: 'jpg' }, 'outputFormat'],
      [{ blurIntensity: 101 }, 'blurIntensity'],
      [{ backgroundColor: 'not-a-colour' }, 'backgroundColor'],
      [{ model: 'nonexistent' }, 'model'],
      [{ backgroundType: 'image' }, 'backgroundImage'],
    ] as const) {
      const body = await expectError(await phase1(settings as Record<string, unknown>), 400, 'effectsPhase1');
      expect(body.error).toContain(field);
    }
    const fd2 = new FormData();
    fd2.append('file', new Blob([fx.bytes]), 'a.jpg');
    fd2.append('settings', '{not json');
    const badJson = await fetch(`${s.url}/api/v1/tools/remove-background`, { method: 'POST', headers: KEY, body: fd2 });
    expect(badJson.status).toBe(400);
  });

  it('401 without a key; unknown job ids 404 on progress and download', async () => {
    const fd = new FormData();
    fd.append('file', new Blob([fx.bytes]), 'a.jpg');
    const res = await fetch(`${s.url}/api/v1/tools/remove-background`, { method: 'POST', body: fd });
    expect((await expectError(res, 401, 'effectsPhase1')).code).toBe('missing_api_key');
    await expectError(await fetch(`${s.url}/api/v1/jobs/${randomUUID()}/progress`), 404, 'effectsProgress');
    await expectError(await fetch(`${s.url}/api/v1/jobs/nope/progress`), 404, 'effectsProgress');
    await expectError(await fetch(`${s.url}/api/v1/jobs/${randomUUID()}`), 404, 'effectsJob');
    await expectError(await fetch(`${s.url}/api/v1/download/${randomUUID()}/photo_mask.png`), 404, 'effectsDownload');
  });

  it('a file that is not an image ends in a failed progress event with the error', async () => {
    const res = await phase1(undefined, {}, new TextEncoder().encode('plain text, not an image at all'));
    const { jobId } = (await res.json()) as { jobId: string };
    const { final } = await follow(jobId);
    expect(final.phase).toBe('failed');
    expect(String(final.error)).toMatch(/image/i);
    const again = await effects({ jobId, filename: 'photo.jpg', backgroundType: 'color' });
    expect(again.status).toBe(409);
  });
});

describe('phase 2: POST /api/v1/tools/remove-background/effects', () => {
  let done: Complete;
  let phase1Runs: number;
  beforeAll(async () => {
    const before = s.gw.engine.runs;
    done = await runPhase1({ backgroundType: 'transparent' });
    phase1Runs = s.gw.engine.runs - before;
  });

  it('re-renders every background type from the cache without running the model again', async () => {
    // The counter does count: phase 1 ran the model (the mask cache is off in this file).
    expect(phase1Runs).toBeGreaterThanOrEqual(1);
    const before = s.gw.engine.runs;
    const bg = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#00ff00' } }).png().toBuffer();
    const cases: [Record<string, unknown>, Record<string, string | Blob>?][] = [
      [{ backgroundType: 'color', backgroundColor: '#FF5500', outputFormat: 'png' }],
      [{ backgroundType: 'gradient', gradientColor1: '#000000', gradientColor2: '#ffffff', gradientAngle: 90, outputFormat: 'png' }],
      [{ backgroundType: 'blur', blurIntensity: 80, outputFormat: 'webp' }],
      [{ backgroundType: 'image', outputFormat: 'avif' }, { backgroundImage: new Blob([bg], { type: 'image/png' }) }],
      [{ backgroundType: 'transparent', shadowEnabled: true, shadowOpacity: 80, outputFormat: 'png' }],
    ];
    const outputs: Uint8Array[] = [];
    for (const [settings, extra] of cases) {
      const res = await effects({ jobId: done.result.jobId, filename: 'photo.jpg', ...settings }, extra);
      expect(res.status, await res.clone().text()).toBe(200);
      const body = (await res.json()) as { jobId: string; downloadUrl: string; processedSize: number };
      expect(body.jobId).toBe(done.result.jobId);
      expect(body.downloadUrl).toBe(`/api/v1/download/${done.result.jobId}/photo_nobg.${settings.outputFormat}`);
      const { res: file, bytes } = await download(body.downloadUrl);
      expect(file.headers.get('content-type')).toBe(`image/${settings.outputFormat}`);
      expect(bytes.byteLength).toBe(body.processedSize);
      outputs.push(bytes);
    }
    expect(s.gw.engine.runs).toBe(before);

    // colour: the corner is the colour; gradient at 90°: dark on the left, light on the right.
    expect((await pixel(outputs[0]!, 3, 3)).slice(0, 3)).toEqual([255, 85, 0]);
    const left = (await pixel(outputs[1]!, 2, 3))[0]!;
    const right = (await pixel(outputs[1]!, fx.width - 3, 3))[0]!;
    expect(left).toBeLessThan(20);
    expect(right).toBeGreaterThan(235);
    // image: the green background shows in the corner (avif is lossy).
    const [r, g, b] = await pixel(outputs[3]!, 3, 3);
    expect(g).toBeGreaterThan(200);
    expect(r! + b!).toBeLessThan(80);
    // shadow: pixels just below-right of the subject become partly opaque black; far corners stay clear.
    const plain = alphaOf((await decodeRgba((await download(done.result.maskUrl)).bytes)).data);
    const shadowed = alphaOf((await decodeRgba(outputs[4]!)).data);
    let gained = 0;
    for (let i = 0; i < plain.length; i++) if (plain[i]! < 10 && shadowed[i]! > 40) gained++;
    expect(gained).toBeGreaterThan(500);
    expect(shadowed[0]).toBe(0);
  });

  it('blur keeps the subject sharp and blurs the old background', async () => {
    const textured = await subjectFixture({ background: 'textured' });
    const res = await phase1(undefined, {}, textured.bytes, 'tex.jpg');
    const { jobId } = (await res.json()) as { jobId: string };
    await follow(jobId);
    const out = await effects({ jobId, filename: 'tex.jpg', backgroundType: 'blur', blurIntensity: 100 });
    const body = (await out.json()) as { downloadUrl: string };
    const blurred = await sharp((await download(body.downloadUrl)).bytes).raw().toBuffer();
    const orig = await sharp(textured.bytes).raw().toBuffer();
    // Texture contrast in the top-left background block collapses; channels 3 for png without alpha.
    const spread = (d: Buffer, ch: number) => {
      let min = 255, max = 0;
      for (let y = 0; y < 40; y++) for (let x = 0; x < 40; x++) { const v = d[(y * textured.width + x) * ch]!; min = Math.min(min, v); max = Math.max(max, v); }
      return max - min;
    };
    expect(spread(blurred, 3)).toBeLessThan(spread(orig, 3) / 2);
  });

  it('errors: settings required, jobId/filename required, unknown and other owners\' jobs 404, 401', async () => {
    const none = await fetch(`${s.url}/api/v1/tools/remove-background/effects`, { method: 'POST', headers: KEY, body: new FormData() });
    expect(none.status).toBe(400);
    expect(((await none.json()) as { error: string }).error).toMatch(/settings/);
    const noJob = await effects({ filename: 'photo.jpg' });
    expect(((await noJob.json()) as { error: string }).error).toMatch(/jobId/);
    const noName = await effects({ jobId: done.result.jobId });
    expect(((await noName.json()) as { error: string }).error).toMatch(/filename/);
    expect((await effects({ jobId: randomUUID(), filename: 'photo.jpg' })).status).toBe(404);
    const { keyRecord } = await import('../src/keys.js');
    const other = 'bge_live_effects_other_owner_key_000000';
    await s.gw.stores.keys.add(keyRecord(other, {}, { plan: 'Business' }));
    expect((await effects({ jobId: done.result.jobId, filename: 'photo.jpg' }, {}, { 'x-api-key': other })).status).toBe(404);
    expect((await effects({ jobId: done.result.jobId, filename: 'photo.jpg' }, {}, {})).status).toBe(401);
  });

  it('the seed\'s curl examples run unchanged but for host and key', async () => {
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const os = await import('node:os');
    const path = await import('node:path');
    const run = promisify(execFile);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'effects-'));
    try {
      await writeFile(path.join(dir, 'photo.jpg'), fx.bytes);
      const first = await run('curl', ['-sS', '-X', 'POST', `${s.url}/api/v1/tools/remove-background`, '-H', `x-api-key: ${TEST_KEY}`, '-F', 'file=@photo.jpg', '-F', 'settings={"backgroundType":"transparent","edgeRefine":2,"outputFormat":"png"}'], { cwd: dir });
      const { jobId } = JSON.parse(first.stdout) as { jobId: string };
      await follow(jobId);
      const second = await run('curl', ['-sS', '-X', 'POST', `${s.url}/api/v1/tools/remove-background/effects`, '-H', `x-api-key: ${TEST_KEY}`, '-F', `settings={"jobId":"${jobId}","filename":"photo.jpg","backgroundType":"color","backgroundColor":"#FF5500","outputFormat":"png"}`], { cwd: dir });
      const body = JSON.parse(second.stdout) as { jobId: string; downloadUrl: string; processedSize: number };
      expect(body).toEqual({ jobId, downloadUrl: `/api/v1/download/${jobId}/photo_nobg.png`, processedSize: expect.any(Number) });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('progress over SSE, read raw', () => {
  it('text/event-stream of "event: progress" messages with one JSON data line: the documented processing event, then complete', async () => {
    // Large enough to be seen processing for a while at the stream's 200 ms polling.
    const big = await subjectFixture({ width: 2400, height: 1800 });
    const res = await phase1(undefined, {}, big.bytes, 'big.jpg');
    const { jobId } = (await res.json()) as { jobId: string };
    const stream = await fetch(`${s.url}/api/v1/jobs/${jobId}/progress`);
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toBe('text/event-stream');
    await expectDocumented(stream, 'effectsProgress');
    // The server ends the stream after the final event, so the whole text can be read.
    const text = await stream.text();
    const messages = text.split('\n\n').filter((m) => m.trim() !== '');
    const events = messages.map((m) => {
      const lines = m.split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toBe('event: progress');
      expect(lines[1]).toMatch(/^data: \{/);
      return JSON.parse(lines[1]!.slice('data: '.length)) as Record<string, unknown>;
    });
    // The seed's own example event, exactly.
    expect(events).toContainEqual({ phase: 'processing', stage: 'Removing background...', percent: 50 });
    const final = events.at(-1)!;
    expect(Object.keys(final)).toEqual(['phase', 'percent', 'result']);
    expect(final).toMatchObject({ phase: 'complete', percent: 100 });
    expect(Object.keys(final.result as object)).toEqual(['jobId', 'downloadUrl', 'maskUrl', 'originalUrl', 'originalSize', 'processedSize', 'filename', 'model']);
    expect(final.result).toMatchObject({ jobId, filename: 'big.jpg', originalSize: big.bytes.byteLength, downloadUrl: `/api/v1/download/${jobId}/big_mask.png` });
    // Events are only sent when something changed.
    for (let i = 1; i < events.length; i++) expect(events[i]).not.toEqual(events[i - 1]);
  });
});

describe("every parameter of the seed's tables, measured on the output", () => {
  let plain: Complete['result'];
  let textured: Fixture;
  let tex: Complete['result'];
  beforeAll(async () => {
    plain = await complete({ backgroundType: 'transparent' });
    textured = await subjectFixture({ background: 'textured' });
    tex = await complete(undefined, textured.bytes, 'tex.jpg');
  });

  const render = async (jobId: string, filename: string, settings: Record<string, unknown>, extra: Record<string, string | Blob> = {}) => {
    const res = await effects({ jobId, filename, ...settings }, extra);
    expect(res.status, await res.clone().text()).toBe(200);
    return (await download(((await res.json()) as { downloadUrl: string }).downloadUrl)).bytes;
  };

  it('gradientColor1, gradientColor2, gradientAngle in CSS degrees: 180 (the default) top→bottom, 0 bottom→top, 270 right→left', async () => {
    const colours = { backgroundType: 'gradient', gradientColor1: '#000000', gradientColor2: '#ffffff' };
    const at = async (bytes: Uint8Array, x: number, y: number) => (await pixel(bytes, x, y))[0]!;
    for (const settings of [{ ...colours, gradientAngle: 180 }, colours]) {
      const out = await render(plain.jobId, 'photo.jpg', settings);
      expect(await at(out, 3, 2)).toBeLessThan(20);
      expect(await at(out, 3, fx.height - 3)).toBeGreaterThan(235);
    }
    const up = await render(plain.jobId, 'photo.jpg', { ...colours, gradientAngle: 0 });
    expect(await at(up, 3, 2)).toBeGreaterThan(235);
    expect(await at(up, 3, fx.height - 3)).toBeLessThan(20);
    const left = await render(plain.jobId, 'photo.jpg', { ...colours, gradientAngle: 270 });
    expect(await at(left, 2, 3)).toBeGreaterThan(235);
    expect(await at(left, fx.width - 3, 3)).toBeLessThan(20);
    // Other colours than black and white, by name and in short hex.
    const named = await render(plain.jobId, 'photo.jpg', { backgroundType: 'gradient', gradientColor1: 'blue', gradientColor2: '#f00', gradientAngle: 90 });
    const [lr, , lb] = await pixel(named, 2, 3);
    const [rr, , rb] = await pixel(named, fx.width - 3, 3);
    expect(lb! - lr!).toBeGreaterThan(200);
    expect(rr! - rb!).toBeGreaterThan(200);
  });

  it('blurIntensity 0–100: more intensity, less background texture; the subject stays put', async () => {
    const spreads: number[] = [];
    for (const intensity of [0, 20, 100]) spreads.push(await spread(await render(tex.jobId, 'tex.jpg', { backgroundType: 'blur', blurIntensity: intensity }), 0, 0, 40));
    const original = await spread(textured.bytes, 0, 0, 40);
    expect(spreads[0]).toBeGreaterThan(original * 0.8);
    expect(spreads[1]).toBeLessThan(spreads[0]!);
    expect(spreads[2]).toBeLessThan(spreads[1]!);
    expect(spreads[2]).toBeLessThan(original / 2);
    // The subject's middle is the subject's colour whatever the blur.
    const mid = await pixel(await render(tex.jobId, 'tex.jpg', { backgroundType: 'blur', blurIntensity: 100 }), textured.width / 2, Math.round(textured.height * 0.7));
    expect(mid[0]).toBeGreaterThan(mid[1]! + 40);
  });

  it('blurEnabled blurs whatever is behind the subject: a background image, or the original behind a transparent type', async () => {
    // A fine checkerboard, so any blur shows as lost contrast.
    const tiles: string[] = [];
    for (let y = 0; y < fx.height; y += 10) for (let x = (y / 10) % 2 ? 10 : 0; x < fx.width; x += 20) tiles.push(`<rect x="${x}" y="${y}" width="10" height="10" fill="#000"/>`);
    const checker = await sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${fx.width}" height="${fx.height}"><rect width="100%" height="100%" fill="#fff"/>${tiles.join('')}</svg>`)).png().toBuffer();
    const bg = () => ({ backgroundImage: new Blob([checker], { type: 'image/png' }) });
    const sharpBg = await render(plain.jobId, 'photo.jpg', { backgroundType: 'image' }, bg());
    const blurredBg = await render(plain.jobId, 'photo.jpg', { backgroundType: 'image', blurEnabled: true, blurIntensity: 100 }, bg());
    expect(await spread(sharpBg, 0, 0, 40)).toBeGreaterThan(200);
    expect(await spread(blurredBg, 0, 0, 40)).toBeLessThan(64);
    // transparent + blurEnabled: the old background comes back, blurred, and the output is opaque.
    const behind = await render(tex.jobId, 'tex.jpg', { backgroundType: 'transparent', blurEnabled: true, blurIntensity: 100 });
    const meta = await sharp(behind).metadata();
    expect(meta.hasAlpha).toBe(false);
    expect(await spread(behind, 0, 0, 40)).toBeLessThan((await spread(textured.bytes, 0, 0, 40)) / 2);
    // blurEnabled false is no blur.
    expect(await spread(await render(plain.jobId, 'photo.jpg', { backgroundType: 'image', blurEnabled: false, blurIntensity: 100 }, bg()), 0, 0, 40)).toBeGreaterThan(200);
  });

  it('shadowEnabled with shadowOpacity 0–100: darker with more opacity, none when disabled or 0', async () => {
    const alpha = alphaOf((await decodeRgba((await download(plain.maskUrl)).bytes)).data);
    const darkness = async (settings: Record<string, unknown>) => {
      const { data, info } = await sharp(await render(plain.jobId, 'photo.jpg', { backgroundType: 'color', backgroundColor: '#ffffff', ...settings })).raw().toBuffer({ resolveWithObject: true });
      let sum = 0;
      let n = 0;
      for (let p = 0; p < alpha.length; p++) {
        if (alpha[p]! > 0) continue;
        sum += 255 - data[p * info.channels]!;
        n++;
      }
      return sum / n;
    };
    const none = await darkness({ shadowEnabled: false, shadowOpacity: 80 });
    const zero = await darkness({ shadowEnabled: true, shadowOpacity: 0 });
    const light = await darkness({ shadowEnabled: true, shadowOpacity: 20 });
    const dark = await darkness({ shadowEnabled: true, shadowOpacity: 80 });
    expect(none).toBeLessThan(0.5);
    expect(zero).toBeLessThan(0.5);
    expect(light).toBeGreaterThan(0.5);
    // Opacity scales the shadow: 80 is about four times 20.
    expect(dark / light).toBeGreaterThan(3);
    expect(dark / light).toBeLessThan(5);
    // The default opacity (50) lies between.
    const dflt = await darkness({ shadowEnabled: true });
    expect(dflt).toBeGreaterThan(light);
    expect(dflt).toBeLessThan(dark);
  });

  it('edgeRefine 0–3: 0 hard edges, 1 the soft matte, 2 full refinement (still soft), 3 one pixel of fringe choked off', async () => {
    const coverage: number[] = [];
    const softness: number[] = [];
    for (const level of [0, 1, 2, 3]) {
      const r = await complete({ edgeRefine: level });
      const a = alphaOf((await decodeRgba((await download(r.downloadUrl)).bytes)).data);
      coverage.push(a.reduce((t, v) => t + v, 0) / 255);
      softness.push(a.reduce((t, v) => t + (v > 0 && v < 255 ? 1 : 0), 0));
    }
    expect(softness[0]).toBe(0);
    expect(softness[1]).toBeGreaterThan(100);
    expect(softness[2]).toBeGreaterThan(100);
    expect(coverage[3]).toBeLessThan(coverage[2]!);
    // Level 3's choke removes about one pixel along the subject's outline (a few hundred pixels here), not regions.
    const perimeter = 2 * Math.PI * fx.height * 0.13 + 2 * (fx.width * 0.32 + fx.height * 0.5);
    expect(coverage[2]! - coverage[3]!).toBeGreaterThan(perimeter * 0.4);
    expect(coverage[2]! - coverage[3]!).toBeLessThan(perimeter * 2);
  });

  it('decontaminate removes the old background colour from soft edges', async () => {
    // Red figure on a saturated green background: edge pixels blend in green, which decontamination takes out.
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="480" height="360"><rect width="100%" height="100%" fill="#18c018"/><circle cx="240" cy="150" r="70" fill="#c81818"/><rect x="160" y="200" width="160" height="150" rx="30" fill="#c81818"/></svg>`;
    const green = await sharp(Buffer.from(svg)).jpeg({ quality: 95 }).toBuffer();
    const edgeGreen = async (decontaminate: boolean) => {
      const r = await complete({ decontaminate, edgeRefine: 1 }, green, 'green.jpg');
      const { data } = await decodeRgba((await download(r.downloadUrl)).bytes);
      let sum = 0;
      let n = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3]! < 30 || data[i + 3]! > 225) continue;
        sum += data[i + 1]! - data[i]!;
        n++;
      }
      expect(n).toBeGreaterThan(50);
      return sum / n;
    };
    const kept = await edgeGreen(false);
    const cleaned = await edgeGreen(true);
    expect(kept).toBeGreaterThan(cleaned + 30);
  });

  it('outputFormat png, webp and avif in phase 1 as well; other values are 400', async () => {
    for (const format of ['png', 'webp', 'avif'] as const) {
      const r = await complete({ backgroundType: 'color', backgroundColor: '#FF5500', outputFormat: format });
      expect(r.downloadUrl).toBe(`/api/v1/download/${r.jobId}/photo_nobg.${format}`);
      const { res, bytes } = await download(r.downloadUrl);
      expect(res.headers.get('content-type')).toBe(`image/${format}`);
      expect(r.processedSize).toBe(bytes.byteLength);
      const meta = await sharp(bytes).metadata();
      expect(meta.format).toBe(format === 'avif' ? 'heif' : format);
      expect([meta.width, meta.height]).toEqual([fx.width, fx.height]);
    }
    await expectError(await phase1({ outputFormat: 'gif' }), 400, 'effectsPhase1', /outputFormat/);
  });

  it('model: rembg (the seed\'s name) and the installed model name both run the server\'s model', async () => {
    expect((await complete({ model: 'rembg' })).model).toBe('u2net');
    expect((await complete({ model: 'u2net' })).model).toBe('u2net');
  });
});

describe('expiry (memory store, default RESULTS_TTL_SECONDS)', () => {
  it('the job, its progress, its files and phase 2 answer 404 once RESULTS_TTL_SECONDS have passed', async () => {
    const ttl = s.gw.config.RESULTS_TTL_SECONDS;
    const r = await complete(undefined);
    const rendered = (await (await effects({ jobId: r.jobId, filename: 'photo.jpg', backgroundType: 'color' })).json()) as { downloadUrl: string };
    // The server shares this process's clock: move it instead of waiting.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + (ttl - 10) * 1000);
      expect((await fetch(`${s.url}/api/v1/jobs/${r.jobId}`)).status).toBe(200);
      expect((await fetch(`${s.url}${r.maskUrl}`)).status).toBe(200);
      vi.setSystemTime(Date.now() + 20 * 1000);
      await expectError(await fetch(`${s.url}/api/v1/jobs/${r.jobId}/progress`), 404, 'effectsProgress', /expired/);
      await expectError(await fetch(`${s.url}/api/v1/jobs/${r.jobId}`), 404, 'effectsJob');
      for (const url of [r.maskUrl, r.originalUrl, rendered.downloadUrl]) await expectError(await fetch(`${s.url}${url}`), 404, 'effectsDownload');
      await expectError(await effects({ jobId: r.jobId, filename: 'photo.jpg', backgroundType: 'color' }), 404, 'effectsPhase2', /expired/);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('openapi.yaml', () => {
  it('documents every route of the effects tool', async () => {
    const seen = await expectRoutesDocumented(adapterApp(s.gw, effectsAdapter));
    expect(seen).toEqual(
      expect.arrayContaining([
        'POST /api/v1/tools/remove-background',
        'POST /api/v1/tools/remove-background/effects',
        'GET /api/v1/jobs/{jobId}/progress',
        'GET /api/v1/jobs/{jobId}',
        'GET /api/v1/download/{jobId}/{name}',
      ]),
    );
  });
});

describe('two replicas on Redis', () => {
  const prefix = `bgw-test-effects-${randomUUID().slice(0, 8)}:`;
  const env = { REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: prefix };
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    a = await startServer(env);
    b = await startServer(env);
  }, 180_000);
  afterAll(async () => {
    await a?.close();
    await b?.close();
    const redis = new Redis(env.REDIS_URL);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
  });

  it('phase 1 on one replica; progress, downloads and phase 2 (with no inference) on the other', async () => {
    const fd = new FormData();
    fd.append('file', new Blob([fx.bytes], { type: 'image/jpeg' }), 'photo.jpg');
    const res = await fetch(`${a.url}/api/v1/tools/remove-background`, { method: 'POST', headers: KEY, body: fd });
    expect(res.status).toBe(202);
    const { jobId } = (await res.json()) as { jobId: string };
    const { final } = await follow(jobId, b.url);
    expect(final.phase).toBe('complete');
    const result = (final as unknown as Complete).result;
    const cut = await decodeRgba((await download(result.downloadUrl, b.url)).bytes);
    expect(iou(alphaOf(cut.data), fx.mask)).toBeGreaterThan(0.9);
    const runs = b.gw.engine.runs;
    const out = await effects({ jobId, filename: 'photo.jpg', backgroundType: 'color', backgroundColor: '#00ff00' }, {}, KEY, b.url);
    expect(out.status).toBe(200);
    const body = (await out.json()) as { downloadUrl: string };
    expect(b.gw.engine.runs).toBe(runs);
    expect((await pixel((await download(body.downloadUrl, a.url)).bytes, 3, 3)).slice(0, 3)).toEqual([0, 255, 0]);
  }, 60_000);
});
