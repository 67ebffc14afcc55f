// src/http/fetch-url.ts
// Server-side fetching of client-supplied URLs (image_url, bg_image_url) without becoming an SSRF proxy.
// Every address a name resolves to is checked, and the socket connects to the checked address itself
// (a lookup hook, not a second DNS query), so a rebinding DNS answer cannot slip a private address in.
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { GatewayError } from '../errors.js';
import { sniffImageType } from '../pipeline/sniff.js';

export interface FetchLimits {
  maxBytes: number;
  totalTimeoutMs: number;
  connectTimeoutMs: number;
  maxRedirects: number;
  /** Hostnames, IPs or CIDRs exempt from the address check (tests fetch from 127.0.0.1). */
  allowHosts: readonly string[];
  userAgent: string;
}

export type ImageFetcher = (url: string, signal?: AbortSignal) => Promise<Uint8Array>;

type Addr = ipaddr.IPv4 | ipaddr.IPv6;

const notAllowed = (why: string) => new GatewayError('url_not_allowed', { message: `The image URL is not allowed: ${why}.` });
const fetchFailed = (why: string, details: Record<string, unknown> = {}) =>
  new GatewayError('url_fetch_failed', { message: `The image URL could not be fetched: ${why}.`, details });

/** The IPv4 address hidden inside mapped, NAT64 and 6to4 IPv6 forms, or the address itself. */
function effectiveAddress(addr: Addr): Addr {
  if (addr.kind() === 'ipv4') return addr;
  const v6 = addr as ipaddr.IPv6;
  const range = v6.range();
  if (range === 'ipv4Mapped') return v6.toIPv4Address();
  const bytes = v6.toByteArray();
  if (range === 'rfc6052' || range === 'rfc6145') return ipaddr.fromByteArray(bytes.slice(12)) as ipaddr.IPv4;
  if (range === '6to4') return ipaddr.fromByteArray(bytes.slice(2, 6)) as ipaddr.IPv4;
  return v6;
}

/** Public unicast only: loopback, private, link-local (cloud metadata), CGNAT, multicast, reserved … are refused. */
export function blockedRange(address: string): string | undefined {
  if (!ipaddr.isValid(address)) return 'unparseable address';
  const addr = effectiveAddress(ipaddr.parse(address));
  const range = addr.range();
  return range === 'unicast' ? undefined : range;
}

function allowMatcher(entries: readonly string[]): { host: (h: string) => boolean; address: (a: string) => boolean } {
  const names = new Set<string>();
  const cidrs: [Addr, number][] = [];
  for (const raw of entries) {
    const entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry.includes('/') && ipaddr.isValidCIDR(entry)) cidrs.push(ipaddr.parseCIDR(entry));
    else if (ipaddr.isValid(entry)) cidrs.push([ipaddr.parse(entry), ipaddr.parse(entry).kind() === 'ipv4' ? 32 : 128]);
    else names.add(entry);
  }
  return {
    host: (h) => names.has(h.toLowerCase()),
    address: (a) => {
      if (!ipaddr.isValid(a)) return false;
      const parsed = effectiveAddress(ipaddr.parse(a));
      return cidrs.some(([net, bits]) => parsed.kind() === net.kind() && parsed.match(net, bits));
    },
  };
}

function checkedLookup(hostAllowed: boolean, addressAllowed: (a: string) => boolean): LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { all: true, family: options.family ?? 0 }, (err, addresses) => {
      if (err) return callback(err, '', 4);
      if (addresses.length === 0) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '', 4);
      if (!hostAllowed) {
        for (const { address } of addresses) {
          const range = addressAllowed(address) ? undefined : blockedRange(address);
          if (range) return callback(notAllowed(`${hostname} resolves to a ${range} address`) as NodeJS.ErrnoException, '', 4);
        }
      }
      if (options.all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, addresses);
      const first = addresses[0]!;
      callback(null, first.address, first.family);
    });
  };
}

function parseUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new GatewayError('invalid_parameter', { message: 'Invalid value for image_url: expected an absolute http or https URL.' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw notAllowed(`only http and https are fetched, not ${url.protocol.replace(':', '')}`);
  return url;
}

interface Hop {
  status: number;
  location?: string;
  body?: Uint8Array;
}

function requestOnce(url: URL, limits: FetchLimits, allow: ReturnType<typeof allowMatcher>, signal: AbortSignal): Promise<Hop> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const hostAllowed = allow.host(host);
  if (!hostAllowed && ipaddr.isValid(host) && !allow.address(host)) {
    const range = blockedRange(host);
    if (range) return Promise.reject(notAllowed(`${host} is a ${range} address`));
  }
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise<Hop>((resolve, reject) => {
    const req = transport.request(url, {
      method: 'GET',
      signal,
      lookup: checkedLookup(hostAllowed, allow.address),
      headers: { 'user-agent': limits.userAgent, accept: 'image/*', 'accept-encoding': 'identity' },
    });
    const connectTimer = setTimeout(() => req.destroy(fetchFailed(`no connection within ${limits.connectTimeoutMs} ms`)), limits.connectTimeoutMs);
    req.on('socket', (socket) => {
      if (!socket.connecting) return clearTimeout(connectTimer);
      socket.once('connect', () => clearTimeout(connectTimer));
    });
    req.on('error', (err) => {
      clearTimeout(connectTimer);
      if (err instanceof GatewayError) return reject(err);
      if (signal.aborted) return reject(signal.reason instanceof GatewayError ? signal.reason : fetchFailed('aborted'));
      reject(fetchFailed((err as NodeJS.ErrnoException).code ?? err.message));
    });
    req.on('response', (res) => {
      clearTimeout(connectTimer);
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        return resolve({ status, location: res.headers.location });
      }
      if (status < 200 || status >= 300) {
        res.resume();
        return reject(fetchFailed(`the server answered ${status}`, { upstream_status: status }));
      }
      const type = String(res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type.startsWith('text/') || type === 'application/json' || type.includes('html')) {
        res.destroy();
        return reject(fetchFailed(`the server sent ${type}, not an image`));
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > limits.maxBytes) {
        res.destroy();
        return reject(new GatewayError('image_too_large', { message: `The image at image_url is larger than ${limits.maxBytes} bytes.` }));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > limits.maxBytes) {
          res.destroy();
          return reject(new GatewayError('image_too_large', { message: `The image at image_url is larger than ${limits.maxBytes} bytes.` }));
        }
        chunks.push(chunk);
      });
      res.on('error', (err) => reject(signal.aborted && signal.reason instanceof GatewayError ? signal.reason : fetchFailed(err.message)));
      res.on('end', () => resolve({ status, body: Buffer.concat(chunks, size) }));
    });
    req.end();
  });
}

export function createImageFetcher(limits: FetchLimits): ImageFetcher {
  const allow = allowMatcher(limits.allowHosts);
  return async (raw, clientSignal) => {
    const deadline = AbortSignal.timeout(limits.totalTimeoutMs);
    const timedOut = fetchFailed(`no complete answer within ${limits.totalTimeoutMs} ms`);
    const controller = new AbortController();
    const onAbort = (reason: unknown) => controller.abort(reason);
    deadline.addEventListener('abort', () => onAbort(timedOut), { once: true });
    clientSignal?.addEventListener('abort', () => onAbort(clientSignal.reason), { once: true });
    if (clientSignal?.aborted) onAbort(clientSignal.reason);
    let url = parseUrl(raw);
    try {
      for (let hop = 0; ; hop++) {
        const answer = await requestOnce(url, limits, allow, controller.signal);
        if (answer.body) {
          if (!sniffImageType(answer.body)) throw fetchFailed('the content is not an image');
          return answer.body;
        }
        if (hop >= limits.maxRedirects) throw fetchFailed(`more than ${limits.maxRedirects} redirects`);
        url = parseUrl(new URL(answer.location!, url).toString());
      }
    } finally {
      controller.abort();
    }
  };
}
