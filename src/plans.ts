// src/plans.ts
// Plans give each key a monthly credit allowance and a request rate. PLANS (JSON) overrides or adds to these.
import { z } from 'zod';
import { ConfigError } from './config.js';

const planSchema = z.object({
  /** Credits per calendar month (UTC); null = unlimited. */
  monthlyCredits: z.number().min(0).nullable().default(null),
  /** Requests per window; null = no limit. */
  rateLimit: z.number().int().min(1).nullable().default(500),
  rateWindowSeconds: z.number().int().min(1).default(60),
});
export type Plan = z.infer<typeof planSchema>;

export const DEFAULT_PLANS: Record<string, Plan> = {
  Free: { monthlyCredits: 50, rateLimit: 60, rateWindowSeconds: 60 },
  Business: { monthlyCredits: null, rateLimit: 500, rateWindowSeconds: 60 },
  Unlimited: { monthlyCredits: null, rateLimit: null, rateWindowSeconds: 60 },
};

export function loadPlans(json: string | undefined): Record<string, Plan> {
  if (!json) return DEFAULT_PLANS;
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new ConfigError('invalid configuration:\n  PLANS: not valid JSON');
  }
  const parsed = z.record(z.string(), planSchema).safeParse(raw);
  if (!parsed.success) throw new ConfigError(`invalid configuration:\n  PLANS: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return { ...DEFAULT_PLANS, ...parsed.data };
}

export function planFor(plans: Record<string, Plan>, name: string): Plan {
  return plans[name] ?? plans.Business ?? { monthlyCredits: null, rateLimit: 500, rateWindowSeconds: 60 };
}

/** Usage periods are calendar months in UTC: "2026-12". */
export function currentPeriod(now = new Date()): string {
  return now.toISOString().slice(0, 7);
}

export function periodEnd(period: string): Date {
  const [y, m] = period.split('-').map(Number);
  return new Date(Date.UTC(y!, m!, 1));
}
