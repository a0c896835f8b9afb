import type { EntitlementState } from '../../src/domain/entitlement.js';
import { NEVER_EXPIRES, type ExpiryPolicy } from '../../src/domain/policy.js';

/** Builders for the domain's unit tests. */
export function policy(over: Partial<ExpiryPolicy> = {}): ExpiryPolicy {
  return { ...NEVER_EXPIRES, ...over };
}

export function state(over: Partial<EntitlementState> = {}): EntitlementState {
  return {
    tenantId: 't1',
    entitlementId: 'e1',
    memberId: 'm1',
    version: 1,
    status: 'ACTIVE',
    remaining: 10,
    policy: policy({ anchor: 'PURCHASE', durationDays: 30 }),
    timeZone: 'Europe/London',
    purchaseTime: new Date('2025-03-01T10:00:00Z'),
    frozenDays: 0,
    ...over,
  };
}
