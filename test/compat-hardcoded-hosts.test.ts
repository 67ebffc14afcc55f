// test/compat-hardcoded-hosts.test.ts
// README's recipe for clients with a hard-coded vendor host, run as written: its openssl commands make the CA and the
// certificate, a TLS proxy routes by the names and paths of its nginx block, and each vendor's documented curl request
// goes to the vendor's own hostname (curl --resolve standing in for DNS, --cacert for the trust store).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alphaOf, decodeRgba, iou, subjectFixture, type Fixture } from './helpers/fixtures.js';
import { startServer, TEST_KEY, type TestServer } from './helpers/server.js';

const run = promisify(execFile);
const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const section = README.slice(README.indexOf('#### Clients with a hard-coded host'));

/** The fenced block of `lang` that follows `marker` in the README section. */
function block(marker: string, lang: string): string {
  const from = section.indexOf(marker);
  expect(from, marker).toBeGreaterThanOrEqual(0);
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(section.slice(from));
  expect(m, `${lang} block after ${marker}`).toBeTruthy();
  return m![1]!.replace(/^ {3}/gm, '');
}

interface Route {
  names: string[];
  /** The path the gateway sees for "/": nginx replaces the location prefix with proxy_pass's URI. */
  prefix: string;
}

/** server_name and proxy_pass of each server block: what the test proxy routes by. */
function nginxRoutes(conf: string): Route[] {
  return conf.split(/^server \{/m).slice(1).map((server) => {
    const names = /server_name ([^;]+);/.exec(server)![1]!.trim().split(/\s+/);
    const pass = /location \/ \{ proxy_pass http:\/\/127\.0\.0\.1:8080(\/[^;]*)?; \}/.exec(server);
    expect(pass, `proxy_pass in the server block for ${names.join(' ')}`).toBeTruthy();
    return { names, prefix: pass![1] ?? '/' };
  });
}

let s: TestServer;
let fx: Fixture;
let dir: string;
let proxy: https.Server;
let port: number;
let routes: Route[];

beforeAll(async () => {
  s = await startServer({ URL_FETCH_ALLOW_HOSTS: '127.0.0.1' });
  fx = await subjectFixture({ width: 320, height: 240 });
  dir = mkdtempSync(path.join(tmpdir(), 'hardcoded-'));
  writeFileSync(path.join(dir, 'image.jpg'), fx.bytes);
  // Step 1, exactly as the README gives it.
  await run('bash', ['-euo', 'pipefail', '-c', block('1. **Your own CA', 'sh')], { cwd: dir });
  routes = nginxRoutes(block('2. **A TLS-terminating proxy', 'nginx'));
  const gateway = new URL(s.url);
  proxy = https.createServer({ key: readFileSync(path.join(dir, 'vendors.key')), cert: readFileSync(path.join(dir, 'vendors.crt')) }, (req, res) => {
    const host = (req.headers.host ?? '').replace(/:\d+$/, '');
    const route = routes.find((r) => r.names.includes(host));
    if (!route) {
      res.writeHead(421).end('no server block for this name');
      return;
    }
    // Streamed both ways, like proxy_request_buffering off.
    const upstream = http.request(
      { host: gateway.hostname, port: gateway.port, method: req.method, path: route.prefix + req.url!.slice(1), headers: { ...req.headers, host: gateway.host } },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  port = (proxy.address() as AddressInfo).port;
  // Picsart's result links must go through the same proxy name.
  s.gw.config = Object.freeze({ ...s.gw.config, PUBLIC_BASE_URL: `https://api.picsart.io:${port}` });
}, 120_000);

afterAll(async () => {
  await new Promise((r) => proxy?.close(r));
  await s?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** curl as the client runs it, with the vendor's name resolved to the proxy and our CA trusted (no -k). */
async function curl(host: string, args: string[]): Promise<{ code: string; headers: string; body: Buffer }> {
  const out = path.join(dir, `out-${Math.random().toString(36).slice(2)}`);
  const headers = `${out}.headers`;
  const { stdout } = await run('curl', ['-sS', '--resolve', `${host}:${port}:127.0.0.1`, '--cacert', path.join(dir, 'ca.pem'), '-w', '%{http_code}', '-D', headers, '-o', out, ...args], { cwd: dir });
  return { code: stdout.trim(), headers: readFileSync(headers, 'utf8').toLowerCase(), body: readFileSync(out) };
}

async function expectCutout(bytes: Buffer) {
  const img = await decodeRgba(bytes);
  expect([img.format, img.width, img.height, img.channels]).toEqual(['png', fx.width, fx.height, 4]);
  expect(iou(alphaOf(img.data), fx.mask)).toBeGreaterThan(0.9);
}

describe("README's routing for clients with a hard-coded host", () => {
  it('the certificate names every vendor host and is issued by the README-made CA', async () => {
    const { stdout } = await run('openssl', ['x509', '-in', path.join(dir, 'vendors.crt'), '-noout', '-ext', 'subjectAltName']);
    for (const name of ['api.remove.bg', 'sdk.photoroom.com', 'image-api.photoroom.com', 'clipdrop-api.co', 'api.slazzer.com', 'api.picsart.io']) expect(stdout).toContain(`DNS:${name}`);
    await run('openssl', ['verify', '-CAfile', path.join(dir, 'ca.pem'), path.join(dir, 'vendors.crt')]);
    // Every name is served by some server block of the nginx example.
    expect(routes.flatMap((r) => r.names).sort()).toEqual(['api.picsart.io', 'api.remove.bg', 'api.slazzer.com', 'clipdrop-api.co', 'image-api.photoroom.com', 'sdk.photoroom.com']);
  });

  it("remove.bg's documented curl to https://api.remove.bg/v1.0/removebg", async () => {
    const r = await curl('api.remove.bg', ['-H', `X-API-Key: ${TEST_KEY}`, '-F', 'image_file=@image.jpg', '-F', 'size=auto', '-f', `https://api.remove.bg:${port}/v1.0/removebg`]);
    expect(r.code).toBe('200');
    expect(r.headers).toContain('content-type: image/png');
    expect(r.headers).toContain('x-credits-charged: 0.25');
    await expectCutout(r.body);
  }, 60_000);

  it("Photoroom's documented curl to sdk.photoroom.com, and the account on image-api.photoroom.com (path prefixed by the proxy)", async () => {
    const r = await curl('sdk.photoroom.com', ['--request', 'POST', '--url', `https://sdk.photoroom.com:${port}/v1/segment`, '--header', 'Accept: image/png, application/json', '--header', `x-api-key: ${TEST_KEY}`, '--form', 'image_file=@image.jpg']);
    expect(r.code).toBe('200');
    expect(r.headers).toMatch(/\r\ncontent-type: image\/png\r\n/);
    expect(r.headers).toMatch(/\r\nx-uncertainty-score: [0-9.]+\r\n/);
    await expectCutout(r.body);
    const account = await curl('image-api.photoroom.com', ['-H', `x-api-key: ${TEST_KEY}`, `https://image-api.photoroom.com:${port}/v2/account`]);
    expect(account.code).toBe('200');
    expect(JSON.parse(account.body.toString())).toEqual({ images: { available: 2_147_483_647, subscription: 2_147_483_647 }, plan: 'basic' });
    const v1 = await curl('image-api.photoroom.com', ['-H', `x-api-key: ${TEST_KEY}`, `https://image-api.photoroom.com:${port}/v1/account`]);
    expect(Object.keys(JSON.parse(v1.body.toString()) as object)).toEqual(['credits']);
  }, 60_000);

  it("Clipdrop's documented curl to https://clipdrop-api.co/remove-background/v1", async () => {
    const r = await curl('clipdrop-api.co', ['-X', 'POST', `https://clipdrop-api.co:${port}/remove-background/v1`, '-H', `x-api-key: ${TEST_KEY}`, '-F', 'image_file=@image.jpg']);
    expect(r.code).toBe('200');
    expect(r.headers).toContain('x-credits-consumed:');
    await expectCutout(r.body);
  }, 60_000);

  it("Slazzer's documented request to https://api.slazzer.com/v2.0/remove_image_background", async () => {
    const r = await curl('api.slazzer.com', ['-H', `API-KEY: ${TEST_KEY}`, '-F', 'source_image_file=@image.jpg', '-f', `https://api.slazzer.com:${port}/v2.0/remove_image_background`]);
    expect(r.code).toBe('200');
    await expectCutout(r.body);
  }, 60_000);

  it("Picsart's documented curl to https://api.picsart.io, and its result link fetched through the same name", async () => {
    const r = await curl('api.picsart.io', ['-X', 'POST', `https://api.picsart.io:${port}/tools/1.0/removebg`, '-H', 'accept: application/json', '-H', `x-picsart-api-key: ${TEST_KEY}`, '-F', 'output_type=cutout', '-F', 'format=PNG', '-F', 'image=@image.jpg']);
    expect(r.code).toBe('200');
    const body = JSON.parse(r.body.toString()) as { status: string; data: { id: string; url: string } };
    expect(body.status).toBe('success');
    expect(body.data.url).toBe(`https://api.picsart.io:${port}/tools/1.0/results/${body.data.id}`);
    const result = await curl('api.picsart.io', [body.data.url]);
    expect(result.code).toBe('200');
    expect((await sharp(result.body).metadata()).format).toBe('png');
    await expectCutout(result.body);
  }, 60_000);

  it('a name the certificate does not cover is refused by curl: the trust really comes from the CA and the names', async () => {
    await expect(curl('api.example.com', [`https://api.example.com:${port}/v1.0/account`])).rejects.toThrow(/certificate|SSL|60/i);
  });
});
