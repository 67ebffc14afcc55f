// compat/eyeq/index.ts
// The EyeQ Background Removal container (seed 000): GET /Authorize/{license_key} and /Status, POST /SubmitImage,
// GET /CheckImage/{id}, GET /DownloadImage/{id} (102 while processing), DELETE /RemoveImage/{id}, on the shared
// job runner, so any replica answers status, download and delete from the results store.
//
// Licensing. The licence key is one of this gateway's API keys. "Once per container instance" means once per
// deployment that shares a results store: /Authorize remembers the licensed key's fingerprint (never the secret)
// in the results store under `eyeq:licence` (≈10-year TTL, renewed by each /Authorize), so with Redis every replica
// is licensed by one call, and with memory stores the licence lasts as long as the process, like a container's.
// Each replica also keeps the last licence it saw and writes it back if the store lost it (memory eviction).
// Calls without a key then run on the licensed key's account: credits, rate limit and job ownership are its, and
// a revoked or lapsed key makes the gateway unlicensed again. Before activation, SubmitImage, CheckImage,
// DownloadImage and RemoveImage answer 403 {"detail": …}. /Authorize with a valid key re-licenses to that key;
// an invalid key answers 200 "Unlicensed" and leaves the current licence alone (no one can unlicense a gateway
// by sending rubbish). /Status and /Authorize need no key. The licence key in /Authorize's path is not logged.
//
// Where the seed is silent [U]:
// - A request that carries its own key (x-api-key or Authorization: Bearer) uses that key and needs no activation,
//   so several tenants can share one gateway; key-less calls use the activated licence.
// - Errors are FastAPI-shaped, as the container's 422s are: {"detail": message, "code", "request_id"}; validation
//   failures (missing file, bad mode, flag or preprocessing_config) are 422 {"detail": [{type, loc, msg, input}]}.
//   Unlicensed → 403; a bad header key → 401; credits → 402; rate limit → 429; busy → 503 with Retry-After.
// - mode defaults to general; portrait also re-estimates edge colours (hair) with foreground estimation.
//   postprocessing=true is spill reduction (despill). preprocessing is accepted and echoed: our pipeline always
//   normalises the input (EXIF rotation, sRGB, 8-bit), so it changes nothing. preprocessing_config must be empty
//   or a JSON object; the seed defines no keys, so it is kept with the job and not otherwise applied.
// - An upload that is not a decodable image is refused at submit with 404 ("Content (file) invalid"); one that
//   only fails while decoding (truncated) becomes a failed job with the error kept.
// - "licensed org" is the key's label, else its account email's domain; "expiration date" is the end of the
//   current billing period (when the key's allowance renews), as YYYY-MM in /Authorize and ISO 8601 in /Status.
// - 102 is sent as the final status line (no body, Connection: close), which is what Python's http.client and
//   requests report as status_code 102; curl prints 102 for %{http_code}. queued counts as processing. Outside
//   @hono/node-server (app.request in-process) there is no socket to write it on, so that case answers 202 JSON.
// - RemoveImage: files_deleted is 2 for a completed job (upload and result), 1 otherwise; a queued or running job
//   is stopped and its credits refunded; previous_status reports queued as "processing".
// - Results (and so process ids) live RESULTS_TTL_SECONDS (default 1 h) after their last change, then 404.
import type { ServerResponse } from 'node:http';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context, Hono } from 'hono';
import { GatewayError } from '../../src/errors.js';
import type { Gateway } from '../../src/gateway.js';
import { guardStore } from '../../src/gateway.js';
import { authenticate, readNativeKey } from '../../src/http/auth.js';
import { parseBody, type ParsedBody } from '../../src/http/body.js';
import type { AppEnv } from '../../src/http/env.js';
import { checkRateLimit } from '../../src/http/limits.js';
import { JobRunner, type JobRecord } from '../../src/jobs/runner.js';
import { makeJob } from '../../src/job.js';
import { DECODABLE, sniffImageType } from '../../src/pipeline/sniff.js';
import { currentPeriod, periodEnd } from '../../src/plans.js';
import type { ApiKeyRecord } from '../../src/store/types.js';
import { admit, bodyLimits, commonErrorHeaders } from '../mount.js';
import type { CompatAdapter } from '../types.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const LICENCE_ID = 'eyeq:licence';
const LICENCE_TTL_SECONDS = 10 * 365 * 24 * 3600;
const ACTIVE = new Set(['active', 'trialing']);
const MODES = ['portrait', 'general'] as const;
type Mode = (typeof MODES)[number];
// pydantic's bool parsing, which FastAPI applies to query flags.
const TRUE = new Set(['true', '1', 'yes', 'on', 't', 'y']);
const FALSE = new Set(['false', '0', 'no', 'off', 'f', 'n']);

interface Licence {
  fingerprint: string;
  activatedAt: string;
}

interface EyeqFacts {
  dialect: 'eyeq';
  original_name: string;
  mode: Mode;
  preprocessing: boolean;
  postprocessing: boolean;
  preprocessing_config: Record<string, unknown>;
}

/** The last licence each gateway saw, to restore it if the store lost it. */
const lastLicence = new WeakMap<Gateway, Licence>();

interface ValidationItem {
  type: string;
  loc: (string | number)[];
  msg: string;
  input: unknown;
}

/** A FastAPI request-validation error (422). */
function validation(item: ValidationItem): GatewayError {
  return new GatewayError('invalid_parameter', { message: item.msg, details: { eyeqStatus: 422, validation: [item] } });
}

function eyeqError(code: ConstructorParameters<typeof GatewayError>[0], status: number, message: string): GatewayError {
  return new GatewayError(code, { message, details: { eyeqStatus: status } });
}

function renderEyeqError(err: GatewayError, c: Context<AppEnv>): Response {
  const status = typeof err.details.eyeqStatus === 'number' ? err.details.eyeqStatus : err.status;
  const detail = Array.isArray(err.details.validation) ? err.details.validation : err.message;
  return new Response(JSON.stringify({ detail, code: err.code, request_id: c.get('requestId') }), {
    status,
    headers: { 'Content-Type': 'application/json', ...commonErrorHeaders(err, c) },
  });
}

async function currentLicence(gw: Gateway): Promise<Licence | undefined> {
  const stored = await guardStore(gw.stores.results.get(LICENCE_ID), gw.config.STORE_TIMEOUT_MS);
  const meta = stored?.meta as Partial<Licence> & { eyeqLicence?: boolean } | undefined;
  if (meta?.eyeqLicence && meta.fingerprint) {
    const licence = { fingerprint: meta.fingerprint, activatedAt: String(meta.activatedAt) };
    lastLicence.set(gw, licence);
    return licence;
  }
  const remembered = lastLicence.get(gw);
  if (remembered) await saveLicence(gw, remembered).catch(() => undefined);
  return remembered;
}

async function saveLicence(gw: Gateway, licence: Licence): Promise<void> {
  await guardStore(gw.stores.results.put(LICENCE_ID, { status: 'done', meta: { eyeqLicence: true, ...licence } }, LICENCE_TTL_SECONDS), gw.config.STORE_TIMEOUT_MS);
  lastLicence.set(gw, licence);
}

/** The licensed key, if there is a licence and its key is still usable. */
async function licensedKey(gw: Gateway): Promise<{ key?: ApiKeyRecord; why: string }> {
  const licence = await currentLicence(gw);
  if (!licence) return { why: 'No license applied. Apply one with GET /Authorize/{license_key} (an API key of this gateway).' };
  const key = await guardStore(gw.stores.keys.get(licence.fingerprint), gw.config.STORE_TIMEOUT_MS);
  if (!key || key.revokedAt) return { why: 'The applied license key was revoked. Apply another with GET /Authorize/{license_key}.' };
  if (!ACTIVE.has(key.subscriptionStatus)) return { why: `The subscription of the applied license key is ${key.subscriptionStatus}.` };
  return { key, why: 'Licensed: the container is ready to process images.' };
}

function licensedOrg(key: ApiKeyRecord): string {
  return key.label ?? key.email.split('@')[1] ?? key.email;
}

/** The end of the current billing period, when the key's allowance renews. */
function expiration(): Date {
  return periodEnd(currentPeriod());
}

/** Own key if the request carries one; else the activated licence; else 403. */
async function admitEyeq(c: Context<AppEnv>, gw: Gateway, readBody: boolean): Promise<ParsedBody | undefined> {
  if (readNativeKey(c)) return admit(c, gw, eyeq, readBody);
  if (gw.state.shuttingDown) throw new GatewayError('shutting_down', { retryAfter: gw.config.QUEUE_RETRY_AFTER_SECONDS });
  const { key, why } = await licensedKey(gw);
  if (!key) throw eyeqError('forbidden', 403, `Container is not licensed. ${why}`);
  c.set('apiKey', key);
  const limit = await checkRateLimit(gw, key);
  c.set('rateLimitHeaders', limit.headers);
  return readBody ? parseBody(c.req.raw, bodyLimits(gw)) : undefined;
}

function readFlag(fields: Map<string, string>, name: string): boolean {
  const v = fields.get(name);
  if (v === undefined) return false;
  const s = v.trim().toLowerCase();
  if (TRUE.has(s)) return true;
  if (FALSE.has(s)) return false;
  throw validation({ type: 'bool_parsing', loc: ['query', name], msg: 'Input should be a valid boolean, unable to interpret input', input: v });
}

function readMode(fields: Map<string, string>): Mode {
  const v = fields.get('mode');
  if (v === undefined) return 'general';
  const s = v.trim().toLowerCase();
  if ((MODES as readonly string[]).includes(s)) return s as Mode;
  throw validation({ type: 'enum', loc: ['body', 'mode'], msg: "Input should be 'portrait' or 'general'", input: v });
}

function readConfig(fields: Map<string, string>): Record<string, unknown> {
  const v = fields.get('preprocessing_config');
  if (v === undefined || v.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch {
    throw validation({ type: 'json_invalid', loc: ['body', 'preprocessing_config'], msg: 'preprocessing_config must be a JSON object string (or empty)', input: v });
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw validation({ type: 'dict_type', loc: ['body', 'preprocessing_config'], msg: 'preprocessing_config must be a JSON object string (or empty)', input: v });
  }
  return parsed as Record<string, unknown>;
}

async function submit(c: Context<AppEnv>, gw: Gateway, runner: JobRunner): Promise<Response> {
  const body = (await admitEyeq(c, gw, true))!;
  const file = body.files.get('file');
  if (!file) throw validation({ type: 'missing', loc: ['body', 'file'], msg: 'Field required', input: null });
  const mode = readMode(body.fields);
  const preprocessing = readFlag(body.fields, 'preprocessing');
  const postprocessing = readFlag(body.fields, 'postprocessing');
  const config = readConfig(body.fields);
  const type = sniffImageType(file.bytes);
  if (!type || !DECODABLE.has(type)) {
    throw eyeqError('invalid_image', 404, `Content (file) invalid: ${type ? `${type.toUpperCase()} is not supported` : 'not an image'}; send JPEG, PNG, WebP, AVIF, HEIF, TIFF, GIF or BMP.`);
  }
  const originalName = file.filename ?? 'image';
  const job = makeJob({
    source: { kind: 'bytes', bytes: file.bytes, filename: originalName },
    format: 'png',
    channels: 'rgba',
    size: 'full',
    despill: postprocessing,
    foregroundEstimation: mode === 'portrait',
  });
  const facts: EyeqFacts = { dialect: 'eyeq', original_name: originalName, mode, preprocessing, postprocessing, preprocessing_config: config };
  const record = await runner.submit(c.get('apiKey')!, job, facts as unknown as Record<string, unknown>);
  return c.json({ status: 'processing', process_id: record.id, mode, preprocessing_enabled: String(preprocessing), message: 'Image processing started' });
}

async function findJob(c: Context<AppEnv>, gw: Gateway, runner: JobRunner): Promise<JobRecord> {
  await admitEyeq(c, gw, false);
  const id = c.req.param('id') ?? '';
  if (!UUID.test(id)) throw eyeqError('invalid_parameter', 400, `process_id invalid format: expected a UUID, got "${id.slice(0, 60)}".`);
  const record = await runner.get(id, c.get('apiKey')!.fingerprint);
  if (!record || record.extra.dialect !== 'eyeq') {
    throw eyeqError('not_found', 404, `process_id ${id} not found (removed, expired after ${gw.config.RESULTS_TTL_SECONDS} s, or never submitted).`);
  }
  return record;
}

const missingId = (): never => {
  throw eyeqError('invalid_parameter', 400, 'process_id is missing.');
};

function checkBody(r: JobRecord): Record<string, unknown> {
  const facts = r.extra as unknown as EyeqFacts;
  const body: Record<string, unknown> = { status: r.state, original_name: facts.original_name, mode: facts.mode };
  if (r.state === 'completed') {
    const ms = r.startedAt && r.finishedAt ? r.finishedAt - r.startedAt : (r.result?.totalMs ?? 0);
    body.processing_time = Math.round(ms) / 1000;
  }
  if (r.state === 'failed') body.error = r.error?.message ?? 'failed';
  return body;
}

/**
 * 102 as the final status: Response cannot carry a 1xx, so it is written on the Node response directly and the
 * connection closed (a 1xx has no body, and the client must not wait for another response on this socket).
 */
function stillProcessing(c: Context<AppEnv>, r: JobRecord): Response {
  const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  const headers = { 'X-Request-Id': c.get('requestId'), 'X-Process-Status': r.state, 'Retry-After': '1', Connection: 'close', ...(c.get('rateLimitHeaders') ?? {}) };
  if (!outgoing || outgoing.headersSent) return c.json({ status: r.state, detail: 'Image still processing' }, 202, headers);
  outgoing.writeHead(102, 'Processing', headers);
  outgoing.end();
  // @hono/node-server swaps the global Response for its own; its "already sent" marker must be a native one.
  const NativeResponse = RESPONSE_ALREADY_SENT.constructor as typeof Response;
  const sent = new NativeResponse(null, { headers: RESPONSE_ALREADY_SENT.headers });
  // So the access log and metrics record what the client got.
  Object.defineProperty(sent, 'status', { value: 102 });
  return sent;
}

export const eyeq: CompatAdapter = {
  name: 'eyeq',
  readApiKey: (c) => readNativeKey(c),
  renderError: renderEyeqError,
  routes: [],
  extraRoutes(app: Hono<AppEnv>, gw: Gateway) {
    const runner = new JobRunner(gw);
    const prefix = (c: Context<AppEnv>) => (c.req.path.startsWith('/compat/eyeq/') ? '/compat/eyeq' : '');
    const missingKey = (): never => {
      throw eyeqError('invalid_parameter', 400, 'license_key is missing: GET /Authorize/{license_key}.');
    };

    app.get('/Authorize/:license_key', async (c) => {
      c.set('logPath', `${prefix(c)}/Authorize/{license_key}`);
      const secret = c.req.param('license_key').trim();
      if (!secret) missingKey();
      let key: ApiKeyRecord;
      try {
        key = await authenticate(gw, secret);
      } catch (err) {
        if (!(err instanceof GatewayError) || !['invalid_api_key', 'subscription_inactive', 'missing_api_key'].includes(err.code)) throw err;
        const reason = err.code === 'subscription_inactive' ? 'the subscription of this key is not active' : 'license key invalid or revoked';
        const current = (await licensedKey(gw)).key;
        return c.json({
          status: 'Unlicensed',
          message: `License not applied: ${reason}.${current ? ' The container stays licensed to its current key.' : ''}`,
          'licensed org': '',
          'expiration date': '',
        });
      }
      await saveLicence(gw, { fingerprint: key.fingerprint, activatedAt: new Date().toISOString() });
      return c.json({
        status: 'Licensed',
        message: 'License applied. The container is ready to process images.',
        'licensed org': licensedOrg(key),
        'expiration date': expiration().toISOString().slice(0, 7),
      });
    });
    app.get('/Authorize', missingKey);
    app.get('/Authorize/', missingKey);

    app.get('/Status', async (c) => {
      const { key, why } = await licensedKey(gw);
      return c.json({
        status: key ? 'Licensed' : 'Unlicensed',
        message: why,
        model_version: `${gw.engine.defaultModel} (bg-gateway ${gw.config.version})`,
        'licensed org': key ? licensedOrg(key) : '',
        'expiration date': key ? expiration().toISOString().replace(/\.\d{3}Z$/, '+00:00') : '',
      });
    });

    app.post('/SubmitImage', (c) => submit(c, gw, runner));

    app.get('/CheckImage/:id', async (c) => c.json(checkBody(await findJob(c, gw, runner))));

    app.get('/DownloadImage/:id', async (c) => {
      const r = await findJob(c, gw, runner);
      if (r.state === 'queued' || r.state === 'processing') return stillProcessing(c, r);
      if (r.state === 'failed' || !r.result) {
        throw eyeqError('internal_error', 500, `Processing failed: ${r.error?.message ?? 'unknown error'}`);
      }
      const stem = (r.extra as unknown as EyeqFacts).original_name.replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9._-]/g, '_') || 'image';
      return new Response(r.result.bytes, {
        headers: {
          'Content-Type': 'image/png',
          'Content-Length': String(r.result.bytes.byteLength),
          'Content-Disposition': `inline; filename="${stem}_nobg.png"`,
          'X-Request-Id': c.get('requestId'),
        },
      });
    });

    app.delete('/RemoveImage/:id', async (c) => {
      const r = await findJob(c, gw, runner);
      if (!(await runner.delete(r.id, r.owner))) throw eyeqError('not_found', 404, `process_id ${r.id} not found.`);
      return c.json({ status: 'deleted', process_id: r.id, files_deleted: r.state === 'completed' ? 2 : 1, previous_status: r.state === 'queued' ? 'processing' : r.state });
    });

    for (const route of ['CheckImage', 'DownloadImage']) {
      app.get(`/${route}`, missingId);
      app.get(`/${route}/`, missingId);
    }
    app.delete('/RemoveImage', missingId);
    app.delete('/RemoveImage/', missingId);
  },
};
