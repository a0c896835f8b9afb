import type { Entitlement, ExpiryTerms, TenantFacts, Terms } from '../../src/domain/types.js';
import { purchase } from '../../src/domain/lifecycle.js';

export const SGT = 'Asia/Singapore';

export function expiryTerms(overrides: Partial<ExpiryTerms> = {}): ExpiryTerms {
  return {
    anchor: 'PURCHASE',
    durationDays: 30,
    durationMonths: 0,
    fixedDate: '',
    mode: 'HARD',
    graceDays: 0,
    rollingExtensionDays: 0,
    maxFreezeDays: 0,
    freezeExtendsExpiry: false,
    customRule: false,
    ...overrides,
  };
}

export function terms(overrides: Partial<Omit<Terms, 'expiry'>> & { expiry?: Partial<ExpiryTerms> } = {}): Terms {
  const { expiry, ...rest } = overrides;
  return {
    serviceCodes: ['PHYSIO'],
    allBranches: false,
    branchIds: [],
    redemptionPriority: 0,
    sessionOrder: 'PAID_FIRST',
    ...rest,
    expiry: expiryTerms(expiry),
  };
}

let counter = 0;

export function entitlement(
  overrides: Partial<Omit<Entitlement, 'terms'>> & { terms?: Terms; paid?: number; bonus?: number } = {},
): Entitlement {
  const { paid = 3, bonus = 1, terms: t = terms(), ...rest } = overrides;
  counter += 1;
  const base = purchase({
    tenantId: 't1',
    entitlementId: rest.entitlementId ?? `e${String(counter).padStart(4, '0')}`,
    memberId: 'm1',
    definitionId: 'd1',
    definitionVersion: 1,
    terms: t,
    timeZone: SGT,
    branchId: 'b1',
    paidSessions: paid,
    bonusSessions: bonus,
    purchaseTime: rest.purchaseTime ?? new Date('2025-01-10T06:00:00Z'),
  }).next;
  return { ...base, ...rest };
}

export function tenant(...features: string[]): TenantFacts {
  return { tenantId: 't1', features: new Set(features) };
}
