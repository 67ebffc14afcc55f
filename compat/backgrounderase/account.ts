// compat/backgrounderase/account.ts
// GET /v2/account: the seed's exact shape, plus the current period's usage.
import { guardStore, type Gateway } from '../../src/gateway.js';
import { currentPeriod, periodEnd, planFor } from '../../src/plans.js';
import type { ApiKeyRecord } from '../../src/store/types.js';

export async function accountBody(gw: Gateway, key: ApiKeyRecord) {
  const period = currentPeriod();
  const usage = await guardStore(gw.stores.usage.get(key.fingerprint, period), gw.config.STORE_TIMEOUT_MS);
  const plan = planFor(gw.plans, key.plan);
  return {
    status: 'ok',
    api_key: { valid: true, mode: key.mode, fingerprint: key.fingerprint },
    account: {
      email: key.email,
      plan: key.plan,
      subscription_status: key.subscriptionStatus,
      billing_model: key.billingModel,
      usage_unit: key.usageUnit,
    },
    usage: {
      period,
      period_end: periodEnd(period).toISOString(),
      images: usage.images,
      credits: usage.credits,
      bytes_in: usage.bytesIn,
      bytes_out: usage.bytesOut,
      monthly_credits: plan.monthlyCredits,
      credits_remaining: plan.monthlyCredits === null ? null : Math.max(0, plan.monthlyCredits - usage.credits),
    },
  };
}
