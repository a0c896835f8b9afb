import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { policy, state } from '../../test/support/domain.js';
import { addDays, endOfLocalDay, fromEpochDay, localDateOf, parseDate, toEpochDay } from './calendar.js';
import { computedExpiry, effectiveExpiry, freezePushDays, graceEnd, policyLastDate } from './expiry.js';

const at = (s: string) => new Date(s);
const iso = (t: Date | undefined) => t?.toISOString();

describe('expiry from the policy', () => {
  it('PURCHASE + days ends at local midnight, across the London DST change', () => {
    // Bought 1 March (GMT); 30 days -> usable through 31 March (BST) -> 00:00 BST 1 April.
    const s = state({ policy: policy({ anchor: 'PURCHASE', durationDays: 30 }) });
    expect(iso(computedExpiry(s))).toBe('2025-03-31T23:00:00.000Z');
  });

  it('PURCHASE + calendar months clamps to the month end (31 Jan + 1 month = 28 Feb)', () => {
    const s = state({
      timeZone: 'America/New_York',
      purchaseTime: at('2025-01-31T20:00:00Z'),
      policy: policy({ anchor: 'PURCHASE', durationMonths: 1 }),
    });
    expect(iso(computedExpiry(s))).toBe('2025-03-01T05:00:00.000Z');
    const leap = { ...s, purchaseTime: at('2024-01-31T20:00:00Z') };
    expect(iso(computedExpiry(leap))).toBe('2024-03-01T05:00:00.000Z');
  });

  it('the purchase day is the local one: late evening in New York is already tomorrow in UTC', () => {
    const s = state({
      timeZone: 'America/New_York',
      purchaseTime: at('2025-01-11T03:00:00Z'), // 10 Jan 22:00 EST
      policy: policy({ anchor: 'PURCHASE', durationDays: 30 }),
    });
    expect(iso(computedExpiry(s))).toBe('2025-02-10T05:00:00.000Z');
  });

  it('FIRST_USE has no expiry until the first use, then runs from it', () => {
    const p = policy({ anchor: 'FIRST_USE', durationDays: 10 });
    expect(computedExpiry(state({ policy: p }))).toBeUndefined();
    const used = state({ policy: p, firstUseTime: at('2025-04-05T09:00:00Z'), lastUseTime: at('2025-04-05T09:00:00Z') });
    expect(iso(computedExpiry(used))).toBe('2025-04-15T23:00:00.000Z');
  });

  it('FIXED_DATE ends with that local date; NONE never expires', () => {
    expect(iso(computedExpiry(state({ policy: policy({ anchor: 'FIXED_DATE', fixedDate: '2025-12-31' }) })))).toBe('2026-01-01T00:00:00.000Z');
    expect(computedExpiry(state({ policy: policy({ anchor: 'NONE' }) }))).toBeUndefined();
  });

  it('a rolling extension pushes expiry to N days after the last use, never earlier', () => {
    const p = policy({ anchor: 'PURCHASE', durationDays: 30, rollingExtensionDays: 20 });
    expect(iso(computedExpiry(state({ policy: p, lastUseTime: at('2025-03-02T10:00:00Z') })))).toBe('2025-03-31T23:00:00.000Z');
    expect(iso(computedExpiry(state({ policy: p, lastUseTime: at('2025-03-25T10:00:00Z') })))).toBe('2025-04-14T23:00:00.000Z');
  });

  it('custom rules decide instead of anchor + duration', () => {
    const p = policy({
      anchor: 'PURCHASE',
      durationDays: 365,
      customRule: {
        kind: 'whicheverEarlier',
        rules: [
          { kind: 'daysAfterLastUse', days: 30 },
          { kind: 'daysAfterPurchase', days: 180 },
        ],
      },
    });
    expect(iso(computedExpiry(state({ policy: p })))).toBe('2025-03-31T23:00:00.000Z');
    expect(iso(computedExpiry(state({ policy: p, lastUseTime: at('2025-05-01T12:00:00Z') })))).toBe('2025-05-31T23:00:00.000Z');
    expect(iso(computedExpiry(state({ policy: p, lastUseTime: at('2025-08-20T12:00:00Z') })))).toBe('2025-08-28T23:00:00.000Z');
  });
});

describe('freezes', () => {
  const p = policy({ anchor: 'PURCHASE', durationDays: 30, freezeExtendsExpiry: true, maxFreezeDays: 20 });

  it('completed and current freezes push expiry by their days, capped at the maximum', () => {
    expect(freezePushDays(state({ policy: p, frozenDays: 5 }))).toBe(5);
    const current = { from: at('2025-03-10T10:00:00Z'), until: at('2025-03-17T10:00:00Z') };
    expect(freezePushDays(state({ policy: p, frozenDays: 5, freeze: current }))).toBe(12);
    expect(freezePushDays(state({ policy: p, frozenDays: 18, freeze: current }))).toBe(20);
    expect(iso(computedExpiry(state({ policy: p, frozenDays: 5, freeze: current })))).toBe('2025-04-12T23:00:00.000Z');
  });

  it('an open-ended freeze leaves the expiry unknown until it ends', () => {
    expect(computedExpiry(state({ policy: p, freeze: { from: at('2025-03-10T10:00:00Z') } }))).toBeUndefined();
  });

  it('does not push when the policy says freezes do not extend expiry', () => {
    expect(freezePushDays(state({ policy: { ...p, freezeExtendsExpiry: false }, frozenDays: 9 }))).toBe(0);
  });
});

describe('effective expiry and grace', () => {
  it('the ledger’s recorded expiry wins for standard policies (overrides, its freeze pushes)', () => {
    const s = state({ ledgerExpiryTime: at('2025-06-30T23:00:00Z') });
    expect(iso(effectiveExpiry(s))).toBe('2025-06-30T23:00:00.000Z');
    expect(iso(effectiveExpiry(state()))).toBe('2025-03-31T23:00:00.000Z');
  });

  it('for custom rules the later of the rule and a recorded manager extension wins', () => {
    const p = policy({ customRule: { kind: 'daysAfterPurchase', days: 30 } });
    expect(iso(effectiveExpiry(state({ policy: p, ledgerExpiryTime: at('2025-05-01T23:00:00Z') })))).toBe('2025-05-01T23:00:00.000Z');
    expect(iso(effectiveExpiry(state({ policy: p, ledgerExpiryTime: at('2025-03-05T00:00:00Z') })))).toBe('2025-03-31T23:00:00.000Z');
    expect(iso(effectiveExpiry(state({ policy: p })))).toBe('2025-03-31T23:00:00.000Z');
  });

  it('SOFT: grace ends grace_days local days after expiry; HARD has none', () => {
    const soft = state({ policy: policy({ anchor: 'PURCHASE', durationDays: 30, mode: 'SOFT', graceDays: 7 }) });
    const expiry = effectiveExpiry(soft);
    expect(iso(graceEnd(soft, expiry))).toBe('2025-04-07T23:00:00.000Z');
    expect(graceEnd(state(), effectiveExpiry(state()))).toBeUndefined();
    // The ledger's grace end, once in grace, is kept; one from before a later extension is not.
    expect(iso(graceEnd({ ...soft, ledgerGraceEndTime: at('2025-04-09T23:00:00Z') }, expiry))).toBe('2025-04-09T23:00:00.000Z');
    expect(iso(graceEnd({ ...soft, ledgerGraceEndTime: at('2025-03-01T23:00:00Z') }, expiry))).toBe('2025-04-07T23:00:00.000Z');
  });
});

const zones = fc.constantFrom('Europe/London', 'America/New_York', 'Asia/Singapore', 'Australia/Lord_Howe', 'America/Havana');
const instants = fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2040, 0, 1) }).map((n) => new Date(n));

describe('expiry properties', () => {
  it('expiry is a local midnight: the end of purchase day + duration in the branch zone', () => {
    fc.assert(
      fc.property(zones, instants, fc.integer({ min: 1, max: 800 }), (zone, bought, days) => {
        const s = state({ timeZone: zone, purchaseTime: bought, policy: policy({ anchor: 'PURCHASE', durationDays: days }) });
        const last = addDays(localDateOf(bought, zone), days);
        expect(computedExpiry(s)).toEqual(endOfLocalDay(last, zone));
        expect(policyLastDate(s)).toEqual(last);
      }),
    );
  });

  it('a later last use never brings a rolling expiry forward; more freeze days never either', () => {
    fc.assert(
      fc.property(zones, instants, fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 60 }), (zone, bought, a, b, frozen) => {
        const p = policy({ anchor: 'PURCHASE', durationDays: 30, rollingExtensionDays: 45, freezeExtendsExpiry: true });
        const use = (n: number) => new Date(bought.getTime() + n * 86_400_000);
        const s = state({ timeZone: zone, purchaseTime: bought, policy: p });
        const early = computedExpiry({ ...s, lastUseTime: use(Math.min(a, b)), frozenDays: frozen });
        const late = computedExpiry({ ...s, lastUseTime: use(Math.max(a, b)), frozenDays: frozen });
        const moreFrozen = computedExpiry({ ...s, lastUseTime: use(Math.max(a, b)), frozenDays: frozen + 1 });
        expect(early!.getTime()).toBeLessThanOrEqual(late!.getTime());
        expect(late!.getTime()).toBeLessThan(moreFrozen!.getTime());
      }),
    );
  });

  it('months land on the same day of month or the month end', () => {
    fc.assert(
      fc.property(zones, fc.integer({ min: toEpochDay(parseDate('2000-01-01')!), max: toEpochDay(parseDate('2040-01-01')!) }), fc.integer({ min: 1, max: 36 }), (zone, n, months) => {
        const day = fromEpochDay(n);
        const s = state({ timeZone: zone, purchaseTime: endOfLocalDay(addDays(day, -1), zone), policy: policy({ anchor: 'PURCHASE', durationMonths: months }) });
        const last = policyLastDate(s)!;
        expect(last.day === day.day || addDays(last, 1).day === 1).toBe(true);
      }),
    );
  });
});
