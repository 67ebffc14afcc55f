// src/http/env.ts
// Hono's typed context: what middleware leaves for handlers.
import type { ApiKeyRecord } from '../store/types.js';

export interface AppEnv {
  Variables: {
    requestId: string;
    apiKey?: ApiKeyRecord;
    /** Set by the rate limiter; added to every response, errors included. */
    rateLimitHeaders?: Record<string, string>;
    /** The adapter that handled the request (metrics and logs). */
    dialect?: string;
    /** The gateway error code of an error response. */
    errorCode?: string;
    /** Pipeline stage times of a removal, for the access log. */
    timings?: Record<string, number>;
    /** The path to log instead of the real one, when the path carries a secret (EyeQ's /Authorize/{license_key}). */
    logPath?: string;
  };
}
