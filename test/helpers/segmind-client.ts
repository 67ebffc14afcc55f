// test/helpers/segmind-client.ts
// The Segmind Python SDK's calls (segmind>=1.1.0) redone in Node, so the seed's Python example can run here where
// PyPI is out of reach. Written from the SDK's documented behaviour, not copied: the same requests, headers and
// decisions (submit must return request_id/status_url/response_url; a body announcing COMPLETED or FAILED is read
// whatever the HTTP status, since FAILED comes as 422; anything else non-2xx/3xx raises with the body's `error`).

export class SegmindError extends Error {
  constructor(
    readonly status: number | undefined,
    readonly detail: string | undefined,
  ) {
    super(`SegmindError status=${status} detail=${detail}`);
  }
}

export class InferenceFailed extends SegmindError {
  constructor(
    detail: string | undefined,
    readonly statusBody: Record<string, unknown>,
  ) {
    super(undefined, detail);
  }
}

export class InferenceTimeout extends SegmindError {
  constructor(readonly requestId: string) {
    super(undefined, `v2 request ${requestId} did not complete in time`);
  }
}

type Params = Record<string, unknown>;

export class SegmindClient {
  readonly baseUrl: string;
  private readonly headers: Record<string, string>;

  /** `baseUrl` defaults to Segmind's `https://api.segmind.com/v1`; the key to SEGMIND_API_KEY, as in the SDK. */
  constructor(opts: { apiKey?: string; baseUrl?: string } = {}) {
    this.baseUrl = (opts.baseUrl ?? 'https://api.segmind.com/v1').replace(/\/+$/, '');
    const key = opts.apiKey ?? process.env.SEGMIND_API_KEY;
    this.headers = { 'User-Agent': 'segmind-python-sdk/1.1.0', 'X-Initiator': 'SDK-PY', ...(key ? { 'x-api-key': key } : {}) };
  }

  private async request(method: string, url: string, json?: Params): Promise<Response> {
    return fetch(url, {
      method,
      headers: { ...this.headers, ...(json ? { 'content-type': 'application/json' } : {}) },
      ...(json ? { body: JSON.stringify(json) } : {}),
    });
  }

  private static async raiseForStatus(res: Response): Promise<void> {
    if (res.status >= 200 && res.status < 400) return;
    const body = (await res.json().catch(() => ({}))) as { error?: string };
    throw new SegmindError(res.status, typeof body === 'object' && body ? body.error : undefined);
  }

  /** v2's base: the base URL with its trailing /vN swapped for /v2 (so a proxy prefix is kept). */
  private get v2Base(): string {
    const last = this.baseUrl.slice(this.baseUrl.lastIndexOf('/') + 1);
    return `${last.startsWith('v') ? this.baseUrl.slice(0, this.baseUrl.lastIndexOf('/')) : this.baseUrl}/v2`;
  }

  /** Sync v1: POST {base}/{slug} with the params as JSON; the raw response. */
  async run(slug: string, params: Params): Promise<Response> {
    const res = await this.request('POST', `${this.baseUrl}/${slug}`, params);
    await SegmindClient.raiseForStatus(res.clone());
    return res;
  }

  async submitAsync(slug: string, params: Params): Promise<AsyncJob> {
    const res = await this.request('POST', `${this.v2Base}/${slug.replace(/^\/+/, '')}`, params);
    await SegmindClient.raiseForStatus(res.clone());
    const body = (await res.json()) as Record<string, unknown>;
    const { request_id, status_url, response_url } = body as Record<string, string | undefined>;
    if (!request_id || !status_url || !response_url) {
      throw new SegmindError(res.status, `v2 submit returned 2xx but is missing request_id / status_url / response_url; got keys=${Object.keys(body).sort()}`);
    }
    return new AsyncJob(this, request_id, status_url, response_url, body);
  }

  /** segmind.run() of the seed (v2): submit, then wait with the defaults (600 s, 1 s). */
  async runAsync(slug: string, params: Params): Promise<Record<string, unknown>> {
    return (await this.submitAsync(slug, params)).wait();
  }

  /** GET a status or result URL; a body that names a terminal state is the answer whatever the HTTP status. */
  async fetchTerminalTolerant(url: string): Promise<Record<string, unknown>> {
    const res = await this.request('GET', url);
    const body = (await res
      .clone()
      .json()
      .catch(() => ({}))) as Record<string, unknown>;
    if (body && typeof body === 'object' && (body.status === 'COMPLETED' || body.status === 'FAILED')) return body;
    if (res.ok) return body;
    await SegmindClient.raiseForStatus(res);
    return body;
  }
}

export class AsyncJob {
  constructor(
    private readonly client: SegmindClient,
    readonly requestId: string,
    readonly statusUrl: string,
    readonly responseUrl: string,
    readonly submitResponse: Record<string, unknown>,
  ) {}

  status(): Promise<Record<string, unknown>> {
    return this.client.fetchTerminalTolerant(this.statusUrl);
  }

  result(): Promise<Record<string, unknown>> {
    return this.client.fetchTerminalTolerant(this.responseUrl);
  }

  /** Polls status every `interval` s until COMPLETED (→ the result body) or FAILED (→ InferenceFailed). */
  async wait(opts: { timeout?: number; interval?: number } = {}): Promise<Record<string, unknown>> {
    const timeout = opts.timeout ?? 600;
    const interval = opts.interval ?? 1.0;
    const deadline = performance.now() + timeout * 1000;
    for (;;) {
      const body = await this.status();
      if (body.status === 'COMPLETED') return this.result();
      if (body.status === 'FAILED') throw new InferenceFailed(typeof body.error === 'string' ? body.error : undefined, body);
      if (performance.now() >= deadline) throw new InferenceTimeout(this.requestId);
      await new Promise((r) => setTimeout(r, interval * 1000));
    }
  }
}
