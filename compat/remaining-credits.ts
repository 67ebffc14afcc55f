// compat/remaining-credits.ts
// A key's credit balance as vendors report it (Photoroom's account endpoints, Clipdrop's x-remaining-credits).
import { guardStore, type Gateway } from '../src/gateway.js';
import { currentPeriod, planFor } from '../src/plans.js';
import type { ApiKeyRecord } from '../src/store/types.js';

/**
 * Vendors report a number, never "unlimited". Keys without an allowance (unlimited plans, synthetic keys) report
 * 2^31−1, which every int32 decoder accepts and no `remaining > 0` check trips over.
 */
export const UNLIMITED_CREDITS = 2_147_483_647;

export interface CreditBalance {
  /** The plan's monthly allowance. */
  allowance: number;
  /** Allowance minus this month's credits, never below 0. */
  remaining: number;
  limited: boolean;
}

export async function creditBalance(gw: Gateway, key: ApiKeyRecord): Promise<CreditBalance> {
  const plan = planFor(gw.plans, key.plan);
  if (key.mode === 'synthetic' || plan.monthlyCredits === null) return { allowance: UNLIMITED_CREDITS, remaining: UNLIMITED_CREDITS, limited: false };
  const usage = await guardStore(gw.stores.usage.get(key.fingerprint, currentPeriod()), gw.config.STORE_TIMEOUT_MS);
  return { allowance: plan.monthlyCredits, remaining: Math.max(0, plan.monthlyCredits - usage.credits), limited: true };
}
