// test/billing.test.ts
// Credits, usage, rate limits and the mask cache over real HTTP, with the memory store and with real Redis:
// 1 credit per image (0.25 for size=preview), bytes and images recorded, /v2/account shows them, a spent allowance
// is refused with 402 before inference, synthetic keys are never billed, X-RateLimit-* on every /v2 response,
// 429 with Retry-After, and a retried identical request runs no inference.
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyRecord } from '../src/keys.js';
import { subjectFixture, type Fixture } from './helpers/fixtures.js';
import { startServer, type TestServer } from './helpers/server.js';
import { deletePrefix, REDIS_URL, uniquePrefix } from './store/harness.js';

const PLANS = JSON.stringify({
  Metered: { monthlyCredits: null, rateLimit: 1000 },
  Tiny: { monthlyCredits: 1.25, rateLimit: 1000 },
  Zero: { monthlyCredits: 0, rateLimit: 1000 },
  Limited: { monthlyCredits: null, rateLimit: 3, rateWindowSeconds: 60 },
});

let fx: Fixture;
let seq = 0;
/** A distinct small image per call, so the mask cache never explains a missing inference. */
async function freshImage(): Promise<Buffer> {
  const n = seq++;
  return sharp(fx.bytes).modulate({ brightness: 1 + (n % 20) / 100 }).rotate(n % 2 ? 180 : 0).jpeg({ quality: 80 + (n % 10) }).toBuffer();
}

beforeAll(async () => {
  fx = await subjectFixture({ width: 96, height: 72 });
});

interface Account {
  api_key: { fingerprint: string; mode: string };
  usage: { period: string; images: number; credits: number; bytes_in: number; bytes_out: number; monthly_credits: number | null; credits_remaining: number | null };
}

for (const kind of ['memory', 'redis'] as const) {
  describe(`billing and limits (${kind} store)`, () => {
    let s: TestServer;
    const prefix = uniquePrefix('billing');
    const secrets: Record<string, string> = {};
    let keyN = 0;
    async function key(plan: string, mode: 'live' | 'synthetic' = 'live'): Promise<Record<string, string>> {
      const secret = `bge_${mode === 'live' ? 'live' : 'test'}_${kind}_${plan}_${keyN++}_${prefix.replace(/\W/g, '')}`;
      await s.gw.stores.keys.add(keyRecord(secret, { plan, mode }, { plan: 'Business' }));
      secrets[plan] = secret;
      return { 'x-api-key': secret };
    }
    const post = (h: Record<string, string>, bytes: Uint8Array, query = '') =>
      fetch(`${s.url}/v2${query}`, { method: 'POST', headers: { ...h, 'content-type': 'image/jpeg' }, body: bytes });
    const account = async (h: Record<string, string>) => (await (await fetch(`${s.url}/v2/account`, { headers: h })).json()) as Account;

    beforeAll(async () => {
      s = await startServer({ PLANS, ...(kind === 'redis' ? { REDIS_URL, REDIS_KEY_PREFIX: prefix, STORE_TIMEOUT_MS: '2000' } : {}) });
      expect(s.gw.stores.kind).toBe(kind);
    });
    afterAll(async () => {
      await s?.close();
      if (kind === 'redis') await deletePrefix(REDIS_URL, prefix);
    });

    it('a full-size result costs 1 credit, a preview 0.25; images and bytes in/out are recorded; /v2/account shows the period', async () => {
      const h = await key('Metered');
      const img1 = await freshImage();
      const r1 = await post(h, img1);
      expect(r1.status).toBe(200);
      expect(r1.headers.get('x-credits-charged')).toBe('1');
      const out1 = (await r1.arrayBuffer()).byteLength;
      const img2 = await freshImage();
      const r2 = await post(h, img2, '?size=preview');
      expect(r2.status).toBe(200);
      expect(r2.headers.get('x-credits-charged')).toBe('0.25');
      const out2 = (await r2.arrayBuffer()).byteLength;
      const a = await account(h);
      expect(a.usage).toMatchObject({
        period: new Date().toISOString().slice(0, 7),
        images: 2,
        credits: 1.25,
        bytes_in: img1.length + img2.length,
        bytes_out: out1 + out2,
        monthly_credits: null,
        credits_remaining: null,
      });
      // A refused request is not billed.
      expect((await post(h, Buffer.from('not an image'))).status).toBe(400);
      expect((await account(h)).usage).toMatchObject({ images: 2, credits: 1.25 });
    });

    it('a spent allowance is refused with 402 insufficient_credits before any inference runs', async () => {
      const h = await key('Tiny');
      expect((await post(h, await freshImage())).status).toBe(200); // 1
      expect((await post(h, await freshImage(), '?size=preview')).status).toBe(200); // 1.25: exactly the allowance
      const runs = s.gw.engine.runs;
      const refused = await post(h, await freshImage(), '?size=preview');
      expect(refused.status).toBe(402);
      const body = (await refused.json()) as { error: { code: string; details: Record<string, unknown>; request_id: string } };
      expect(body.error.code).toBe('insufficient_credits');
      expect(body.error.details).toMatchObject({ credits_used: 1.25, monthly_credits: 1.25, credits_required: 0.25 });
      expect(body.error.request_id).toMatch(/^req_/);
      expect(refused.headers.get('x-ratelimit-limit')).toBe('1000');
      expect(s.gw.engine.runs).toBe(runs);
      const a = await account(h);
      expect(a.usage).toMatchObject({ images: 2, credits: 1.25, monthly_credits: 1.25, credits_remaining: 0 });
    });

    it('a job that fails in the pipeline gets its reserved credit back', async () => {
      const h = await key('Tiny');
      // Parsing does not decode, so an undecodable upload passes admission and the credit reservation and then
      // fails in the pipeline: without the refund the period would show 1 credit.
      const res = await post(h, Buffer.from('definitely not a jpeg'));
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toMatch(/invalid_image|unsupported_media_type/);
      expect((await account(h)).usage).toMatchObject({ credits: 0, images: 0 });
      // And the whole allowance is still there.
      expect((await post(h, await freshImage())).status).toBe(200);
      expect((await account(h)).usage.credits).toBe(1);
    });

    it('synthetic keys are never billed, even on a plan with no credits', async () => {
      const h = await key('Zero', 'synthetic');
      for (let i = 0; i < 2; i++) {
        const res = await post(h, await freshImage());
        expect(res.status).toBe(200);
        expect(res.headers.get('x-credits-charged')).toBe('0');
      }
      const a = await account(h);
      expect(a.api_key.mode).toBe('synthetic');
      expect(a.usage).toMatchObject({ images: 0, credits: 0, bytes_in: 0, bytes_out: 0 });
      // The same plan on a live key is refused at once.
      const live = await key('Zero');
      expect((await post(live, await freshImage())).status).toBe(402);
    });

    it('X-RateLimit-* on every /v2 response (successes and errors), then 429 rate_limited with Retry-After', async () => {
      const h = await key('Limited');
      const responses = [
        await post(h, await freshImage()), // 200
        await post(h, Buffer.from('garbage')), // 400
        await fetch(`${s.url}/v2/account`, { headers: h }), // 200
      ];
      expect(responses.map((r) => r.status)).toEqual([200, 400, 200]);
      expect(responses.map((r) => r.headers.get('x-ratelimit-remaining'))).toEqual(['2', '1', '0']);
      for (const r of responses) {
        expect(r.headers.get('x-ratelimit-limit')).toBe('3');
        expect(Number(r.headers.get('x-ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000);
        expect(Number(r.headers.get('x-ratelimit-reset'))).toBeLessThanOrEqual(Date.now() / 1000 + 61);
      }
      const runs = s.gw.engine.runs;
      const limited = await post(h, await freshImage());
      expect(limited.status).toBe(429);
      expect(((await limited.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
      const retryAfter = Number(limited.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(limited.headers.get('x-ratelimit-limit')).toBe('3');
      expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
      expect(s.gw.engine.runs).toBe(runs);
      // Another key is not affected.
      expect((await fetch(`${s.url}/v2/account`, { headers: await key('Metered') })).status).toBe(200);
    });

    it('a retried identical request runs no inference (mask cache), and is still billed', async () => {
      const h = await key('Metered');
      const img = await freshImage();
      const before = s.gw.engine.runs;
      const first = await post(h, img);
      expect(first.status).toBe(200);
      const firstBytes = Buffer.from(await first.arrayBuffer());
      expect(s.gw.engine.runs).toBe(before + 1);
      const retry = await post(h, img);
      expect(retry.status).toBe(200);
      expect(Buffer.from(await retry.arrayBuffer()).equals(firstBytes)).toBe(true);
      // Another output option on the same upload reuses the mask too.
      expect((await post(h, img, '?format=webp&size=preview')).status).toBe(200);
      expect(s.gw.engine.runs).toBe(before + 1);
      expect((await account(h)).usage).toMatchObject({ images: 3, credits: 2.25 });
    });
  });
}
