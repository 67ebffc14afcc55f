// compat/types.ts
// The one interface every dialect implements. Adding a vendor = one adapter folder + its contract tests.
import type { Context, Hono } from 'hono';
import type { GatewayError } from '../src/errors.js';
import type { Gateway } from '../src/gateway.js';
import type { AppEnv } from '../src/http/env.js';
import type { ParsedBody } from '../src/http/body.js';
import type { RemovalJob, RemovalResult } from '../src/job.js';

export interface ParseContext {
  c: Context<AppEnv>;
  body: ParsedBody;
  gw: Gateway;
}

/** One background-removal endpoint of a dialect. */
export interface RemovalRoute {
  method: 'POST' | 'GET';
  path: string;
  /** Maps the vendor's request onto the canonical job; throws GatewayError for bad input. */
  parse(ctx: ParseContext): RemovalJob | Promise<RemovalJob>;
  /** Renders the vendor's success response (raw bytes or vendor JSON). */
  render(result: RemovalResult, job: RemovalJob, c: Context<AppEnv>, gw: Gateway): Response | Promise<Response>;
}

export interface CompatAdapter {
  /** Short name used in /compat/<name>/ and in metrics. */
  readonly name: string;
  readonly routes: readonly RemovalRoute[];
  /** Where this vendor's clients put the key; body keys are read by `readBodyKey`. */
  readApiKey(c: Context<AppEnv>): string | undefined;
  /** Legacy key inside the parsed body, when the vendor allows it. */
  readBodyKey?(body: ParsedBody): string | undefined;
  renderError(err: GatewayError, c: Context<AppEnv>): Response;
  /** Other endpoints (account, balance, job polling); they get the same error rendering. */
  extraRoutes?(app: Hono<AppEnv>, gw: Gateway): void;
  /** Endpoints served only under /compat/<name>/ because their upstream paths collide with another dialect's. */
  prefixedRoutes?(app: Hono<AppEnv>, gw: Gateway): void;
}
