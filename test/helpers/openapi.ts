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
