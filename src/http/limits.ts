// src/http/limits.ts
// Per-key request rate and monthly credits, checked before any inference is spent.
import { GatewayError } from '../errors.js';
import { guardStore, type Gateway } from '../gateway.js';
import { currentPeriod, periodEnd, planFor } from '../plans.js';
import type { ApiKeyRecord } from '../store/types.js';

export interface RateLimitOutcome {
  headers: Record<string, string>;
}

/** Counts the request; throws `rate_limited` (with Retry-After) when over. Headers go on every response. */
export async function checkRateLimit(gw: Gateway, key: ApiKeyRecord): Promise<RateLimitOutcome> {
  const plan = planFor(gw.plans, key.plan);
  if (plan.rateLimit === null) return { headers: {} };
  const d = await guardStore(gw.stores.rateLimits.hit(`rl:${key.fingerprint}`, plan.rateLimit, plan.rateWindowSeconds * 1000), gw.config.STORE_TIMEOUT_MS);
  const resetSeconds = Math.max(1, Math.ceil((d.resetAt - Date.now()) / 1000));
  const headers = {
    'X-RateLimit-Limit': String(d.limit),
    'X-RateLimit-Remaining': String(d.remaining),
    'X-RateLimit-Reset': String(Math.ceil(d.resetAt / 1000)),
  };
  if (!d.allowed) {
    throw new GatewayError('rate_limited', {
      retryAfter: resetSeconds,
      headers,
      details: { limit: d.limit, window_seconds: plan.rateWindowSeconds },
    });
  }
  return { headers };
}

export interface CreditHold {
  period: string;
  credits: number;
  release(): Promise<void>;
}

/** Reserves the job's credits atomically; synthetic keys are never billed. */
export async function reserveCredits(gw: Gateway, key: ApiKeyRecord, credits: number): Promise<CreditHold> {
  const period = currentPeriod();
  if (key.mode === 'synthetic' || credits === 0) return { period, credits: 0, release: async () => undefined };
  const plan = planFor(gw.plans, key.plan);
  const allowance = plan.monthlyCredits ?? undefined;
  const r = await guardStore(gw.stores.usage.consume(key.fingerprint, period, credits, allowance), gw.config.STORE_TIMEOUT_MS);
  if (!r.ok) {
    throw new GatewayError('insufficient_credits', {
      message: `Not enough credits: ${r.credits} of ${allowance} used this period; this image needs ${credits}.`,
      details: { credits_used: r.credits, monthly_credits: allowance, credits_required: credits, resets_at: periodEnd(period).toISOString() },
    });
  }
  return {
    period,
    credits,
    release: () => gw.stores.usage.refund(key.fingerprint, period, credits).catch(() => undefined),
  };
}
