// src/errors.ts
// One error class thrown anywhere, and the one catalogue of codes it can carry.
// Dialects render these in their own shapes; the native shape is {"error":{code,message,status,request_id,details}}.

/** The stage a failure came from, so logs and metrics can group by it. */
export type ErrorCategory = 'request' | 'auth' | 'limit' | 'input' | 'fetch' | 'queue' | 'inference' | 'store' | 'internal';

interface CatalogueEntry {
  status: number;
  category: ErrorCategory;
  message: string;
}

export const ERROR_CATALOGUE = {
  missing_api_key: { status: 401, category: 'auth', message: 'API key missing. Send it in the x-api-key header.' },
  invalid_api_key: { status: 401, category: 'auth', message: 'API key invalid or revoked.' },
  subscription_inactive: { status: 403, category: 'auth', message: 'The subscription for this API key is not active.' },
  forbidden: { status: 403, category: 'auth', message: 'This API key may not use this endpoint.' },
  insufficient_credits: { status: 402, category: 'limit', message: 'Not enough credits left this period.' },
  rate_limited: { status: 429, category: 'limit', message: 'Rate limit exceeded. Retry after the time in Retry-After.' },

  missing_image: { status: 400, category: 'input', message: 'No image given. Send image_file, image_url or image_base64.' },
  multiple_images: { status: 400, category: 'input', message: 'Send exactly one image source.' },
  invalid_parameter: { status: 400, category: 'input', message: 'Invalid parameter.' },
  invalid_body: { status: 400, category: 'request', message: 'The request body could not be parsed.' },
  invalid_image: { status: 400, category: 'input', message: 'The image could not be decoded.' },
  unsupported_media_type: { status: 415, category: 'input', message: 'Unsupported media type.' },
  image_too_large: { status: 413, category: 'input', message: 'image too large (>30 MB).' },
  payload_too_large: { status: 413, category: 'request', message: 'Request body too large.' },
  too_many_parts: { status: 413, category: 'request', message: 'Too many parts in the multipart body.' },
  url_not_allowed: { status: 400, category: 'fetch', message: 'The image URL is not allowed.' },
  url_fetch_failed: { status: 400, category: 'fetch', message: 'The image URL could not be fetched.' },
  not_found: { status: 404, category: 'request', message: 'Not found.' },
  job_not_ready: { status: 409, category: 'request', message: 'The job has not finished yet.' },
  method_not_allowed: { status: 405, category: 'request', message: 'Method not allowed.' },

  overloaded: { status: 503, category: 'queue', message: 'The server is busy. Retry after the time in Retry-After.' },
  shutting_down: { status: 503, category: 'queue', message: 'The server is shutting down. Retry on another instance.' },
  timeout: { status: 504, category: 'queue', message: 'Processing took longer than the request deadline.' },
  store_unavailable: { status: 503, category: 'store', message: 'State store unavailable. Retry shortly.' },
  model_unavailable: { status: 503, category: 'inference', message: 'The model is not loaded.' },
  inference_failed: { status: 500, category: 'inference', message: 'Inference failed.' },
  // nginx's 499: nobody reads it, but metrics and logs must not count a vanished client as a server fault.
  client_closed: { status: 499, category: 'request', message: 'The client closed the connection before the response.' },
  internal_error: { status: 500, category: 'internal', message: 'Internal server error.' },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface GatewayErrorOptions {
  message?: string;
  details?: Record<string, unknown>;
  /** Seconds; rendered as Retry-After by every dialect. */
  retryAfter?: number;
  headers?: Record<string, string>;
  cause?: unknown;
}

export class GatewayError extends Error {
  override name = 'GatewayError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly category: ErrorCategory;
  readonly details: Record<string, unknown>;
  readonly retryAfter: number | undefined;
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, options: GatewayErrorOptions = {}) {
    const entry: CatalogueEntry = ERROR_CATALOGUE[code];
    super(options.message ?? entry.message, { cause: options.cause });
    this.code = code;
    this.status = entry.status;
    this.category = entry.category;
    this.details = options.details ?? {};
    this.retryAfter = options.retryAfter;
    this.headers = options.headers ?? {};
  }
}

export function invalidParameter(field: string, allowed: string, received?: unknown): GatewayError {
  const got = received === undefined ? '' : ` but received ${JSON.stringify(String(received)).slice(0, 80)}`;
  return new GatewayError('invalid_parameter', {
    message: `Invalid value for ${field}: expected ${allowed}${got}.`,
    details: { field, allowed },
  });
}

/** Anything thrown that is not a GatewayError becomes an opaque 500: internal messages never reach clients. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (isAbortError(err)) return new GatewayError('timeout', { cause: err });
  // Node's IncomingMessage errors with "aborted"/ECONNRESET when the client hangs up mid-body.
  if (err instanceof Error && (err.message === 'aborted' || (err as NodeJS.ErrnoException).code === 'ECONNRESET')) return new GatewayError('client_closed', { cause: err });
  return new GatewayError('internal_error', { cause: err });
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError');
}
