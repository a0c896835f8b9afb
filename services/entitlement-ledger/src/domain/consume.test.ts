import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { entitlement, tenant, terms } from '../../test/support/domain-fixtures.js';
import { consume, pick, redemptionOrder, usability, type ConsumeInput } from './consume.js';
import { RuleViolation } from './errors.js';
import type { Entitlement } from './types.js';

const at = new Date('2025-01-20T02:00:00Z');
const visit = (o: Partial<ConsumeInput> = {}): ConsumeInput => ({
  memberId: 'm1',
  branchId: 'b1',
  serviceCode: 'PHYSIO',
  occurredTime: at,
  reason: 'visit',
  ...o,
});
const basic = tenant();

function refusal(fn: () => unknown): RuleViolation {
  try {
    fn();
  } catch (err) {
    if (err instanceof RuleViolation) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('consume', () => {
  it('takes paid sessions first by default and records which', () => {
    const e = entitlement({ paid: 1, bonus: 1 });
    const first = consume(e, visit(), basic);
    expect(first.entry).toMatchObject({ kind: 'CONSUME', sessionsDelta: -1, paidDelta: -1, bonusDelta: 0, balanceAfter: 1, entitlementVersion: 2 });
    const second = consume(first.next, visit(), basic);
    expect(second.entry).toMatchObject({ paidDelta: 0, bonusDelta: -1, balanceAfter: 0 });
    expect(second.next.status).toBe('EXHAUSTED');
  });

  it('takes bonus sessions first when the definition says so', () => {
    const e = entitlement({ paid: 1, bonus: 1, terms: terms({ sessionOrder: 'BONUS_FIRST' }) });
    expect(consume(e, visit(), basic).entry).toMatchObject({ paidDelta: 0, bonusDelta: -1 });
  });

  it('refuses an exhausted entitlement with resource_exhausted', () => {
    const e = entitlement({ paid: 1, bonus: 0 });
    const done = consume(e, visit(), basic).next;
    expect(refusal(() => consume(done, visit(), basic)).kind).toBe('resource_exhausted');
  });

  it('refuses frozen, expired and closed entitlements with the reason', () => {
    expect(refusal(() => consume(entitlement({ status: 'FROZEN' }), visit(), basic)).message).toMatch(/frozen/);
    expect(refusal(() => consume(entitlement({ status: 'EXPIRED' }), visit(), basic)).message).toMatch(/expired/);
    expect(refusal(() => consume(entitlement({ status: 'REFUNDED' }), visit(), basic)).message).toMatch(/refunded/);
    const late = visit({ occurredTime: new Date('2025-03-01T00:00:00Z') });
    const r = refusal(() => consume(entitlement(), late, basic));
    expect(r.kind).toBe('failed_precondition');
    expect(r.message).toMatch(/expired at 2025-02-09T16:00:00.000Z/);
  });

  it('SOFT expiry consumes in grace with the flag, and not after grace', () => {
    const soft = entitlement({ terms: terms({ expiry: { mode: 'SOFT', graceDays: 7 } }) });
    const inGrace = consume(soft, visit({ occurredTime: new Date('2025-02-12T00:00:00Z') }), basic);
    expect(inGrace.entry.inGrace).toBe(true);
    expect(consume(soft, visit(), basic).entry.inGrace).toBe(false);
    expect(refusal(() => consume(soft, visit({ occurredTime: new Date('2025-02-17T00:00:00Z') }), basic)).message).toMatch(/expired/);
    expect(consume({ ...soft, status: 'IN_GRACE' }, visit(), basic).entry.inGrace).toBe(true);
  });

  it('enforces branch rules and the multi-branch plan gate', () => {
    const here = entitlement();
    expect(refusal(() => consume(here, visit({ branchId: 'b2' }), basic)).message).toMatch(/not usable at branch b2/);
    const everywhere = entitlement({ terms: terms({ allBranches: true }) });
    expect(refusal(() => consume(everywhere, visit({ branchId: 'b2' }), basic)).message).toMatch(/multi-branch \(ENTERPRISE plan\)/);
    expect(consume(everywhere, visit({ branchId: 'b2' }), tenant('MULTI_BRANCH')).entry.branchId).toBe('b2');
    const listed = entitlement({ terms: terms({ branchIds: ['b3'] }) });
    expect(usability(listed, visit({ branchId: 'b3' }), tenant('MULTI_BRANCH')).ok).toBe(true);
    expect(usability(listed, visit({ branchId: 'b2' }), tenant('MULTI_BRANCH')).ok).toBe(false);
  });

  it('checks the service code only when one is given', () => {
    const e = entitlement();
    expect(refusal(() => consume(e, visit({ serviceCode: 'MASSAGE' }), basic)).message).toMatch(/does not cover service code MASSAGE/);
    expect(consume(e, visit({ serviceCode: '' }), basic).entry.sessionsDelta).toBe(-1);
    const any = entitlement({ terms: terms({ serviceCodes: [] }) });
    expect(consume(any, visit({ serviceCode: 'MASSAGE' }), basic).entry.serviceCode).toBe('MASSAGE');
  });

  it('leaves a custom rule\'s deadline to the scheduler', () => {
    const custom = entitlement({ terms: terms({ expiry: { customRule: true } }), expiryTime: new Date('2025-01-15T00:00:00Z') });
    expect(consume(custom, visit(), basic).entry.inGrace).toBe(false);
  });

  it('starts the clock of a FIRST_USE package at its first consume', () => {
    const e = entitlement({ terms: terms({ expiry: { anchor: 'FIRST_USE', durationDays: 10 } }) });
    expect(e.expiryTime).toBeNull();
    const t = consume(e, visit(), basic);
    expect(t.next.activationTime).toEqual(at);
    expect(t.next.expiryTime).toEqual(new Date('2025-01-30T16:00:00Z'));
    expect(t.entry.expiryTime).toEqual(t.next.expiryTime);
  });
});

describe('pick', () => {
  it('orders by priority, then soonest expiry (FEFO), then oldest', () => {
    const early = entitlement({ expiryTime: new Date('2025-02-01T00:00:00Z') });
    const late = entitlement({ expiryTime: new Date('2025-03-01T00:00:00Z') });
    const never = entitlement({ expiryTime: null });
    expect(pick([late, never, early], visit(), basic).entitlementId).toBe(early.entitlementId);
    const preferred = entitlement({ expiryTime: new Date('2025-06-01T00:00:00Z'), terms: terms({ redemptionPriority: -1 }) });
    expect(pick([late, early, preferred], visit(), basic).entitlementId).toBe(preferred.entitlementId);
    const older = entitlement({ expiryTime: null, purchaseTime: new Date('2024-12-01T00:00:00Z') });
    expect(pick([never, older], visit(), basic).entitlementId).toBe(older.entitlementId);
  });

  it('skips what is not usable and explains the best refusal', () => {
    const frozen = entitlement({ status: 'FROZEN', expiryTime: new Date('2025-01-25T00:00:00Z') });
    const ok = entitlement();
    expect(pick([frozen, ok], visit(), basic).entitlementId).toBe(ok.entitlementId);
    const empty = consume(entitlement({ paid: 1, bonus: 0 }), visit(), basic).next;
    expect(refusal(() => pick([empty], visit(), basic)).kind).toBe('resource_exhausted');
    expect(refusal(() => pick([empty, frozen], visit(), basic)).message).toMatch(/frozen/);
    const other = entitlement({ terms: terms({ serviceCodes: ['MASSAGE'] }) });
    expect(refusal(() => pick([other], visit(), basic)).message).toMatch(/member m1 has no entitlement covering service code PHYSIO at branch b1/);
    expect(refusal(() => pick([], visit(), basic)).kind).toBe('failed_precondition');
  });

  it('property: picks the first usable entitlement in redemption order', () => {
    const arb = fc.record({
      status: fc.constantFrom('ACTIVE', 'FROZEN', 'EXHAUSTED', 'EXPIRED', 'IN_GRACE'),
      priority: fc.integer({ min: 0, max: 2 }),
      expiryDays: fc.option(fc.integer({ min: -5, max: 60 }), { nil: null }),
      purchasedDaysAgo: fc.integer({ min: 0, max: 30 }),
      paid: fc.integer({ min: 0, max: 2 }),
      service: fc.constantFrom('PHYSIO', 'MASSAGE'),
    });
    fc.assert(
      fc.property(fc.array(arb, { maxLength: 8 }), (specs) => {
        const candidates: Entitlement[] = specs.map((s, i) =>
          entitlement({
            entitlementId: `x${i}`,
            status: s.status,
            paid: 2,
            bonus: 0,
            paidRemaining: s.paid,
            purchaseTime: new Date(at.getTime() - s.purchasedDaysAgo * 86_400_000),
            terms: terms({ redemptionPriority: s.priority, serviceCodes: [s.service], expiry: { mode: 'SOFT', graceDays: 3 } }),
          }),
        ).map((e, i) => ({ ...e, expiryTime: specs[i]!.expiryDays === null ? null : new Date(at.getTime() + specs[i]!.expiryDays! * 86_400_000) }));
        const usable = candidates.filter((e) => usability(e, visit(), basic).ok).sort(redemptionOrder);
        if (usable.length === 0) {
          expect(() => pick(candidates, visit(), basic)).toThrow(RuleViolation);
        } else {
          const chosen = pick(candidates, visit(), basic);
          expect(chosen.entitlementId).toBe(usable[0]!.entitlementId);
          for (const other of usable) expect(redemptionOrder(chosen, other)).toBeLessThanOrEqual(0);
        }
      }),
    );
  });
});
