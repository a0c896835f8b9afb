import type { Entitlement, ExpiryTerms, TenantFacts, Terms, Transition } from '../../src/domain/types.js';
import { purchase } from '../../src/domain/lifecycle.js';
import type { Policies } from '../../src/domain/policies.js';
import { replay, type BookBasis, type BookEntry, type Slot } from '../../src/domain/valuation.js';

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

export function policies(overrides: { [K in keyof Policies]?: Partial<Policies[K]> } & { currency?: string; standalonePrice?: bigint } = {}): Policies {
  const { currency = 'SGD', standalonePrice = 0n, transfer, sharing, refund, upgrade, topUp } = overrides;
  return {
    currency,
    standalonePrice,
    transfer: { scope: 'ANYONE', maxTransfers: 0, undoWindowHours: 0, ...transfer },
    sharing: { householdPool: true, maxMembers: 0, perMemberSessionCap: 0, ...sharing },
    refund: { method: 'PRO_RATA', adminFee: 0n, windowDays: 0, ...refund },
    upgrade: { targetDefinitionIds: [], ...upgrade },
    topUp: { enabled: true, pricePerSession: 0n, extendExpiryDays: 0, ...topUp },
  };
}

/**
 * An entitlement with its entries in memory, as the store would keep them: applies transitions and
 * names each entry, so valuation can replay them.
 */
export class Book {
  entries: BookEntry[] = [];
  private n = 0;
  constructor(
    public e: Entitlement,
    public readonly basis: BookBasis,
  ) {
    this.entries.push({ entryId: this.id(), kind: 'PURCHASE', paidDelta: e.paidSessions, bonusDelta: e.bonusSessions });
  }

  private id(): string {
    this.n += 1;
    return `${this.e.entitlementId}-x${this.n}`;
  }

  /** Applies a transition; returns the new entry's id. */
  apply(t: Transition): string {
    const entryId = this.id();
    this.e = t.next;
    this.entries.push({
      entryId,
      kind: t.entry.kind,
      paidDelta: t.entry.paidDelta,
      bonusDelta: t.entry.bonusDelta,
      reversesEntryId: t.entry.reversesEntryId,
      amountMinor: t.entry.amountMinor,
      detail: t.entry.detail,
    });
    return entryId;
  }

  slots(): Slot[] {
    return replay(this.basis, this.entries);
  }
}
