import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { entitlement, tenant, terms } from '../../test/support/domain-fixtures.js';
import { consume, type ConsumeInput } from './consume.js';
import { RuleViolation } from './errors.js';
import { enterGrace, expire, extend, freeze, reverse, unfreeze, type ReversibleEntry } from './lifecycle.js';
import { remaining, type Entitlement, type EntryDraft } from './types.js';

const day = 86_400_000;
const at = new Date('2025-01-20T02:00:00Z');
const visit: ConsumeInput = { memberId: 'm1', branchId: 'b1', serviceCode: 'PHYSIO', occurredTime: at, reason: 'visit' };
const basic = tenant();

function asStored(entry: EntryDraft, id: string, entitlementId: string, reversedBy?: string): ReversibleEntry {
  return {
    entryId: id,
    entitlementId,
    kind: entry.kind,
    paidDelta: entry.paidDelta,
    bonusDelta: entry.bonusDelta,
    branchId: entry.branchId,
    ...(reversedBy ? { reversedBy } : {}),
  };
}

describe('reverse', () => {
  it('restores exactly the session the consume took', () => {
    const e = entitlement({ paid: 1, bonus: 1, terms: terms({ sessionOrder: 'BONUS_FIRST' }) });
    const c = consume(e, visit, basic);
    const r = reverse(c.next, asStored(c.entry, 'c1', e.entitlementId), 'mistake', at);
    expect(r.entry).toMatchObject({ kind: 'REVERSAL', sessionsDelta: 1, paidDelta: 0, bonusDelta: 1, reversesEntryId: 'c1', balanceAfter: 2 });
    expect(r.next).toMatchObject({ paidRemaining: 1, bonusRemaining: 1, version: 3 });
  });

  it('re-opens an exhausted entitlement', () => {
    const c = consume(entitlement({ paid: 1, bonus: 0 }), visit, basic);
    expect(c.next.status).toBe('EXHAUSTED');
    expect(reverse(c.next, asStored(c.entry, 'c1', 'x'), 'cancelled', at).next.status).toBe('ACTIVE');
  });

  it('cannot be applied twice, to a non-consume entry, or to an expired entitlement', () => {
    const e = entitlement();
    const c = consume(e, visit, basic);
    expect(() => reverse(c.next, asStored(c.entry, 'c1', 'x', 'r1'), 'again', at)).toThrow(/already reversed by entry r1/);
    expect(() => reverse(c.next, { ...asStored(c.entry, 'c1', 'x'), kind: 'PURCHASE' }, 'no', at)).toThrow(/only CONSUME/);
    expect(() => reverse({ ...c.next, status: 'EXPIRED' }, asStored(c.entry, 'c1', 'x'), 'late', at)).toThrow(/expired/);
  });
});

describe('freeze and unfreeze', () => {
  const policy = terms({ expiry: { maxFreezeDays: 14, freezeExtendsExpiry: true } });

  it('needs a policy that allows it and stays within max_freeze_days', () => {
    expect(() => freeze(entitlement(), new Date(at.getTime() + day), 'trip', at)).toThrow(/does not allow freezing/);
    const e = entitlement({ terms: policy });
    const err = (() => {
      try {
        freeze(e, new Date(at.getTime() + 15 * day), 'trip', at);
      } catch (x) {
        return x as RuleViolation;
      }
    })();
    expect(err?.field).toBe('until_time');
    expect(() => freeze(e, at, 'now', at)).toThrow(/until_time: must be in the future/);
  });

  it('pushes expiry by the booked days and gives back unused days on an early unfreeze', () => {
    const e = entitlement({ terms: policy });
    const f = freeze(e, new Date(at.getTime() + 10 * day), 'trip', at);
    expect(f.next.status).toBe('FROZEN');
    expect(f.next.expiryTime!.getTime() - e.expiryTime!.getTime()).toBe(10 * day);
    expect(() => consume(f.next, visit, basic)).toThrow(/frozen/);
    const u = unfreeze(f.next, 'back early', new Date(at.getTime() + 3.5 * day));
    expect(u.next).toMatchObject({ status: 'ACTIVE', frozenDays: 4, frozenAt: null });
    expect(u.next.expiryTime!.getTime() - e.expiryTime!.getTime()).toBe(4 * day);
    expect(() => freeze(u.next, new Date(at.getTime() + 15 * day), 'again', new Date(at.getTime() + 4 * day))).toThrow(/10 freeze days left/);
    expect(() => unfreeze(u.next, 'twice', at)).toThrow(/not frozen/);
  });
});

describe('extend', () => {
  it('requires a reason and exactly one of date or days', () => {
    const e = entitlement();
    expect(() => extend(e, { extendDays: 5, reason: ' ' }, at)).toThrow(/reason: is required/);
    expect(() => extend(e, { reason: 'goodwill' }, at)).toThrow(/exactly one/);
    expect(() => extend(e, { newExpiryTime: new Date('2025-01-01Z'), reason: 'x' }, at)).toThrow(/after the current expiry/);
  });

  it('moves expiry and brings a package in grace back to active', () => {
    const e = entitlement({ terms: terms({ expiry: { mode: 'SOFT', graceDays: 7 } }) });
    const g = enterGrace(e, e.expiryTime!, undefined, new Date('2025-02-11T00:00:00Z'));
    if ('noop' in g) throw new Error(g.noop);
    const x = extend(g.next, { extendDays: 30, reason: 'goodwill' }, new Date('2025-02-11T00:00:00Z'));
    expect(x.next).toMatchObject({ status: 'ACTIVE', graceEndTime: null, expiryTime: new Date('2025-03-11T16:00:00Z') });
    expect(x.entry).toMatchObject({ kind: 'EXTEND', sessionsDelta: 0, reason: 'goodwill', expiryTime: new Date('2025-03-11T16:00:00Z') });
  });

  it('cannot extend a FIRST_USE package before its first use, nor one that never expires', () => {
    const e = entitlement({ terms: terms({ expiry: { anchor: 'FIRST_USE' } }) });
    expect(() => extend(e, { extendDays: 1, reason: 'x' }, at)).toThrow(/until its first use/);
    const forever = entitlement({ terms: terms({ expiry: { anchor: 'NONE', durationDays: 0 } }) });
    expect(() => extend(forever, { extendDays: 1, reason: 'x' }, at)).toThrow(/never expires/);
  });

  it('sets an explicit date on a custom-rule package, whose expiry the scheduler evaluates', () => {
    const e = entitlement({ terms: terms({ expiry: { customRule: true } }) });
    expect(e.expiryTime).toBeNull();
    expect(() => extend(e, { extendDays: 5, reason: 'x' }, at)).toThrow(/custom rule/);
    const until = new Date('2025-06-01T00:00:00Z');
    expect(extend(e, { newExpiryTime: until, reason: 'goodwill' }, at).next.expiryTime).toEqual(until);
  });
});

describe('grace and expiry from the scheduler', () => {
  const soft = entitlement({ terms: terms({ expiry: { mode: 'SOFT', graceDays: 7 } }) });
  const after = new Date('2025-02-20T00:00:00Z');

  it('enters grace once; a stale or repeated call changes nothing', () => {
    const g = enterGrace(soft, soft.expiryTime!, undefined, after);
    if ('noop' in g) throw new Error(g.noop);
    expect(g.next).toMatchObject({ status: 'IN_GRACE', graceEndTime: new Date('2025-02-16T16:00:00Z') });
    expect(enterGrace(g.next, soft.expiryTime!, undefined, after)).toHaveProperty('noop');
    expect(enterGrace(soft, new Date('2025-01-01Z'), undefined, after)).toHaveProperty('noop');
    expect(() => enterGrace(entitlement(), soft.expiryTime!, undefined, after)).toThrow(/HARD/);
    expect(() => enterGrace(soft, soft.expiryTime!, soft.expiryTime!, after)).toThrow(/grace_end_time: must be after expiry_time/);
    const given = enterGrace(soft, soft.expiryTime!, new Date('2025-02-20T00:00:00Z'), after);
    expect('noop' in given ? undefined : given.next.graceEndTime).toEqual(new Date('2025-02-20T00:00:00Z'));
  });

  it("custom rule: a manager's extension is a floor; the scheduler's later expiry still starts grace", () => {
    const custom = entitlement({ terms: terms({ expiry: { mode: 'SOFT', graceDays: 7, customRule: true } }) });
    const extended = extend(custom, { newExpiryTime: new Date('2025-03-01T16:00:00Z'), reason: 'goodwill' }, at).next;
    const later = new Date('2025-03-20T16:00:00Z');
    const whenDue = new Date('2025-03-21T00:00:00Z');
    // Visits after the extension pushed the rule's expiry past the extended date.
    const g = enterGrace(extended, later, undefined, whenDue);
    if ('noop' in g) throw new Error(g.noop);
    expect(g.next).toMatchObject({ status: 'IN_GRACE', expiryTime: later, graceEndTime: new Date('2025-03-27T16:00:00Z') });
    expect(enterGrace(extended, new Date('2025-02-20T16:00:00Z'), undefined, whenDue)).toHaveProperty('noop');
    expect(enterGrace(g.next, later, undefined, whenDue)).toHaveProperty('noop');
    const x = expire(g.next, new Date('2025-03-27T16:00:00Z'), '', new Date('2025-03-28T00:00:00Z'));
    expect('noop' in x ? x.noop : x.next.status).toBe('EXPIRED');
    // A standard policy keeps the ledger's own expiry: any other instant is stale.
    expect(enterGrace(soft, new Date(soft.expiryTime!.getTime() + day), undefined, after)).toHaveProperty('noop');
  });

  it('expires forfeiting the remaining sessions; stale or repeated calls change nothing', () => {
    const c = consume(soft, visit, basic).next;
    expect(expire(c, soft.expiryTime!, '', after)).toHaveProperty('noop'); // grace still running
    const x = expire(c, new Date('2025-02-16T16:00:00Z'), '', after);
    if ('noop' in x) throw new Error(x.noop);
    expect(x.entry).toMatchObject({ kind: 'EXPIRE', sessionsDelta: -3, paidDelta: -2, bonusDelta: -1, balanceAfter: 0 });
    expect(x.next.status).toBe('EXPIRED');
    expect(expire(x.next, new Date('2025-02-16T16:00:00Z'), '', after)).toHaveProperty('noop');
    expect(() => expire(c, new Date('2030-01-01Z'), '', after)).toThrow(/due_time/);
  });
});

type Op =
  | { op: 'consume'; hours: number; bonusFirst: boolean }
  | { op: 'reverse'; pickIndex: number }
  | { op: 'freeze'; days: number }
  | { op: 'unfreeze'; hours: number }
  | { op: 'extend'; days: number }
  | { op: 'grace' }
  | { op: 'expire' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('consume' as const), hours: fc.integer({ min: 0, max: 72 }), bonusFirst: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('reverse' as const), pickIndex: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('freeze' as const), days: fc.integer({ min: 1, max: 10 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('unfreeze' as const), hours: fc.integer({ min: 0, max: 300 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('extend' as const), days: fc.integer({ min: 1, max: 30 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('grace' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('expire' as const) }) },
);

describe('property: balance is the sum of entries', () => {
  it('after any sequence of operations, remaining = sum of deltas >= 0 and version = entry count', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 3 }), fc.array(opArb, { maxLength: 40 }), (paid, bonus, ops) => {
        fc.pre(paid + bonus > 0);
        let now = new Date('2025-01-10T07:00:00Z');
        let e: Entitlement = entitlement({
          paid,
          bonus,
          purchaseTime: now,
          terms: terms({ expiry: { mode: 'SOFT', graceDays: 5, durationDays: 20, maxFreezeDays: 15, freezeExtendsExpiry: true } }),
        });
        const entries: (EntryDraft & { id: string; reversedBy?: string })[] = [
          { kind: 'PURCHASE', sessionsDelta: paid + bonus, paidDelta: paid, bonusDelta: bonus, id: 'p', balanceAfter: paid + bonus } as never,
        ];
        for (const op of ops) {
          try {
            let t: ReturnType<typeof consume> | { noop: string };
            switch (op.op) {
              case 'consume':
                now = new Date(now.getTime() + op.hours * 3_600_000);
                t = consume(e, { ...visit, occurredTime: now }, basic);
                break;
              case 'reverse': {
                const consumes = entries.filter((x) => x.kind === 'CONSUME');
                const target = consumes[op.pickIndex % Math.max(1, consumes.length)];
                if (!target) continue;
                t = reverse(e, { ...asStored(target, target.id, e.entitlementId, target.reversedBy) }, 'undo', now);
                target.reversedBy ??= `r${entries.length}`;
                break;
              }
              case 'freeze':
                t = freeze(e, new Date(now.getTime() + op.days * day), 'away', now);
                break;
              case 'unfreeze':
                now = new Date(now.getTime() + op.hours * 3_600_000);
                t = unfreeze(e, 'back', now);
                break;
              case 'extend':
                t = extend(e, { extendDays: op.days, reason: 'goodwill' }, now);
                break;
              case 'grace':
                t = e.expiryTime ? enterGrace(e, e.expiryTime, undefined, new Date(Math.max(now.getTime(), e.expiryTime.getTime()))) : { noop: '' };
                break;
              case 'expire': {
                const due = new Date(now.getTime() + 40 * day);
                t = expire(e, due, '', due);
                if (!('noop' in t)) now = due;
                break;
              }
            }
            if ('noop' in t) continue;
            expect(t.entry.entitlementVersion).toBe(e.version + 1);
            e = t.next;
            entries.push({ ...t.entry, id: `n${entries.length}` });
          } catch (err) {
            if (!(err instanceof RuleViolation)) throw err;
          }
          const sum = entries.reduce((s, x) => s + x.sessionsDelta, 0);
          const paidSum = entries.reduce((s, x) => s + x.paidDelta, 0);
          const bonusSum = entries.reduce((s, x) => s + x.bonusDelta, 0);
          expect(remaining(e)).toBe(sum);
          expect(e.paidRemaining).toBe(paidSum);
          expect(e.bonusRemaining).toBe(bonusSum);
          expect(e.paidRemaining).toBeGreaterThanOrEqual(0);
          expect(e.bonusRemaining).toBeGreaterThanOrEqual(0);
          expect(e.paidRemaining).toBeLessThanOrEqual(e.paidSessions);
          expect(e.version).toBe(entries.length);
          expect(entries.at(-1)!.balanceAfter).toBe(remaining(e));
        }
      }),
      { numRuns: 300 },
    );
  });
});
