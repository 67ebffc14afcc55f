// test/compat-eyeq.test.ts
// The EyeQ container dialect (seed 000) over real HTTP with the real model: licence activation, submit, every job
// state, 102 while processing, every documented error, deletion, expiry, two Redis replicas sharing one licence,
// and the seed's own bash script run with curl and jq against the gateway.
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eyeq } from '../compat/eyeq/index.js';
import { adapterApp } from '../compat/mount.js';
import { writeJobRecord } from '../src/jobs/runner.js';
import { fingerprintOf, hashKey, keyRecord } from '../src/keys.js';
import { alphaOf, decodeRgba, iou, subjectFixture, type Fixture } from './helpers/fixtures.js';
import { expectDocumented, expectMatchesSpec, expectRoutesDocumented } from './helpers/openapi.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';

const run = promisify(execFile);
const OTHER_KEY = 'bge_live_eyeq_other_tenant_key_000000000';
const TINY_KEY = 'bge_live_eyeq_tiny_plan_key_000000000000';
const hasPythonRequests = (() => {
  try {
    execFileSync('python3', ['-c', 'import requests'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let s: TestServer;
let fx: Fixture;
const logLines: string[] = [];

beforeAll(async () => {
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logLines.push(String(chunk));
      cb();
    },
  });
  s = await startServer(
    { API_KEYS: `${TEST_KEY},${OTHER_KEY}`, QUEUE_CONCURRENCY: '1', MAX_UPLOAD_BYTES: String(1024 * 1024), PLANS: JSON.stringify({ Tiny: { monthlyCredits: 1 } }) },
    { log: pino({ level: 'info' }, sink) },
  );
  await s.gw.stores.keys.add(keyRecord(TINY_KEY, { plan: 'Tiny' }, { plan: 'Business' }));
  fx = await subjectFixture({ width: 320, height: 240 });
}, 120_000);
afterAll(async () => {
  await s?.close();
});

interface Check {
  status: string;
  original_name: string;
  mode: string;
  processing_time?: number;
  error?: string;
}

function submit(opts: { query?: string; fields?: Record<string, string>; bytes?: Uint8Array; name?: string; headers?: Record<string, string>; base?: string; noFile?: boolean } = {}) {
  const fd = new FormData();
  if (!opts.noFile) fd.append('file', new Blob([opts.bytes ?? fx.bytes], { type: 'image/jpeg' }), opts.name ?? 'photo.jpg');
  for (const [k, v] of Object.entries(opts.fields ?? {})) fd.append(k, v);
  return fetch(`${opts.base ?? s.url}/SubmitImage${opts.query ?? ''}`, { method: 'POST', headers: { accept: 'application/json', ...opts.headers }, body: fd });
}

async function submitted(opts: Parameters<typeof submit>[0] = {}): Promise<string> {
  const res = await submit(opts);
  expect(res.status, await res.clone().text()).toBe(200);
  await spec(res);
  return ((await res.json()) as { process_id: string }).process_id;
}

const check = (id: string, headers: Record<string, string> = {}, base = s.url) => fetch(`${base}/CheckImage/${id}`, { headers });

async function waitDone(id: string, headers: Record<string, string> = {}, base = s.url): Promise<Check> {
  for (let i = 0; i < 600; i++) {
    const res = await check(id, headers, base);
    expect(res.status, await res.clone().text()).toBe(200);
    await spec(res);
    const body = (await res.json()) as Check;
    if (body.status === 'completed' || body.status === 'failed') return body;
    expect(['queued', 'processing']).toContain(body.status);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job ${id} never finished`);
}

const OPERATIONS: Record<string, string> = {
  Authorize: 'eyeqAuthorize',
  Status: 'eyeqStatus',
  SubmitImage: 'eyeqSubmitImage',
  CheckImage: 'eyeqCheckImage',
  DownloadImage: 'eyeqDownloadImage',
  RemoveImage: 'eyeqRemoveImage',
};
/** Every JSON answer is checked against its openapi.yaml operation. */
function spec(res: Response): Promise<unknown> {
  const route = new URL(res.url).pathname.replace(/^\/compat\/eyeq/, '').split('/')[1]!;
  return expectMatchesSpec(res, OPERATIONS[route]!);
}

async function expectError(res: Response, status: number, detail?: RegExp) {
  expect(res.status, await res.clone().text()).toBe(status);
  await spec(res);
  const body = (await res.json()) as { detail: unknown; code: string; request_id: string };
  expect(body.request_id).toMatch(/^req_/);
  expect(res.headers.get('x-request-id')).toBe(body.request_id);
  if (detail) expect(String(body.detail)).toMatch(detail);
  return body;
}

async function expectValidation(res: Response, loc: string[]) {
  expect(res.status, await res.clone().text()).toBe(422);
  await spec(res);
  const body = (await res.json()) as { detail: { type: string; loc: string[]; msg: string }[]; request_id: string };
  expect(body.detail).toHaveLength(1);
  expect(body.detail[0]!.loc).toEqual(loc);
  expect(body.detail[0]!.msg.length).toBeGreaterThan(5);
  expect(body.request_id).toMatch(/^req_/);
}

/** A raw HTTP/1.1 exchange: fetch cannot observe a 1xx final status, so read what the socket says. */
function rawGet(url: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    let data = '';
    const sock = net.connect(Number(u.port), u.hostname, () => sock.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`));
    sock.setTimeout(20_000, () => {
      sock.destroy();
      reject(new Error(`no close from ${url}: ${data}`));
    });
    sock.on('data', (d) => (data += String(d)));
    sock.on('end', () => resolve(data));
    sock.on('error', reject);
  });
}

const alpha = async (png: Uint8Array) => alphaOf((await decodeRgba(png)).data);

const authorize = (key: string, base = s.url) => fetch(`${base}/Authorize/${encodeURIComponent(key)}`);

describe('before activation', () => {
  it('/Status is Unlicensed, with every documented field', async () => {
    const res = await fetch(`${s.url}/Status`);
    expect(res.status).toBe(200);
    await spec(res);
    const body = (await res.json()) as Record<string, string>;
    expect(Object.keys(body).sort()).toEqual(['expiration date', 'licensed org', 'message', 'model_version', 'status']);
    expect(body.status).toBe('Unlicensed');
    expect(body.message).toMatch(/Authorize/);
    expect(body.model_version).toMatch(/u2net/);
  });

  it('submit, check, download and remove fail with 403 until /Authorize', async () => {
    await expectError(await submit(), 403, /not licensed/);
    const id = randomUUID();
    await expectError(await check(id), 403, /not licensed/);
    await expectError(await fetch(`${s.url}/DownloadImage/${id}`), 403);
    await expectError(await fetch(`${s.url}/RemoveImage/${id}`, { method: 'DELETE' }), 403);
  });

  it('a request carrying its own key needs no activation; a wrong key is 401', async () => {
    const id = await submitted({ headers: { 'x-api-key': OTHER_KEY } });
    expect(id).toMatch(UUID_RE);
    expect((await waitDone(id, { 'x-api-key': OTHER_KEY })).status).toBe('completed');
    await expectError(await submit({ headers: { 'x-api-key': 'bge_live_nope' } }), 401);
  }, 60_000);
});

describe('GET /Authorize/{license_key}', () => {
  it('400 when license_key is missing', async () => {
    await expectError(await fetch(`${s.url}/Authorize`), 400, /license_key/);
    await expectError(await fetch(`${s.url}/Authorize/`), 400, /license_key/);
    await expectError(await fetch(`${s.url}/Authorize/%20`), 400, /license_key/);
  });

  it('an unknown key answers 200 Unlicensed and licenses nothing', async () => {
    const res = await authorize('not-a-key-of-this-gateway');
    expect(res.status).toBe(200);
    await spec(res);
    const body = (await res.json()) as Record<string, string>;
    expect(body.status).toBe('Unlicensed');
    expect(Object.keys(body).sort()).toEqual(['expiration date', 'licensed org', 'message', 'status']);
    expect(((await (await fetch(`${s.url}/Status`)).json()) as { status: string }).status).toBe('Unlicensed');
    expect((await submit()).status).toBe(403);
  });

  it('an API key licenses the gateway: Licensed, org, expiration YYYY-MM; /Status agrees in ISO 8601', async () => {
    const res = await authorize(TEST_KEY);
    expect(res.status).toBe(200);
    await spec(res);
    const body = (await res.json()) as Record<string, string>;
    expect(body.status).toBe('Licensed');
    expect(body['licensed org']).toBe('localhost');
    expect(body['expiration date']).toMatch(/^\d{4}-\d{2}$/);
    const end = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth() + 1, 1));
    expect(body['expiration date']).toBe(end.toISOString().slice(0, 7));
    const statusRes = await fetch(`${s.url}/Status`);
    const status = (await spec(statusRes)) as Record<string, string>;
    expect(status.status).toBe('Licensed');
    expect(status['licensed org']).toBe('localhost');
    expect(status['expiration date']).toBe(`${body['expiration date']}-01T00:00:00+00:00`);
  });

  it('the licence key in the path never reaches the access log', async () => {
    await new Promise((r) => setTimeout(r, 50));
    const all = logLines.join('');
    expect(all).toContain('/Authorize/{license_key}');
    expect(all).not.toContain(TEST_KEY);
    expect(all).not.toContain('not-a-key-of-this-gateway');
  });

  it('answers under /compat/eyeq/ too, sharing the one licence', async () => {
    const status = (await (await fetch(`${s.url}/compat/eyeq/Status`)).json()) as { status: string };
    expect(status.status).toBe('Licensed');
    const id = await submitted({ base: `${s.url}/compat/eyeq` });
    expect((await waitDone(id, {}, `${s.url}/compat/eyeq`)).status).toBe('completed');
    expect((await fetch(`${s.url}/DownloadImage/${id}`)).status).toBe(200);
  }, 60_000);
});

describe('submit → check → download → remove', () => {
  it('the documented flow with every option, on the licensed key', async () => {
    const res = await submit({
      query: '?preprocessing=true&postprocessing=true',
      fields: { mode: 'portrait', preprocessing_config: '{"auto_rotate": true}' },
      name: 'holiday.jpg',
    });
    expect(res.status).toBe(200);
    await spec(res);
    const body = (await res.json()) as Record<string, string>;
    expect(Object.keys(body).sort()).toEqual(['message', 'mode', 'preprocessing_enabled', 'process_id', 'status']);
    expect(body).toMatchObject({ status: 'processing', mode: 'portrait', preprocessing_enabled: 'true', message: 'Image processing started' });
    expect(body.process_id).toMatch(UUID_RE);
    const id = body.process_id!;

    const done = await waitDone(id);
    expect(done).toMatchObject({ status: 'completed', original_name: 'holiday.jpg', mode: 'portrait' });
    expect(typeof done.processing_time).toBe('number');
    expect(done.processing_time!).toBeGreaterThan(0);
    expect(done.error).toBeUndefined();

    const dl = await fetch(`${s.url}/DownloadImage/${id}`);
    expect(dl.status).toBe(200);
    expect(dl.headers.get('content-type')).toBe('image/png');
    await expectDocumented(dl, 'eyeqDownloadImage');
    const png = new Uint8Array(await dl.arrayBuffer());
    const meta = await sharp(png).metadata();
    expect(meta).toMatchObject({ format: 'png', width: 320, height: 240, channels: 4 });
    expect(iou(await alpha(png), fx.mask)).toBeGreaterThan(0.9);

    const del = await fetch(`${s.url}/RemoveImage/${id}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    await spec(del);
    expect(await del.json()).toEqual({ status: 'deleted', process_id: id, files_deleted: 2, previous_status: 'completed' });
    await expectError(await check(id), 404, /not found/);
    await expectError(await fetch(`${s.url}/DownloadImage/${id}`), 404);
    await expectError(await fetch(`${s.url}/RemoveImage/${id}`, { method: 'DELETE' }), 404);
  }, 60_000);

  it('mode defaults to general, preprocessing_enabled to "false"; an empty preprocessing_config is fine', async () => {
    const res = await submit({ fields: { preprocessing_config: '' } });
    const body = (await res.json()) as Record<string, string>;
    expect(body).toMatchObject({ status: 'processing', mode: 'general', preprocessing_enabled: 'false' });
    const done = await waitDone(body.process_id!);
    expect(done).toMatchObject({ status: 'completed', mode: 'general', original_name: 'photo.jpg' });
  }, 60_000);

  it('mode portrait and postprocessing=true (spill reduction) clean the old background out of soft edges; general leaves it', async () => {
    // Red figure on saturated green: the edge pixels of a plain cut-out carry green, which both options remove.
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="480" height="360"><rect width="100%" height="100%" fill="#18c018"/><circle cx="240" cy="150" r="70" fill="#c81818"/><rect x="160" y="200" width="160" height="150" rx="30" fill="#c81818"/></svg>`;
    const green = await sharp(Buffer.from(svg)).jpeg({ quality: 95 }).toBuffer();
    const cutOut = async (query: string, mode: string) => {
      const id = await submitted({ bytes: green, query, fields: { mode }, name: 'green.jpg' });
      expect((await waitDone(id)).status).toBe('completed');
      return decodeRgba(new Uint8Array(await (await fetch(`${s.url}/DownloadImage/${id}`)).arrayBuffer()));
    };
    const general = await cutOut('', 'general');
    const portrait = await cutOut('', 'portrait');
    const despilled = await cutOut('?postprocessing=true', 'general');
    // The options change colours only, never the matte.
    expect(iou(alphaOf(portrait.data), alphaOf(general.data))).toBeGreaterThan(0.99);
    expect(iou(alphaOf(despilled.data), alphaOf(general.data))).toBeGreaterThan(0.99);
    const edgeGreen = (data: Buffer) => {
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
    expect(edgeGreen(general.data)).toBeGreaterThan(edgeGreen(portrait.data) + 30);
    expect(edgeGreen(general.data)).toBeGreaterThan(edgeGreen(despilled.data) + 30);
  }, 90_000);

  it('queued and processing states; DownloadImage answers 102 meanwhile; deleting a queued job stops it for good', async () => {
    const big = await subjectFixture({ width: 1600, height: 1200 });
    const first = await submitted({ bytes: big.bytes });
    const second = await submitted({ bytes: big.bytes });
    const third = await submitted({ bytes: big.bytes });
    const running = (await spec(await check(first))) as Check;
    expect(running.status).toBe('processing');
    expect(running.processing_time).toBeUndefined();
    const waiting = (await spec(await check(third))) as Check;
    expect(waiting.status).toBe('queued');

    const raw = await rawGet(`${s.url}/DownloadImage/${third}`);
    expect(raw).toMatch(/^HTTP\/1\.1 102 Processing\r\n/);
    expect(raw.toLowerCase()).toContain('x-request-id: req_');
    const curl = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `${s.url}/DownloadImage/${second}`]).catch((e: { stdout: string }) => e);
    expect(curl.stdout).toBe('102');
    if (hasPythonRequests) {
      // What the container's Python clients see.
      const py = await run('python3', ['-c', `import requests; r = requests.get("${s.url}/DownloadImage/${second}"); print(r.status_code, r.headers.get("X-Process-Status"))`]);
      expect(py.stdout.trim()).toMatch(/^102 (queued|processing)$/);
    }
    await new Promise((r) => setTimeout(r, 50));
    // The access log records what the client got, not the placeholder the framework saw.
    const logged = logLines.map((l) => JSON.parse(l) as { path?: string; status?: number }).filter((l) => l.path === `/DownloadImage/${third}`);
    expect(logged.map((l) => l.status)).toEqual([102]);

    const del = await fetch(`${s.url}/RemoveImage/${third}`, { method: 'DELETE' });
    expect(await spec(del)).toEqual({ status: 'deleted', process_id: third, files_deleted: 1, previous_status: 'processing' });
    expect((await waitDone(first)).status).toBe('completed');
    expect((await waitDone(second)).status).toBe('completed');
    await new Promise((r) => setTimeout(r, 300));
    // The runner must not write a deleted job back when its queue slot comes round.
    await expectError(await check(third), 404);
    await expectError(await fetch(`${s.url}/DownloadImage/${third}`), 404);
  }, 120_000);

  it('a job that fails is "failed" with its error; DownloadImage is 500; RemoveImage reports previous_status failed', async () => {
    const png = await sharp({ create: { width: 200, height: 200, channels: 3, background: '#808080' } }).png().toBuffer();
    const truncated = png.subarray(0, 60);
    const id = await submitted({ bytes: truncated, name: 'broken.png' });
    const done = await waitDone(id);
    expect(done).toMatchObject({ status: 'failed', original_name: 'broken.png' });
    expect(done.error!.length).toBeGreaterThan(5);
    expect(done.processing_time).toBeUndefined();
    await expectError(await fetch(`${s.url}/DownloadImage/${id}`), 500, /Processing failed/);
    const del = await fetch(`${s.url}/RemoveImage/${id}`, { method: 'DELETE' });
    expect(await spec(del)).toEqual({ status: 'deleted', process_id: id, files_deleted: 1, previous_status: 'failed' });
  }, 60_000);
});

describe('deletion, credits and lost jobs', () => {
  it('deleting a queued job refunds its credit; the next one past the allowance is 402', async () => {
    const tiny = { 'x-api-key': TINY_KEY };
    // A picture no earlier test sent: an identical one would be answered from the cache and block nothing.
    const big = await subjectFixture({ width: 1640, height: 1230 });
    const blocker = await submitted({ bytes: big.bytes });
    const queued = await submitted({ headers: tiny });
    expect(((await (await check(queued, tiny)).json()) as Check).status).toBe('queued');
    // Deleted through the other mount: the same replica still stops the job at once.
    const del = await fetch(`${s.url}/compat/eyeq/RemoveImage/${queued}`, { method: 'DELETE', headers: tiny });
    expect(((await del.json()) as { previous_status: string }).previous_status).toBe('processing');
    const again = await submitted({ headers: tiny });
    expect((await waitDone(again, tiny)).status).toBe('completed');
    await expectError(await submit({ headers: tiny }), 402, /credits/i);
    await waitDone(blocker);
  }, 90_000);

  it('a job lost with its replica (lease lapsed) reads as failed, not processing forever', async () => {
    const id = randomUUID();
    const owner = fingerprintOf(hashKey(TEST_KEY));
    const extra = { dialect: 'eyeq', original_name: 'lost.jpg', mode: 'general', preprocessing: false, postprocessing: false, preprocessing_config: {} };
    await writeJobRecord(s.gw, { id, state: 'processing', owner, createdAt: Date.now() - 60_000, startedAt: Date.now() - 59_000, leaseUntil: Date.now() - 1000, extra });
    const body = (await spec(await check(id))) as Check;
    expect(body).toMatchObject({ status: 'failed', original_name: 'lost.jpg' });
    expect(body.error).toMatch(/lost/);
    await expectError(await fetch(`${s.url}/DownloadImage/${id}`), 500, /lost/);
  });
});

describe('documented errors', () => {
  it('413 for an upload over MAX_UPLOAD_BYTES', async () => {
    const huge = new Uint8Array(1536 * 1024);
    huge.set([0xff, 0xd8, 0xff, 0xe0]);
    await expectError(await submit({ bytes: huge }), 413, /too large/);
  });

  it('422 when the file is missing, and for a bad mode, flag or preprocessing_config', async () => {
    await expectValidation(await submit({ noFile: true, fields: { mode: 'portrait' } }), ['body', 'file']);
    await expectValidation(await submit({ fields: { mode: 'landscape' } }), ['body', 'mode']);
    await expectValidation(await submit({ query: '?preprocessing=maybe' }), ['query', 'preprocessing']);
    await expectValidation(await submit({ query: '?postprocessing=2' }), ['query', 'postprocessing']);
    await expectValidation(await submit({ fields: { preprocessing_config: '{not json' } }), ['body', 'preprocessing_config']);
    await expectValidation(await submit({ fields: { preprocessing_config: '[1,2]' } }), ['body', 'preprocessing_config']);
  });

  it('404 when the file is not an image', async () => {
    await expectError(await submit({ bytes: new TextEncoder().encode('this is a text file, not a photo') }), 404, /Content \(file\) invalid/);
    const svg = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
    await expectError(await submit({ bytes: svg }), 404, /SVG/);
  });

  it('400 for a process_id that is not a UUID or is missing; 404 for an unknown one', async () => {
    for (const [method, route] of [['GET', 'CheckImage'], ['GET', 'DownloadImage'], ['DELETE', 'RemoveImage']] as const) {
      await expectError(await fetch(`${s.url}/${route}/not-a-uuid`, { method }), 400, /UUID/);
      await expectError(await fetch(`${s.url}/${route}/`, { method }), 400, /missing/);
      await expectError(await fetch(`${s.url}/${route}`, { method }), 400, /missing/);
      await expectError(await fetch(`${s.url}/${route}/${randomUUID()}`, { method }), 404, /not found/);
    }
  });

  it("another tenant's job is 404 to the licensed key, and the other way round", async () => {
    const mine = await submitted();
    const theirs = await submitted({ headers: { 'x-api-key': OTHER_KEY } });
    await waitDone(mine);
    await waitDone(theirs, { 'x-api-key': OTHER_KEY });
    await expectError(await check(theirs), 404);
    await expectError(await check(mine, { 'x-api-key': OTHER_KEY }), 404);
    expect((await fetch(`${s.url}/DownloadImage/${theirs}`, { headers: { 'x-api-key': OTHER_KEY } })).status).toBe(200);
  }, 60_000);

  it('a revoked licence key unlicenses the gateway until another key is applied', async () => {
    const secret = 'bge_live_eyeq_soon_revoked_key_00000000';
    await s.gw.stores.keys.add(keyRecord(secret, { label: 'Acme Photo' }, { plan: 'Business' }));
    const body = (await (await authorize(secret)).json()) as Record<string, string>;
    expect(body).toMatchObject({ status: 'Licensed', 'licensed org': 'Acme Photo' });
    // An invalid key afterwards does not unlicense the gateway.
    expect(((await (await authorize('garbage')).json()) as { message: string }).message).toMatch(/stays licensed/);
    expect(((await (await fetch(`${s.url}/Status`)).json()) as { 'licensed org': string })['licensed org']).toBe('Acme Photo');
    await s.gw.stores.keys.revoke(fingerprintOf(hashKey(secret)), new Date());
    const status = (await (await fetch(`${s.url}/Status`)).json()) as Record<string, string>;
    expect(status.status).toBe('Unlicensed');
    expect(status.message).toMatch(/revoked/);
    await expectError(await submit(), 403, /revoked/);
    expect(((await (await authorize(TEST_KEY)).json()) as { status: string }).status).toBe('Licensed');
    expect((await submit()).status).toBe(200);
  }, 60_000);
});

// The seed's "Complete example", verbatim but for the host; the licence is applied first as the seed's
// "Activate the license" step says, with only the key changed.
const SEED_SCRIPT = `#!/bin/bash

INPUT=\${1:-photo.jpg}
OUTPUT=\${2:-photo_nobg.png}

if [ ! -f "$INPUT" ]; then
    echo "File $INPUT not found"
    exit 1
fi

# Submit the image
process_id=$(curl -s -X POST \\
  "http://localhost:8000/SubmitImage?preprocessing=true" \\
  -H "accept: application/json" \\
  -H "Content-Type: multipart/form-data" \\
  -F "file=@\${INPUT};type=image/jpeg" \\
  -F "mode=portrait" | jq -r '.process_id')
echo "Submitted: \${process_id}"

# Poll until complete
while true; do
    status=$(curl -s -X GET "http://localhost:8000/CheckImage/\${process_id}" | jq -r '.status')
    echo "Status: \${status}"
    if [ "\${status}" == "completed" ]; then
        break
    elif [ "\${status}" == "failed" ]; then
        echo "Processing failed"
        exit 1
    fi
    sleep 1
done

# Download the result
curl -s -X GET "http://localhost:8000/DownloadImage/\${process_id}" -o "\${OUTPUT}"
echo "Saved to: \${OUTPUT}"

# Clean up
curl -s -X DELETE "http://localhost:8000/RemoveImage/\${process_id}" > /dev/null
echo "Cleaned up"
`;

describe("the seed's complete bash example", () => {
  it('runs unchanged with curl and jq, after the activation curl', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'eyeq-'));
    try {
      const host = s.url;
      // A size not seen before, so the mask cache cannot answer and the loop really polls.
      const photo = await subjectFixture({ width: 400, height: 300 });
      await writeFile(path.join(dir, 'example.sh'), SEED_SCRIPT.replaceAll('http://localhost:8000', host));
      await writeFile(path.join(dir, 'photo.jpg'), photo.bytes);
      const activation = await run('bash', ['-c', `curl -X GET ${host}/Authorize/{license_key}`.replace('{license_key}', TEST_KEY)], { cwd: dir });
      expect(JSON.parse(activation.stdout)).toMatchObject({ status: 'Licensed' });
      const { stdout } = await run('bash', ['example.sh'], { cwd: dir, timeout: 60_000 });
      const lines = stdout.trim().split('\n');
      const id = /^Submitted: (.+)$/.exec(lines[0]!)?.[1];
      expect(id).toMatch(UUID_RE);
      expect(lines).toContain('Status: completed');
      expect(lines.slice(-2)).toEqual(['Saved to: photo_nobg.png', 'Cleaned up']);
      const png = await readFile(path.join(dir, 'photo_nobg.png'));
      expect(await sharp(png).metadata()).toMatchObject({ format: 'png', width: 400, height: 300, channels: 4 });
      expect(iou(await alpha(png), photo.mask)).toBeGreaterThan(0.9);
      await expectError(await check(id!), 404);
      // The script's own "not found" branch.
      const missing = await run('bash', ['example.sh', 'nope.jpg'], { cwd: dir }).catch((e: { code: number; stdout: string }) => e);
      expect(missing).toMatchObject({ code: 1, stdout: 'File nope.jpg not found\n' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe("the seed's SubmitImage curl example", () => {
  it('runs unchanged but for the host (query flags, accept, explicit multipart Content-Type, typed file part, empty preprocessing_config)', async () => {
    expect(((await (await authorize(TEST_KEY)).json()) as { status: string }).status).toBe('Licensed');
    const dir = await mkdtemp(path.join(tmpdir(), 'eyeq-curl-'));
    try {
      const photo = await subjectFixture({ width: 360, height: 270 });
      await writeFile(path.join(dir, 'photo.jpg'), photo.bytes);
      const seed = `curl -X 'POST' \\
  'http://localhost:8000/SubmitImage?preprocessing=true&postprocessing=true' \\
  -H 'accept: application/json' \\
  -H 'Content-Type: multipart/form-data' \\
  -F 'file=@photo.jpg;type=image/jpeg' \\
  -F 'mode=portrait' \\
  -F 'preprocessing_config='`;
      const { stdout } = await run('bash', ['-c', seed.replace('http://localhost:8000', s.url)], { cwd: dir });
      const body = JSON.parse(stdout) as Record<string, string>;
      expect(body).toMatchObject({ status: 'processing', mode: 'portrait', preprocessing_enabled: 'true', message: 'Image processing started' });
      expect(body.process_id).toMatch(UUID_RE);
      const done = await waitDone(body.process_id!);
      expect(done).toMatchObject({ status: 'completed', original_name: 'photo.jpg', mode: 'portrait' });
      const png = new Uint8Array(await (await fetch(`${s.url}/DownloadImage/${body.process_id}`)).arrayBuffer());
      expect(iou(await alpha(png), photo.mask)).toBeGreaterThan(0.9);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('openapi.yaml', () => {
  it('documents every EyeQ route', async () => {
    const seen = await expectRoutesDocumented(adapterApp(s.gw, eyeq));
    expect(seen).toEqual(
      expect.arrayContaining(['GET /Authorize/{license_key}', 'GET /Status', 'POST /SubmitImage', 'GET /CheckImage/{id}', 'GET /DownloadImage/{id}', 'DELETE /RemoveImage/{id}']),
    );
  });
});

describe('two replicas on Redis, short results TTL', () => {
  const prefix = `bgw-test-eyeq-${randomUUID().slice(0, 8)}:`;
  const env = { REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: prefix, RESULTS_TTL_SECONDS: '3' };
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

  it('one /Authorize licenses both; any replica answers check, download and remove; results expire, the licence does not', async () => {
    expect(((await (await fetch(`${b.url}/Status`)).json()) as { status: string }).status).toBe('Unlicensed');
    expect(((await (await authorize(TEST_KEY, a.url)).json()) as { status: string }).status).toBe('Licensed');
    expect(((await (await fetch(`${b.url}/Status`)).json()) as { status: string }).status).toBe('Licensed');

    const id = await submitted({ base: b.url });
    expect((await waitDone(id, {}, a.url)).status).toBe('completed');
    const dl = await fetch(`${a.url}/DownloadImage/${id}`);
    expect(dl.status).toBe(200);
    expect(iou(await alpha(new Uint8Array(await dl.arrayBuffer())), fx.mask)).toBeGreaterThan(0.9);
    const del = await fetch(`${a.url}/RemoveImage/${id}`, { method: 'DELETE' });
    expect(((await del.json()) as { previous_status: string }).previous_status).toBe('completed');
    await expectError(await check(id, {}, b.url), 404);

    const kept = await submitted({ base: a.url });
    expect((await waitDone(kept, {}, b.url)).status).toBe('completed');
    await new Promise((r) => setTimeout(r, 4000));
    await expectError(await check(kept, {}, a.url), 404, /expired/);
    await expectError(await fetch(`${b.url}/DownloadImage/${kept}`), 404);
    expect(((await (await fetch(`${a.url}/Status`)).json()) as { status: string }).status).toBe('Licensed');
    expect((await submit({ base: b.url })).status).toBe(200);
  }, 90_000);
});
