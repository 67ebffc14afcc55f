// src/http/body.ts
// Reads a request body of any shape (multipart, JSON, url-encoded, raw bytes) into fields and files,
// enforcing size limits while the bytes stream in, before anything large is buffered.
import busboy from 'busboy';
import { GatewayError } from '../errors.js';

export interface BodyLimits {
  /** Largest image upload (a file part or raw body). */
  maxUploadBytes: number;
  /** Largest JSON or url-encoded body (base64 images are 4/3 larger than their bytes). */
  maxJsonBytes: number;
  maxParts: number;
  maxFieldBytes: number;
}

export interface UploadedFile {
  bytes: Uint8Array;
  filename?: string;
  contentType?: string;
}

export type BodyKind = 'multipart' | 'json' | 'form' | 'raw' | 'none';

export interface ParsedBody {
  kind: BodyKind;
  /** Text fields, body first then query string; empty strings are dropped (real clients send them for "unset"). */
  fields: Map<string, string>;
  files: Map<string, UploadedFile>;
  /** The JSON object as sent, for fields that are not strings. */
  json?: Record<string, unknown>;
  /** Raw body bytes when the body is not multipart/JSON/form. */
  raw?: UploadedFile;
  bytesIn: number;
}

const noop = () => undefined;

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

export async function parseBody(req: Request, limits: BodyLimits): Promise<ParsedBody> {
  const type = mediaType(req.headers.get('content-type') ?? undefined);
  const declared = Number(req.headers.get('content-length') ?? NaN);
  const url = new URL(req.url);
  let parsed: ParsedBody;
  if (type === 'multipart/form-data') parsed = await parseMultipart(req, limits, declared);
  else if (type === 'application/json' || type.endsWith('+json')) parsed = await parseJson(req, limits, declared);
  else if (type === 'application/x-www-form-urlencoded') parsed = await parseForm(req, limits, declared);
  else parsed = await parseRaw(req, limits, declared, type);
  for (const [k, v] of url.searchParams) if (v !== '' && !parsed.fields.has(k)) parsed.fields.set(k, v);
  return parsed;
}

const tooLarge = (limit: number) =>
  new GatewayError('image_too_large', {
    message: `image too large (>${Math.round(limit / (1024 * 1024))} MB).`,
    details: { max_bytes: limit },
    headers: { Connection: 'close' },
  });

/** Reads the body stream, refusing as soon as `limit` is passed rather than after buffering it all. */
async function readCapped(req: Request, limit: number, error: () => GatewayError): Promise<Uint8Array> {
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw error();
    }
    chunks.push(value);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

async function parseRaw(req: Request, limits: BodyLimits, declared: number, type: string): Promise<ParsedBody> {
  if (declared > limits.maxUploadBytes) throw tooLarge(limits.maxUploadBytes);
  const bytes = await readCapped(req, limits.maxUploadBytes, () => tooLarge(limits.maxUploadBytes));
  const empty = bytes.byteLength === 0;
  return {
    kind: empty ? 'none' : 'raw',
    fields: new Map(),
    files: new Map(),
    ...(empty ? {} : { raw: { bytes, ...(type ? { contentType: type } : {}) } }),
    bytesIn: bytes.byteLength,
  };
}

const bodyTooLarge = (limit: number) =>
  new GatewayError('payload_too_large', {
    message: `Request body too large (>${Math.round(limit / (1024 * 1024))} MB). Upload large images as multipart image_file.`,
    details: { max_bytes: limit },
    headers: { Connection: 'close' },
  });

async function parseJson(req: Request, limits: BodyLimits, declared: number): Promise<ParsedBody> {
  if (declared > limits.maxJsonBytes) throw bodyTooLarge(limits.maxJsonBytes);
  const bytes = await readCapped(req, limits.maxJsonBytes, () => bodyTooLarge(limits.maxJsonBytes));
  if (bytes.byteLength === 0) return { kind: 'none', fields: new Map(), files: new Map(), bytesIn: 0 };
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    throw new GatewayError('invalid_body', { message: 'The JSON body could not be parsed.' });
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new GatewayError('invalid_body', { message: 'The JSON body must be an object.' });
  }
  const json = value as Record<string, unknown>;
  const fields = new Map<string, string>();
  for (const [k, v] of Object.entries(json)) {
    if (typeof v === 'string') {
      if (v !== '') fields.set(k, v);
    } else if (typeof v === 'number' || typeof v === 'boolean') fields.set(k, String(v));
  }
  return { kind: 'json', fields, files: new Map(), json, bytesIn: bytes.byteLength };
}

async function parseForm(req: Request, limits: BodyLimits, declared: number): Promise<ParsedBody> {
  if (declared > limits.maxJsonBytes) throw bodyTooLarge(limits.maxJsonBytes);
  const bytes = await readCapped(req, limits.maxJsonBytes, () => bodyTooLarge(limits.maxJsonBytes));
  const params = new URLSearchParams(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  const fields = new Map<string, string>();
  let count = 0;
  for (const [k, v] of params) {
    if (++count > limits.maxParts) throw new GatewayError('too_many_parts', { details: { max_parts: limits.maxParts } });
    if (v !== '' && !fields.has(k)) fields.set(k, v);
  }
  return { kind: 'form', fields, files: new Map(), bytesIn: bytes.byteLength };
}

/** Multipart overhead allowance on top of the file limit when checking Content-Length up front. */
const MULTIPART_SLACK = 1024 * 1024;

async function parseMultipart(req: Request, limits: BodyLimits, declared: number): Promise<ParsedBody> {
  if (declared > limits.maxUploadBytes + MULTIPART_SLACK + limits.maxParts * limits.maxFieldBytes) throw tooLarge(limits.maxUploadBytes);
  if (!req.body) return { kind: 'none', fields: new Map(), files: new Map(), bytesIn: 0 };
  const headers = Object.fromEntries(req.headers);
  let bb: busboy.Busboy;
  try {
    bb = busboy({
      headers,
      limits: {
        fileSize: limits.maxUploadBytes,
        files: limits.maxParts,
        fields: limits.maxParts,
        parts: limits.maxParts,
        fieldSize: limits.maxFieldBytes,
      },
      defParamCharset: 'utf8',
    });
  } catch {
    throw new GatewayError('invalid_body', { message: 'The multipart body has no boundary.' });
  }
  const fields = new Map<string, string>();
  const files = new Map<string, UploadedFile>();
  let bytesIn = 0;

  const done = new Promise<void>((resolve, reject) => {
    let failed = false;
    const fail = (e: GatewayError) => {
      if (failed) return;
      failed = true;
      reject(e);
    };
    bb.on('file', (name, stream, info) => {
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (c: Buffer) => {
        size += c.length;
        chunks.push(c);
      });
      stream.on('limit', () => fail(tooLarge(limits.maxUploadBytes)));
      // busboy errors the open part's stream when the body ends mid-part; unhandled, that would crash the process.
      stream.on('error', () => fail(new GatewayError('invalid_body', { message: 'The multipart body ended inside a part.' })));
      stream.on('end', () => {
        if (failed || size === 0) return;
        // First part of a name wins; later duplicates are ignored like unknown fields.
        if (!files.has(name)) {
          files.set(name, { bytes: Buffer.concat(chunks, size), ...(info.filename ? { filename: info.filename } : {}), ...(info.mimeType ? { contentType: info.mimeType } : {}) });
        }
      });
    });
    bb.on('field', (name, value, info) => {
      if (info.valueTruncated) return fail(new GatewayError('payload_too_large', { message: `The field ${name} is too long (>${limits.maxFieldBytes} bytes). Send images as image_file.` }));
      if (value !== '' && !fields.has(name)) fields.set(name, value);
    });
    bb.on('partsLimit', () => fail(new GatewayError('too_many_parts', { details: { max_parts: limits.maxParts } })));
    bb.on('filesLimit', () => fail(new GatewayError('too_many_parts', { details: { max_parts: limits.maxParts } })));
    bb.on('fieldsLimit', () => fail(new GatewayError('too_many_parts', { details: { max_parts: limits.maxParts } })));
    bb.on('error', () => fail(new GatewayError('invalid_body', { message: 'The multipart body is malformed.' })));
    bb.on('close', () => resolve());
  });
  done.catch(() => undefined);

  const reader = req.body.getReader();
  let stop = false;
  done.catch(() => (stop = true));
  try {
    for (;;) {
      const { done: end, value } = await reader.read();
      if (end) break;
      bytesIn += value.byteLength;
      if (stop) break;
      if (!bb.write(value)) await Promise.race([new Promise<void>((r) => bb.once('drain', r)), done.then(noop, noop)]);
    }
  } finally {
    if (stop) await reader.cancel().catch(() => undefined);
  }
  if (stop) bb.destroy();
  else bb.end();
  await done;
  return { kind: 'multipart', fields, files, bytesIn };
}
