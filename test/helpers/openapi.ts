// test/helpers/openapi.ts
// Checks real responses against openapi.yaml with openapi-backend (ajv underneath).
import { readFileSync } from 'node:fs';
import { OpenAPIBackend, SetMatchType } from 'openapi-backend';
import { parse } from 'yaml';
import { expect } from 'vitest';

let api: OpenAPIBackend | undefined;

async function backend(): Promise<OpenAPIBackend> {
  if (api) return api;
  const definition = parse(readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8'));
  const created = new OpenAPIBackend({ definition, strict: true, validate: true, quick: false, ajvOpts: { logger: false } });
  await created.init();
  api = created;
  return api;
}

/**
 * Compiled when the test file imports this helper, before its beforeAll starts a server: compiling the whole spec
 * blocks the event loop for ~9 s on a busy machine. In the middle of a test that stall counts against its timeout,
 * and a keep-alive socket the server closes meanwhile (Node's default 5 s idle timeout) is reused unseen by the
 * client, so the next request fails with ECONNRESET/EPIPE.
 */
await backend();

/** Asserts that a JSON response matches the operation's schema for its status. Returns the parsed body. */
export async function expectMatchesSpec(res: Response, operationId: string): Promise<unknown> {
  const b = await backend();
  const text = await res.clone().text();
  const body: unknown = JSON.parse(text);
  const result = b.validator.validateResponse(body, operationId, res.status);
  expect(result.errors ?? [], `${operationId} ${res.status}: ${text.slice(0, 300)}`).toEqual([]);
  const headers = Object.fromEntries(res.headers);
  const headerResult = b.validator.validateResponseHeaders(headers, operationId, { statusCode: res.status, setMatchType: SetMatchType.Superset });
  expect(headerResult.errors ?? []).toEqual([]);
  return body;
}

/** The operation must document this status (and, for binary bodies, the exact content type). */
export async function expectDocumented(res: Response, operationId: string): Promise<void> {
  const b = await backend();
  const op = b.getOperation(operationId);
  expect(op, operationId).toBeTruthy();
  const responses = (op!.responses ?? {}) as Record<string, { content?: Record<string, unknown> }>;
  const entry = responses[String(res.status)];
  expect(entry, `${operationId} documents ${res.status}`).toBeTruthy();
  const type = res.headers.get('content-type') ?? '';
  if (entry && 'content' in entry && entry.content) expect(Object.keys(entry.content)).toContain(type);
}

/**
 * Every route the adapter registers at the root is a documented path and method in openapi.yaml. A bare `/Route`
 * or `/Route/` counts as documented when `/Route/{param}` is (those only answer "parameter missing").
 */
export async function expectRoutesDocumented(app: { routes: { method: string; path: string }[] }): Promise<string[]> {
  const b = await backend();
  // Parameter names may differ between the router and the spec (`:id` vs `{process_id}`): compare shapes only.
  const shape = (p: string) => p.replace(/\{[^}]+\}/g, '{}');
  const paths = new Map(Object.entries((b.definition.paths ?? {}) as Record<string, Record<string, unknown>>).map(([p, ops]) => [shape(p), ops]));
  const documented = (path: string, method: string) => Boolean(paths.get(path)?.[method]);
  const seen: string[] = [];
  for (const route of app.routes) {
    if (route.method === 'ALL') continue;
    const method = route.method.toLowerCase();
    const path = route.path.replace(/:([A-Za-z_]+)/g, '{$1}');
    const bare = shape(path).replace(/\/$/, '');
    expect(documented(shape(path), method) || documented(`${bare}/{}`, method), `${route.method} ${route.path} is in openapi.yaml`).toBe(true);
    seen.push(`${route.method} ${path}`);
  }
  return seen;
}
