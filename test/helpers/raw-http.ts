// test/helpers/raw-http.ts
// Requests built byte by byte with node:http, the way minimal clients send them: a hand-written multipart body,
// no User-Agent, and (optionally) chunked transfer encoding instead of Content-Length.
import { request } from 'node:http';

export type Part = { name: string; value: string } | { name: string; filename: string; contentType: string; bytes: Uint8Array };

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export function multipartBody(parts: Part[], boundary = `--------------------------${Date.now().toString(16)}`): { boundary: string; chunks: Buffer[] } {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    if ('bytes' in p) {
      chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"; filename="${p.filename}"\r\nContent-Type: ${p.contentType}\r\n\r\n`));
      chunks.push(Buffer.from(p.bytes), Buffer.from('\r\n'));
    } else {
      chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"\r\n\r\n${p.value}\r\n`));
    }
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { boundary, chunks };
}

/** POSTs a multipart body; `chunked` writes it in pieces with no Content-Length. No User-Agent is sent. */
export function rawMultipart(base: string, path: string, headers: Record<string, string>, parts: Part[], chunked = true): Promise<RawResponse> {
  const { boundary, chunks } = multipartBody(parts);
  const all = Buffer.concat(chunks);
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        hostname: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method: 'POST',
        headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}`, ...(chunked ? {} : { 'Content-Length': String(all.byteLength) }), ...headers },
      },
      (res) => {
        const body: Buffer[] = [];
        res.on('data', (c: Buffer) => body.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(body) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (chunked) {
      // Several small writes, as a piped file stream produces them.
      for (const c of chunks) for (let i = 0; i < c.byteLength; i += 4096) req.write(c.subarray(i, i + 4096));
      req.end();
    } else req.end(all);
  });
}
