// test/compat-effects.test.ts
// The effects tool (seed 001) over real HTTP with the real model: 202 + SSE progress, downloads, phase-2 effects
// re-rendered from the cache without another inference, every background type, errors.
import { randomUUID } from 'node:crypto';
import { EventSource } from 'eventsource';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alphaOf, decodeRgba, iou, subjectFixture, type Fixture } from './helpers/fixtures.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';
import { expectMatchesSpec } from './helpers/openapi.js';

let s: TestServer;
let fx: Fixture;
const KEY = { 'x-api-key': TEST_KEY };

beforeAll(async () => {
  s = await startServer({ MASK_CACHE_MAX_BYTES: '0' });
  fx = await subjectFixture();
});
afterAll(async () => {
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
function follow(jobId: string): Promise<{ events: Record<string, unknown>[]; final: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const events: Record<string, unknown>[] = [];
    const es = new EventSource(`${s.url}/api/v1/jobs/${jobId}/progress`);
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

const download = async (path: string) => {
  const res = await fetch(`${s.url}${path}`);
  expect(res.status, path).toBe(200);
  return { res, bytes: new Uint8Array(await res.arrayBuffer()) };
};

async function effects(settings: Record<string, unknown>, extra: Record<string, string | Blob> = {}, headers: Record<string, string> = KEY) {
  const fd = new FormData();
  fd.append('settings', JSON.stringify(settings));
  for (const [k, v] of Object.entries(extra)) fd.append(k, v);
  return fetch(`${s.url}/api/v1/tools/remove-background/effects`, { method: 'POST', headers, body: fd });
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

  it('EXIF orientation is applied before removal', async () => {
    const rotated = await sharp(fx.bytes).withMetadata({ orientation: 6 }).jpeg().toBuffer();
    const res = await phase1(undefined, {}, rotated, 'portrait.jpg');
    const { jobId } = (await res.json()) as { jobId: string };
    const { final } = await follow(jobId);
    const meta = await sharp((await download((final as unknown as Complete).result.downloadUrl)).bytes).metadata();
    expect([meta.width, meta.height]).toEqual([fx.height, fx.width]);
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
      const res = await phase1(settings as Record<string, unknown>);
      expect(res.status, field).toBe(400);
      const body = (await res.json()) as { error: string; code: string; requestId: string };
      expect(body.error).toContain(field);
      expect(body.requestId).toMatch(/^req_/);
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
    expect(res.status).toBe(401);
    expect(((await res.json()) as { code: string }).code).toBe('missing_api_key');
    expect((await fetch(`${s.url}/api/v1/jobs/${randomUUID()}/progress`)).status).toBe(404);
    expect((await fetch(`${s.url}/api/v1/jobs/nope/progress`)).status).toBe(404);
    expect((await fetch(`${s.url}/api/v1/download/${randomUUID()}/photo_mask.png`)).status).toBe(404);
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
  beforeAll(async () => {
    done = await runPhase1({ backgroundType: 'transparent' });
  });

  it('re-renders every background type from the cache without running the model again', async () => {
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
