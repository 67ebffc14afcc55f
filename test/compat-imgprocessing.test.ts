// test/compat-imgprocessing.test.ts
// The IMG Processing images dialect (seed 002) over real HTTP with the real model: upload and create-from-URL,
// the Image object, download, remove-background into a new PNG image, publish/unpublish with key-less links,
// delete, expiry, every documented error, the seed's curl example run with curl, and two replicas on Redis.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { imgprocessing } from '../compat/imgprocessing/index.js';
import { adapterApp } from '../compat/mount.js';
import { fingerprintOf, hashKey, keyRecord } from '../src/keys.js';
import { currentPeriod } from '../src/plans.js';
import { alphaOf, decodeRgba, iou, subjectFixture, type Fixture } from './helpers/fixtures.js';
import { expectDocumented, expectMatchesSpec, expectRoutesDocumented } from './helpers/openapi.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';

const run = promisify(execFile);
const TTL = 600;
const OTHER_KEY = 'bge_live_imgproc_other_tenant_key_0000000';
const TINY_KEY = 'bge_live_imgproc_tiny_plan_key_000000000';
const SLOW_KEY = 'bge_live_imgproc_slow_plan_key_000000000';
const SYNTHETIC_KEY = 'bge_test_imgproc_synthetic_key_000000000';
const KEY = { 'x-api-key': TEST_KEY };
const ID_RE = /^image_[a-z0-9]{24}$/;
const OBJECT_KEYS = ['id', 'name', 'url', 'width', 'height', 'format', 'size', 'created_at'];

interface ImageObject {
  id: string;
  name: string;
  url: string | null;
  width: number;
  height: number;
  format: 'png' | 'jpeg' | 'webp';
  size: number;
  created_at: string;
}

interface ErrorBody {
  type: string;
  error: string;
  status: number;
  message: string;
  errors?: string[];
}

let s: TestServer;
let fx: Fixture;
let pngFx: Fixture;
let images: Server;
let imageBase: string;

beforeAll(async () => {
  s = await startServer({
    API_KEYS: `${TEST_KEY},${OTHER_KEY}`,
    URL_FETCH_ALLOW_HOSTS: '127.0.0.1',
    RESULTS_TTL_SECONDS: String(TTL),
    MAX_UPLOAD_BYTES: String(1024 * 1024),
    PLANS: JSON.stringify({ Tiny: { monthlyCredits: 1 }, Slow: { rateLimit: 1, rateWindowSeconds: 60 } }),
  });
  await s.gw.stores.keys.add(keyRecord(TINY_KEY, { plan: 'Tiny' }, { plan: 'Business' }));
  await s.gw.stores.keys.add(keyRecord(SLOW_KEY, { plan: 'Slow' }, { plan: 'Business' }));
  await s.gw.stores.keys.add(keyRecord(SYNTHETIC_KEY, { mode: 'synthetic' }, { plan: 'Business' }));
  fx = await subjectFixture({ width: 320, height: 240 });
  pngFx = await subjectFixture({ width: 300, height: 200, format: 'png' });
  // Stands in for the S3/R2/… bucket a client would point POST /v1/images at.
  images = createServer((req, res) => {
    if (req.url === '/photo.jpg') {
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      res.end(fx.bytes);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
  imageBase = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
  // Compiles openapi.yaml's validators before the first request: compiling blocks the event loop for seconds,
  // so done after a request it outlasts the server's keep-alive timeout and the next fetch reuses a closed socket.
  const warm = { type: 'https://docs.img-processing.com/errors/not-found', error: 'Not Found', status: 404, message: 'warm-up' };
  await expectMatchesSpec(new Response(JSON.stringify(warm), { status: 404, headers: { 'content-type': 'application/json' } }), 'imgprocGetImage');
}, 120_000);
afterAll(async () => {
  vi.useRealTimers();
  await s?.close();
  await new Promise((r) => images?.close(r));
});

function upload(opts: { name?: string; bytes?: Uint8Array; type?: string; headers?: Record<string, string>; base?: string; path?: string } = {}) {
  const fd = new FormData();
  if (opts.name !== undefined) fd.append('name', opts.name);
  if (opts.bytes !== undefined || opts.type !== 'none') fd.append('image', new Blob([opts.bytes ?? fx.bytes], { type: opts.type ?? 'image/jpeg' }), 'photo.jpg');
  return fetch(`${opts.base ?? s.url}${opts.path ?? '/v1/images/upload'}`, { method: 'POST', headers: opts.headers ?? KEY, body: fd });
}

function post(route: string, body?: string, headers: Record<string, string> = { ...KEY, 'content-type': 'application/json' }, base = s.url) {
  return fetch(`${base}${route}`, { method: 'POST', headers, ...(body === undefined ? {} : { body }) });
}

/** 201 with exactly the documented Image object, checked against openapi.yaml. */
async function created(res: Response, operationId: string, usage = '1'): Promise<ImageObject> {
  expect(res.status, await res.clone().text()).toBe(201);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  expect(res.headers.get('x-image-processing-usage')).toBe(usage);
  expect(res.headers.get('x-request-id')).toMatch(/^req_/);
  const body = (await expectMatchesSpec(res, operationId)) as ImageObject;
  expectImageObject(body);
  expect(Math.abs(Date.parse(body.created_at) - Date.now())).toBeLessThan(120_000);
  return body;
}

function expectImageObject(body: ImageObject) {
  expect(Object.keys(body)).toEqual(OBJECT_KEYS);
  expect(body.id).toMatch(ID_RE);
  expect(['png', 'jpeg', 'webp']).toContain(body.format);
  expect(new Date(body.created_at).toISOString()).toBe(body.created_at);
}

async function uploaded(opts: Parameters<typeof upload>[0] = {}): Promise<ImageObject> {
  return created(await upload({ name: 'cat photo', ...opts }), 'imgprocUploadImage');
}

async function getImage(id: string, headers: Record<string, string> = KEY, base = s.url): Promise<ImageObject> {
  const res = await fetch(`${base}/v1/images/${id}`, { headers });
  expect(res.status, await res.clone().text()).toBe(200);
  const body = (await expectMatchesSpec(res, 'imgprocGetImage')) as ImageObject;
  expectImageObject(body);
  return body;
}

async function download(id: string, headers: Record<string, string> = KEY, base = s.url): Promise<{ bytes: Uint8Array; type: string | null }> {
  const res = await fetch(`${base}/v1/images/${id}/download`, { headers });
  expect(res.status, await res.clone().text()).toBe(200);
  await expectDocumented(res, 'imgprocDownloadImage');
  return { bytes: new Uint8Array(await res.arrayBuffer()), type: res.headers.get('content-type') };
}

async function expectError(res: Response, status: number, operationId: string, message?: RegExp): Promise<ErrorBody> {
  expect(res.status, await res.clone().text()).toBe(status);
  const body = (await expectMatchesSpec(res, operationId)) as ErrorBody;
  expect(body.status).toBe(status);
  expect(body.type).toBe(`https://docs.img-processing.com/errors/${body.error.toLowerCase().replace(/ /g, '-')}`);
  expect(res.headers.get('x-request-id')).toMatch(/^req_/);
  if (message) expect(body.message).toMatch(message);
  if (status === 422) {
    expect(body.error).toBe('Validation Error');
    expect(body.errors!.length).toBeGreaterThan(0);
  } else {
    expect(body.errors).toBeUndefined();
  }
  return body;
}

const alpha = async (png: Uint8Array) => alphaOf((await decodeRgba(png)).data);
const unknownId = () => `image_${randomUUID().replace(/-/g, '').slice(0, 24)}`;
const usedCredits = async (key: string) => (await s.gw.stores.usage.get(fingerprintOf(hashKey(key)), currentPeriod())).credits;

describe('creating images', () => {
  it('POST /v1/images/upload (multipart name + image) answers 201 with the Image object; GET and download agree', async () => {
    const img = await uploaded();
    expect(img).toMatchObject({ name: 'cat photo', url: null, width: 320, height: 240, format: 'jpeg', size: fx.bytes.byteLength });
    expect(await getImage(img.id)).toEqual(img);
    const dl = await download(img.id);
    expect(dl.type).toBe('image/jpeg');
    expect(Buffer.from(dl.bytes).equals(fx.bytes)).toBe(true);
  });

  it('reports png and webp uploads as such, and the displayed size of an EXIF-rotated JPEG', async () => {
    const png = await uploaded({ bytes: pngFx.bytes, type: 'image/png' });
    expect(png).toMatchObject({ format: 'png', width: 300, height: 200, size: pngFx.bytes.byteLength });
    const webpBytes = await sharp(fx.bytes).webp().toBuffer();
    expect(await uploaded({ bytes: webpBytes, type: 'image/webp' })).toMatchObject({ format: 'webp', width: 320, height: 240 });
    // Orientation 6 = rotate 90°: stored 320×240, shown 240×320.
    const rotated = await sharp(fx.bytes).withMetadata({ orientation: 6 }).jpeg().toBuffer();
    expect(await uploaded({ bytes: rotated })).toMatchObject({ format: 'jpeg', width: 240, height: 320 });
  });

  it('POST /v1/images takes JSON {name, url} (the image is downloaded) and also a multipart upload', async () => {
    const fromUrl = await created(await post('/v1/images', JSON.stringify({ name: 'example-image', url: `${imageBase}/photo.jpg` })), 'imgprocCreateImage');
    expect(fromUrl).toMatchObject({ name: 'example-image', url: null, width: 320, height: 240, format: 'jpeg', size: fx.bytes.byteLength });
    expect(Buffer.from((await download(fromUrl.id)).bytes).equals(fx.bytes)).toBe(true);
    const multipart = await created(await upload({ name: 'm', path: '/v1/images' }), 'imgprocCreateImage');
    expect(multipart).toMatchObject({ name: 'm', format: 'jpeg' });
  });

  it("the vendor's upload curl (explicit multipart Content-Type, --form name, --form image=@file) works", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'imgproc-'));
    try {
      await writeFile(path.join(dir, 'example-file'), fx.bytes);
      const cmd = `curl -s --request POST --url ${s.url}/v1/images/upload --header 'Content-Type: multipart/form-data' --header 'x-api-key: ${TEST_KEY}' --form name=example-image --form image=@example-file`;
      const { stdout } = await run('bash', ['-c', cmd], { cwd: dir });
      const body = JSON.parse(stdout) as ImageObject;
      expectImageObject(body);
      expect(body).toMatchObject({ name: 'example-image', format: 'jpeg', width: 320, height: 240 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('bge_test_ (synthetic) keys report X-Image-Processing-Usage 0, as the vendor does not bill test keys', async () => {
    await created(await upload({ name: 'test key', headers: { 'x-api-key': SYNTHETIC_KEY } }), 'imgprocUploadImage', '0');
  });
});

describe('POST /v1/images/{image_id}/remove-background', () => {
  it('creates a NEW PNG image with the cut-out; the source stays; one credit, X-Image-Processing-Usage 2', async () => {
    // A key of its own, so the credit count is not shared with other tests.
    const before = await usedCredits(OTHER_KEY);
    const other = { 'x-api-key': OTHER_KEY, 'content-type': 'application/json' };
    const own = await created(await upload({ name: 'product shot', headers: { 'x-api-key': OTHER_KEY } }), 'imgprocUploadImage');
    const res = await post(`/v1/images/${own.id}/remove-background`, JSON.stringify({ name: 'no background' }), other);
    const out = await created(res, 'imgprocRemoveBackground', '2');
    expect(out.id).not.toBe(own.id);
    expect(out).toMatchObject({ name: 'no background', url: null, width: 320, height: 240, format: 'png' });
    const dl = await download(out.id, { 'x-api-key': OTHER_KEY });
    expect(dl.type).toBe('image/png');
    expect(out.size).toBe(dl.bytes.byteLength);
    expect(await sharp(dl.bytes).metadata()).toMatchObject({ format: 'png', width: 320, height: 240, channels: 4 });
    expect(iou(await alpha(dl.bytes), fx.mask)).toBeGreaterThan(0.9);
    // The source is untouched and still served.
    expect(await getImage(own.id, { 'x-api-key': OTHER_KEY })).toEqual(own);
    expect(Buffer.from((await download(own.id, { 'x-api-key': OTHER_KEY })).bytes).equals(fx.bytes)).toBe(true);
    // Two vendor operations, one gateway credit: a removal costs the same in every dialect.
    expect(await usedCredits(OTHER_KEY)).toBe(before + 1);
  }, 60_000);

  it('name defaults to the source\'s name: no body, {} (what the official SDK sends) and a form body', async () => {
    const source = await uploaded({ name: 'holiday' });
    const none = await created(await post(`/v1/images/${source.id}/remove-background`, undefined, KEY), 'imgprocRemoveBackground', '2');
    expect(none).toMatchObject({ name: 'holiday', format: 'png' });
    const empty = await created(await post(`/v1/images/${source.id}/remove-background`, '{}'), 'imgprocRemoveBackground', '2');
    expect(empty).toMatchObject({ name: 'holiday', format: 'png' });
    expect(empty.id).not.toBe(none.id);
    const form = await created(await post(`/v1/images/${source.id}/remove-background`, 'name=from+a+form', { ...KEY, 'content-type': 'application/x-www-form-urlencoded' }), 'imgprocRemoveBackground', '2');
    expect(form.name).toBe('from a form');
  }, 60_000);

  it('a cut-out is itself an image: it can be published, downloaded and used again', async () => {
    const source = await uploaded({ bytes: pngFx.bytes, type: 'image/png' });
    const cut = await created(await post(`/v1/images/${source.id}/remove-background`, '{"name":"pass 1"}'), 'imgprocRemoveBackground', '2');
    const again = await created(await post(`/v1/images/${cut.id}/remove-background`, '{"name":"pass 2"}'), 'imgprocRemoveBackground', '2');
    expect(again).toMatchObject({ name: 'pass 2', width: 300, height: 200, format: 'png' });
    expect(iou(await alpha((await download(again.id)).bytes), pngFx.mask)).toBeGreaterThan(0.85);
  }, 60_000);

  it('name is 1–30 characters (code points): 30 is fine, 31, "" and non-strings are 422 Validation Error', async () => {
    const source = await uploaded();
    const thirty = 'x'.repeat(30);
    expect((await created(await post(`/v1/images/${source.id}/remove-background`, JSON.stringify({ name: thirty })), 'imgprocRemoveBackground', '2')).name).toBe(thirty);
    const emoji = '🐱'.repeat(30);
    expect((await created(await post(`/v1/images/${source.id}/remove-background`, JSON.stringify({ name: emoji })), 'imgprocRemoveBackground', '2')).name).toBe(emoji);
    const route = `/v1/images/${source.id}/remove-background`;
    const long = await expectError(await post(route, JSON.stringify({ name: 'x'.repeat(31) })), 422, 'imgprocRemoveBackground');
    expect(long.errors).toEqual(['body/name must NOT have more than 30 characters']);
    const blank = await expectError(await post(route, JSON.stringify({ name: '' })), 422, 'imgprocRemoveBackground');
    expect(blank.errors).toEqual(['body/name must NOT have fewer than 1 characters']);
    const numeric = await expectError(await post(route, JSON.stringify({ name: 42 })), 422, 'imgprocRemoveBackground');
    expect(numeric.errors).toEqual(['body/name must be string']);
    // The body is validated before the image is looked up, as the vendor's server does.
    await expectError(await post(`/v1/images/${unknownId()}/remove-background`, JSON.stringify({ name: 'y'.repeat(31) })), 422, 'imgprocRemoveBackground');
  }, 60_000);

  it('an empty body with Content-Type application/json is 400, as the seed says; so are broken JSON and other bodies', async () => {
    const source = await uploaded();
    const route = `/v1/images/${source.id}/remove-background`;
    const empty = await expectError(await post(route, ''), 400, 'imgprocRemoveBackground');
    expect(empty).toMatchObject({ error: 'Bad Request', message: "Body cannot be empty when content-type is set to 'application/json'" });
    await expectError(await post(route, '', { ...KEY, 'content-type': 'application/json; charset=utf-8' }), 400, 'imgprocRemoveBackground', /cannot be empty/);
    await expectError(await post(route, '{"name": '), 400, 'imgprocRemoveBackground', /JSON/);
    await expectError(await post(route, 'name=x', { ...KEY, 'content-type': 'text/plain' }), 415, 'imgprocRemoveBackground', /Unsupported Media Type: text\/plain/);
    // Nothing was created or charged for these.
    expect(await getImage(source.id)).toEqual(source);
  });

  it("the seed's curl example runs against the gateway with only the host, image id and key changed", async () => {
    const source = await uploaded({ name: 'seed source' });
    const seed = `curl --request POST \\
  --url https://api.img-processing.com/v1/images/{image_id}/remove-background \\
  --header 'Content-Type: application/json' \\
  --header 'x-api-key: <api-key>' \\
  --data '{
  "name": "background-removed-image"
}'`;
    const cmd = seed.replace('https://api.img-processing.com', s.url).replace('{image_id}', source.id).replace('<api-key>', TEST_KEY);
    const { stdout } = await run('bash', ['-c', cmd.replace('curl ', 'curl -s ')]);
    const body = JSON.parse(stdout) as ImageObject;
    expectImageObject(body);
    expect(body).toMatchObject({ name: 'background-removed-image', url: null, format: 'png', width: 320, height: 240 });
    expect(body.id).not.toBe(source.id);
    expect(iou(await alpha((await download(body.id)).bytes), fx.mask)).toBeGreaterThan(0.9);
    // The playground note: the same call with an empty body is refused.
    const { stdout: refused } = await run('bash', ['-c', cmd.replace(/--data '\{[\s\S]*\}'/, "--data ''").replace('curl ', 'curl -s -w "\\n%{http_code}" ')]);
    const [json, code] = refused.trim().split('\n');
    expect(code).toBe('400');
    expect(JSON.parse(json!)).toMatchObject({ status: 400, error: 'Bad Request', type: 'https://docs.img-processing.com/errors/bad-request' });
  }, 60_000);

  it('402 in the vendor shape once the plan\'s credits are used; the refused removal creates nothing', async () => {
    const tiny = { 'x-api-key': TINY_KEY, 'content-type': 'application/json' };
    const src = await created(await upload({ name: 'tiny', headers: { 'x-api-key': TINY_KEY } }), 'imgprocUploadImage');
    await created(await post(`/v1/images/${src.id}/remove-background`, '{}', tiny), 'imgprocRemoveBackground', '2');
    const refused = await expectError(await post(`/v1/images/${src.id}/remove-background`, '{}', tiny), 402, 'imgprocRemoveBackground', /credits/i);
    expect(refused.error).toBe('Payment Required');
    // Uploads run no model and cost nothing, so they still work.
    await created(await upload({ name: 'still fine', headers: { 'x-api-key': TINY_KEY } }), 'imgprocUploadImage');
  }, 60_000);
});

describe('publish, unpublish, delete', () => {
  it('publish sets url to an absolute link that needs no key; unpublish makes it 404; delete removes the bytes at once', async () => {
    const img = await uploaded({ name: 'to share' });
    const pub = await created(await post(`/v1/images/${img.id}/publish`, undefined, KEY), 'imgprocPublishImage');
    expect(pub).toEqual({ ...img, url: `${s.url}/storage/images/${img.id}` });
    expect(await getImage(img.id)).toEqual(pub);
    // Publishing again keeps the link already shared.
    expect(await created(await post(`/v1/images/${img.id}/publish`, undefined, KEY), 'imgprocPublishImage')).toEqual(pub);

    const open = await fetch(pub.url!);
    expect(open.status).toBe(200);
    await expectDocumented(open, 'imgprocPublicImage');
    expect(open.headers.get('cache-control')).toBe('no-store');
    expect(Buffer.from(await open.arrayBuffer()).equals(fx.bytes)).toBe(true);

    const priv = await created(await post(`/v1/images/${img.id}/unpublish`, undefined, KEY), 'imgprocUnpublishImage');
    expect(priv).toEqual(img);
    await expectError(await fetch(pub.url!), 404, 'imgprocPublicImage', /not found/);
    // The authenticated download still works while unpublished.
    expect((await download(img.id)).bytes.byteLength).toBe(img.size);

    const again = await created(await post(`/v1/images/${img.id}/publish`, undefined, KEY), 'imgprocPublishImage');
    expect((await fetch(again.url!)).status).toBe(200);
    const del = await fetch(`${s.url}/v1/images/${img.id}`, { method: 'DELETE', headers: KEY });
    expect(del.status).toBe(204);
    expect(await del.text()).toBe('');
    expect(del.headers.get('x-request-id')).toMatch(/^req_/);
    await expectError(await fetch(`${s.url}/v1/images/${img.id}`, { headers: KEY }), 404, 'imgprocGetImage', new RegExp(`Image with id ${img.id} not found`));
    await expectError(await fetch(`${s.url}/v1/images/${img.id}/download`, { headers: KEY }), 404, 'imgprocDownloadImage');
    await expectError(await fetch(again.url!), 404, 'imgprocPublicImage');
    await expectError(await post(`/v1/images/${img.id}/publish`, undefined, KEY), 404, 'imgprocPublishImage');
    await expectError(await post(`/v1/images/${img.id}/remove-background`, '{}'), 404, 'imgprocRemoveBackground');
    await expectError(await fetch(`${s.url}/v1/images/${img.id}`, { method: 'DELETE', headers: KEY }), 404, 'imgprocDeleteImage');
  });

  it('deleting a source leaves the images made from it', async () => {
    const src = await uploaded({ name: 'parent' });
    const child = await created(await post(`/v1/images/${src.id}/remove-background`, '{}'), 'imgprocRemoveBackground', '2');
    expect((await fetch(`${s.url}/v1/images/${src.id}`, { method: 'DELETE', headers: KEY })).status).toBe(204);
    expect(await getImage(child.id)).toEqual(child);
  }, 60_000);

  it('PUBLIC_BASE_URL is the base of the link; a link this gateway published is a valid url for POST /v1/images', async () => {
    const original = s.gw.config;
    s.gw.config = Object.freeze({ ...original, PUBLIC_BASE_URL: 'https://images.example.test/bg/' });
    try {
      const img = await uploaded({ bytes: pngFx.bytes, type: 'image/png' });
      const pub = await created(await post(`/v1/images/${img.id}/publish`, undefined, KEY), 'imgprocPublishImage');
      expect(pub.url).toBe(`https://images.example.test/bg/storage/images/${img.id}`);
      // images.example.test does not resolve: the bytes can only have come from the store.
      const copy = await created(await post('/v1/images', JSON.stringify({ name: 'copy', url: pub.url })), 'imgprocCreateImage');
      expect(copy).toMatchObject({ name: 'copy', format: 'png', size: img.size, url: null });
      expect(copy.id).not.toBe(img.id);
      // Once unpublished the link is no source any more (and that host cannot be fetched).
      await created(await post(`/v1/images/${img.id}/unpublish`, undefined, KEY), 'imgprocUnpublishImage');
      expect((await post('/v1/images', JSON.stringify({ name: 'copy', url: pub.url }))).status).toBe(400);
    } finally {
      s.gw.config = original;
    }
  });

  it('answers under /compat/imgprocessing/ too, on the same images; links published there keep the prefix', async () => {
    const base = `${s.url}/compat/imgprocessing`;
    const img = await created(await upload({ name: 'prefixed', base }), 'imgprocUploadImage');
    expect(await getImage(img.id)).toEqual(img);
    const pub = await created(await post(`/v1/images/${img.id}/publish`, undefined, KEY, base), 'imgprocPublishImage');
    expect(pub.url).toBe(`${base}/storage/images/${img.id}`);
    expect((await fetch(pub.url!)).status).toBe(200);
    expect((await fetch(`${s.url}/storage/images/${img.id}`)).status).toBe(200);
    const cut = await created(await post(`/v1/images/${img.id}/remove-background`, '{}', { ...KEY, 'content-type': 'application/json' }, base), 'imgprocRemoveBackground', '2');
    expect((await download(cut.id, KEY, base)).type).toBe('image/png');
    expect((await fetch(`${base}/v1/images/${img.id}`, { method: 'DELETE', headers: KEY })).status).toBe(204);
    await expectError(await fetch(pub.url!), 404, 'imgprocPublicImage');
  }, 60_000);
});

describe('documented errors', () => {
  const routes = (id: string): [string, string, string, string?][] => [
    ['POST', '/v1/images', 'imgprocCreateImage', JSON.stringify({ name: 'n', url: `${imageBase}/photo.jpg` })],
    ['POST', '/v1/images/upload', 'imgprocUploadImage'],
    ['GET', `/v1/images/${id}`, 'imgprocGetImage'],
    ['GET', `/v1/images/${id}/download`, 'imgprocDownloadImage'],
    ['DELETE', `/v1/images/${id}`, 'imgprocDeleteImage'],
    ['POST', `/v1/images/${id}/remove-background`, 'imgprocRemoveBackground', '{}'],
    ['POST', `/v1/images/${id}/publish`, 'imgprocPublishImage'],
    ['POST', `/v1/images/${id}/unpublish`, 'imgprocUnpublishImage'],
  ];

  it('401 without a key and with a wrong one, on every route', async () => {
    const img = await uploaded();
    for (const [method, route, op, body] of routes(img.id)) {
      for (const headers of [{}, { 'x-api-key': 'bge_live_not_a_key' }] as Record<string, string>[]) {
        const res = await fetch(`${s.url}${route}`, { method, headers: body ? { ...headers, 'content-type': 'application/json' } : headers, ...(body ? { body } : {}) });
        const err = await expectError(res, 401, op, headers['x-api-key'] ? /invalid/ : /missing/);
        expect(err).toMatchObject({ error: 'Unauthorized', type: 'https://docs.img-processing.com/errors/unauthorized' });
      }
    }
    // Authorization: Bearer is accepted as well.
    expect((await getImage(img.id, { authorization: `Bearer ${TEST_KEY}` })).id).toBe(img.id);
  });

  it('404 for unknown, malformed and other tenants\' ids, in the vendor\'s words', async () => {
    const theirs = await created(await upload({ name: 'theirs', headers: { 'x-api-key': OTHER_KEY } }), 'imgprocUploadImage');
    for (const id of [unknownId(), 'image_exampleid', theirs.id]) {
      for (const [method, route, op, body] of routes(id).slice(2)) {
        const res = await fetch(`${s.url}${route}`, { method, headers: body ? { ...KEY, 'content-type': 'application/json' } : KEY, ...(body ? { body } : {}) });
        const err = await expectError(res, 404, op);
        expect(err).toEqual({ type: 'https://docs.img-processing.com/errors/not-found', error: 'Not Found', status: 404, message: `Image with id ${id} not found.` });
      }
    }
    await expectError(await fetch(`${s.url}/storage/images/${unknownId()}`), 404, 'imgprocPublicImage');
    // Never published: the owner's id alone opens nothing.
    await expectError(await fetch(`${s.url}/storage/images/${theirs.id}`), 404, 'imgprocPublicImage');
    expect(await getImage(theirs.id, { 'x-api-key': OTHER_KEY })).toEqual(theirs);
  });

  it('upload: 422 without image or name, for a name over 30, for SVG or text; 413 over MAX_UPLOAD_BYTES', async () => {
    const noImage = await expectError(await upload({ name: 'n', type: 'none' }), 422, 'imgprocUploadImage');
    expect(noImage.errors).toEqual(["body must have required property 'image'"]);
    const noName = await expectError(await upload({}), 422, 'imgprocUploadImage');
    expect(noName.errors).toEqual(["body must have required property 'name'"]);
    const long = await expectError(await upload({ name: 'n'.repeat(31) }), 422, 'imgprocUploadImage');
    expect(long.errors).toEqual(['body/name must NOT have more than 30 characters']);
    const svg = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
    await expectError(await upload({ name: 'n', bytes: svg, type: 'image/svg+xml' }), 422, 'imgprocUploadImage', /jpeg, png, webp.*svg/);
    await expectError(await upload({ name: 'n', bytes: new TextEncoder().encode('plain text, not a picture at all') }), 422, 'imgprocUploadImage', /jpeg, png, webp/);
    const gif = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#fff' } }).gif().toBuffer();
    await expectError(await upload({ name: 'n', bytes: gif, type: 'image/gif' }), 422, 'imgprocUploadImage', /gif/);
    const huge = new Uint8Array(1536 * 1024);
    huge.set([0xff, 0xd8, 0xff, 0xe0]);
    await expectError(await upload({ name: 'n', bytes: huge }), 413, 'imgprocUploadImage', /too large/);
  });

  it('create from URL: 422 without url or name, or with a url that is not one; 400 for an address the fetcher refuses', async () => {
    const missing = await expectError(await post('/v1/images', JSON.stringify({ name: 'n' })), 422, 'imgprocCreateImage');
    expect(missing.errors).toEqual(["body must have required property 'url'"]);
    const both = await expectError(await post('/v1/images', JSON.stringify({})), 422, 'imgprocCreateImage');
    expect(both.errors).toEqual(["body must have required property 'name'", "body must have required property 'url'"]);
    await expectError(await post('/v1/images', JSON.stringify({ name: 'n', url: 'not a url' })), 422, 'imgprocCreateImage', /uri/);
    await expectError(await post('/v1/images', JSON.stringify({ name: 'n', url: 'ftp://example.com/a.jpg' })), 422, 'imgprocCreateImage', /http/);
    await expectError(await post('/v1/images', JSON.stringify({ name: 'n', url: 7 })), 422, 'imgprocCreateImage', /string/);
    await expectError(await post('/v1/images', JSON.stringify({ name: 'n', url: 'http://169.254.169.254/latest/meta-data/x.jpg' })), 400, 'imgprocCreateImage', /not allowed/);
    await expectError(await post('/v1/images', JSON.stringify({ name: 'n', url: `${imageBase}/missing.jpg` })), 400, 'imgprocCreateImage', /could not be fetched/);
    await expectError(await post('/v1/images', ''), 400, 'imgprocCreateImage', /cannot be empty/);
  });

  it('publish and unpublish refuse an empty JSON body too', async () => {
    const img = await uploaded();
    await expectError(await post(`/v1/images/${img.id}/publish`, ''), 400, 'imgprocPublishImage', /cannot be empty/);
    await expectError(await post(`/v1/images/${img.id}/unpublish`, ''), 400, 'imgprocUnpublishImage', /cannot be empty/);
    expect((await getImage(img.id)).url).toBeNull();
  });

  it('429 with Retry-After over the rate limit', async () => {
    const slow = { 'x-api-key': SLOW_KEY };
    await expectError(await fetch(`${s.url}/v1/images/${unknownId()}`, { headers: slow }), 404, 'imgprocGetImage');
    const res = await fetch(`${s.url}/v1/images/${unknownId()}`, { headers: slow });
    const err = await expectError(res, 429, 'imgprocGetImage');
    expect(err.error).toBe('Too Many Requests');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});

describe('openapi.yaml', () => {
  it('documents every IMG Processing route', async () => {
    const seen = await expectRoutesDocumented(adapterApp(s.gw, imgprocessing));
    expect(seen).toEqual(
      expect.arrayContaining([
        'POST /v1/images',
        'POST /v1/images/upload',
        'GET /v1/images/{image_id}',
        'GET /v1/images/{image_id}/download',
        'DELETE /v1/images/{image_id}',
        'POST /v1/images/{image_id}/remove-background',
        'POST /v1/images/{image_id}/publish',
        'POST /v1/images/{image_id}/unpublish',
        'GET /storage/images/{image_id}',
      ]),
    );
  });
});

describe('expiry (memory store)', () => {
  it(`images and their public links answer 404 after RESULTS_TTL_SECONDS (${TTL} s)`, async () => {
    const img = await uploaded({ name: 'short-lived' });
    const pub = await created(await post(`/v1/images/${img.id}/publish`, undefined, KEY), 'imgprocPublishImage');
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + (TTL - 5) * 1000);
      expect((await getImage(img.id)).url).toBe(pub.url);
      vi.setSystemTime(Date.now() + 10 * 1000);
      await expectError(await fetch(`${s.url}/v1/images/${img.id}`, { headers: KEY }), 404, 'imgprocGetImage');
      await expectError(await fetch(`${s.url}/v1/images/${img.id}/download`, { headers: KEY }), 404, 'imgprocDownloadImage');
      await expectError(await fetch(pub.url!), 404, 'imgprocPublicImage');
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('two replicas on Redis, short results TTL', () => {
  const prefix = `bgw-test-imgproc-${randomUUID().slice(0, 8)}:`;
  const env = { REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: prefix, RESULTS_TTL_SECONDS: '5' };
  let a: TestServer;
  let b: TestServer;
  let redis: Redis;

  beforeAll(async () => {
    a = await startServer(env);
    b = await startServer(env);
    redis = new Redis(env.REDIS_URL);
  }, 180_000);
  afterAll(async () => {
    await a?.close();
    await b?.close();
    if (redis) {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      await redis.quit();
    }
  });

  it('any replica serves every route; delete is seen at once everywhere; nothing outlives the TTL', async () => {
    const img = await uploaded({ name: 'shared', base: a.url });
    expect(await getImage(img.id, KEY, b.url)).toEqual(img);
    // Nothing a client sent is kept longer than RESULTS_TTL_SECONDS.
    const imageTtl = await redis.ttl(`${prefix}result:imgproc:image:${img.id}`);
    expect(imageTtl).toBeGreaterThan(0);
    expect(imageTtl).toBeLessThanOrEqual(5);

    const cut = await created(await post(`/v1/images/${img.id}/remove-background`, '{"name":"cut"}', { ...KEY, 'content-type': 'application/json' }, b.url), 'imgprocRemoveBackground', '2');
    expect(iou(await alpha((await download(cut.id, KEY, a.url)).bytes), fx.mask)).toBeGreaterThan(0.9);

    const pub = await created(await post(`/v1/images/${cut.id}/publish`, undefined, KEY, a.url), 'imgprocPublishImage');
    expect(pub.url).toBe(`${a.url}/storage/images/${cut.id}`);
    const flagTtl = await redis.ttl(`${prefix}result:imgproc:public:${cut.id}`);
    expect(flagTtl).toBeGreaterThan(0);
    expect(flagTtl).toBeLessThanOrEqual(await redis.ttl(`${prefix}result:imgproc:image:${cut.id}`));
    expect((await fetch(`${b.url}/storage/images/${cut.id}`)).status).toBe(200);
    expect((await getImage(cut.id, KEY, b.url)).url).toBe(pub.url);

    expect((await fetch(`${b.url}/v1/images/${cut.id}`, { method: 'DELETE', headers: KEY })).status).toBe(204);
    expect(await redis.exists(`${prefix}result:imgproc:image:${cut.id}`, `${prefix}result:imgproc:public:${cut.id}`)).toBe(0);
    await expectError(await fetch(`${a.url}/v1/images/${cut.id}`, { headers: KEY }), 404, 'imgprocGetImage');
    await expectError(await fetch(pub.url!), 404, 'imgprocPublicImage');

    // A fresh image for the expiry: the first one may already be close to its end.
    const late = await uploaded({ name: 'expires', base: b.url });
    const kept = await created(await post(`/v1/images/${late.id}/publish`, undefined, KEY, a.url), 'imgprocPublishImage');
    expect((await fetch(kept.url!)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 5500));
    await expectError(await fetch(`${a.url}/v1/images/${late.id}`, { headers: KEY }), 404, 'imgprocGetImage');
    await expectError(await fetch(`${b.url}/v1/images/${late.id}/download`, { headers: KEY }), 404, 'imgprocDownloadImage');
    await expectError(await fetch(kept.url!), 404, 'imgprocPublicImage');
    expect(await redis.exists(`${prefix}result:imgproc:image:${late.id}`, `${prefix}result:imgproc:public:${late.id}`)).toBe(0);
  }, 90_000);
});
