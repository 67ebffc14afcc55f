// test/fetch-url.test.ts
// The URL fetcher refuses every non-public address, re-checks redirects and bounds size and time, against real loopback servers.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../src/errors.js';
import { blockedRange, createImageFetcher, type FetchLimits } from '../src/http/fetch-url.js';
import { subjectFixture } from './helpers/fixtures.js';

const limits: FetchLimits = { maxBytes: 200_000, totalTimeoutMs: 1500, connectTimeoutMs: 1000, maxRedirects: 5, allowHosts: [], userAgent: 'test' };
let server: http.Server;
let base = '';
let image: Buffer;

async function failure(p: Promise<unknown>): Promise<GatewayError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  return err as GatewayError;
}

beforeAll(async () => {
  image = (await subjectFixture({ width: 160, height: 120 })).bytes;
  server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    switch (url.pathname) {
      case '/image.jpg':
        return res.writeHead(200, { 'content-type': 'image/jpeg' }).end(image);
      case '/to-metadata':
        return res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
      case '/to-image':
        return res.writeHead(301, { location: '/image.jpg' }).end();
      case '/loop':
        return res.writeHead(302, { location: '/loop' }).end();
      case '/big-declared':
        return res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': String(limits.maxBytes + 1) }).end();
      case '/big-chunked': {
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        const chunk = Buffer.alloc(64 * 1024, 1);
        let sent = 0;
        const pump = () => {
          while (sent < limits.maxBytes * 3) {
            sent += chunk.length;
            if (!res.write(chunk)) return res.once('drain', pump);
          }
          res.end();
        };
        return pump();
      }
      case '/slow': {
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        res.write(image.subarray(0, 100));
        const timer = setInterval(() => res.write(Buffer.alloc(1)), 200);
        res.on('close', () => clearInterval(timer));
        return;
      }
      case '/html':
        return res.writeHead(200, { 'content-type': 'text/html' }).end('<html>nope</html>');
      case '/not-image':
        return res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(Buffer.alloc(500, 7));
      case '/missing':
        return res.writeHead(404).end();
      default:
        return res.writeHead(500).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => {
  server.closeAllConnections();
  server.close();
});

describe('address checks', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.1.2.3', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.5.5', 'private'],
    ['192.168.0.10', 'private'],
    ['169.254.169.254', 'linkLocal'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['100.100.100.200', 'carrierGradeNat'],
    ['224.0.0.251', 'multicast'],
    ['0.0.0.0', 'unspecified'],
    ['255.255.255.255', 'broadcast'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'linkLocal'],
    ['fd00:ec2::254', 'uniqueLocal'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:169.254.169.254', 'linkLocal'],
    ['64:ff9b::a9fe:a9fe', 'linkLocal'],
    ['2002:0a00:0001::', 'private'],
  ])('%s is refused as %s', async (address, range) => {
    expect(blockedRange(address)).toBe(range);
    const host = address.includes(':') ? `[${address}]` : address;
    const err = await failure(createImageFetcher(limits)(`http://${host}/x.jpg`));
    expect(err.code).toBe('url_not_allowed');
  });

  it('public unicast addresses pass, also in mapped form', () => {
    expect(blockedRange('8.8.8.8')).toBeUndefined();
    expect(blockedRange('::ffff:8.8.8.8')).toBeUndefined();
    expect(blockedRange('2606:4700:4700::1111')).toBeUndefined();
  });

  it('a name resolving to loopback is refused at connect time', async () => {
    const port = (server.address() as AddressInfo).port;
    const err = await failure(createImageFetcher(limits)(`http://localhost:${port}/image.jpg`));
    expect(err.code).toBe('url_not_allowed');
    expect(err.message).toContain('localhost');
  });

  it('only http and https', async () => {
    for (const url of ['file:///etc/passwd', 'ftp://example.com/a.jpg', 'gopher://x/']) {
      expect((await failure(createImageFetcher(limits)(url))).code).toBe('url_not_allowed');
    }
    expect((await failure(createImageFetcher(limits)('not a url'))).code).toBe('invalid_parameter');
  });
});

describe('fetching from an allowed host', () => {
  const fetchAllowed = createImageFetcher({ ...limits, allowHosts: ['127.0.0.1'] });

  it('returns the image bytes, following a same-host redirect', async () => {
    expect(Buffer.from(await fetchAllowed(`${base}/image.jpg`)).equals(image)).toBe(true);
    expect(Buffer.from(await fetchAllowed(`${base}/to-image`)).equals(image)).toBe(true);
  });

  it('re-checks the redirect target: a redirect to the metadata address is refused', async () => {
    const err = await failure(fetchAllowed(`${base}/to-metadata`));
    expect(err.code).toBe('url_not_allowed');
  });

  it('stops after 5 redirects', async () => {
    const err = await failure(fetchAllowed(`${base}/loop`));
    expect(err.code).toBe('url_fetch_failed');
    expect(err.message).toContain('redirects');
  });

  it('refuses an oversized body, declared or streamed', async () => {
    expect((await failure(fetchAllowed(`${base}/big-declared`))).code).toBe('image_too_large');
    expect((await failure(fetchAllowed(`${base}/big-chunked`))).code).toBe('image_too_large');
  });

  it('gives up on a slow body at the total timeout', async () => {
    const started = Date.now();
    const err = await failure(fetchAllowed(`${base}/slow`));
    expect(err.code).toBe('url_fetch_failed');
    expect(err.message).toContain('1500 ms');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('rejects non-image content and error statuses', async () => {
    expect((await failure(fetchAllowed(`${base}/html`))).message).toContain('text/html');
    expect((await failure(fetchAllowed(`${base}/not-image`))).message).toContain('not an image');
    const missing = await failure(fetchAllowed(`${base}/missing`));
    expect(missing.code).toBe('url_fetch_failed');
    expect(missing.details).toEqual({ upstream_status: 404 });
  });

  it('a client abort stops the fetch', async () => {
    const controller = new AbortController();
    const pending = fetchAllowed(`${base}/slow`, controller.signal);
    setTimeout(() => controller.abort(new GatewayError('timeout')), 100);
    const err = await failure(pending);
    expect(err.code).toBe('timeout');
  });
});
