import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Book, entitlement, policies, tenant, terms } from '../../test/support/domain-fixtures.js';
import { consume, type ConsumeInput } from './consume.js';
import { reverse } from './lifecycle.js';
import { topUp } from './topup.js';
import { allocateLine, contractValue, highestOpen, openSlots, replay, sessionValues, usedCount } from './valuation.js';

const at = new Date('2025-01-20T02:00:00Z');
const visit: ConsumeInput = { memberId: 'm1', branchId: 'b1', serviceCode: 'PHYSIO', occurredTime: at, reason: 'visit' };
const basic = tenant();

function consumeIn(b: Book): string {
  return b.apply(consume(b.e, visit, basic));
}

function reverseIn(b: Book, entryId: string): string {
  const x = b.entries.find((y) => y.entryId === entryId)!;
  return b.apply(reverse(b.e, { entryId, entitlementId: b.e.entitlementId, kind: 'CONSUME', paidDelta: x.paidDelta, bonusDelta: x.bonusDelta, branchId: 'b1' }, 'undo', at));
}

describe('allocation (the rule revenue books with)', () => {
  it('Buy 3 Free 1 at 300.00: four sessions of 75.00', () => {
    const b = new Book(entitlement({ paid: 3, bonus: 1 }), { priceMinor: 30000n, standalone: 0n, sessionOrder: 'PAID_FIRST' });
    expect(sessionValues(b.slots())).toEqual([
      { bonus: false, value: 7500n },
      { bonus: false, value: 7500n },
      { bonus: false, value: 7500n },
      { bonus: true, value: 7500n },
    ]);
  });

  it('100.00 over three sessions: the leftover cent goes to the first (33.34, 33.33, 33.33), with or without a standalone price', () => {
    expect(allocateLine(10000n, 3, 0n)).toEqual([3334n, 3333n, 3333n]);
    expect(allocateLine(10000n, 3, 4500n)).toEqual([3334n, 3333n, 3333n]);
  });

  it('bonus first puts the bonus sessions at the front of the consumption order', () => {
    const b = new Book(entitlement({ paid: 2, bonus: 1, terms: terms({ sessionOrder: 'BONUS_FIRST' }) }), { priceMinor: 10000n, standalone: 0n, sessionOrder: 'BONUS_FIRST' });
    expect(sessionValues(b.slots())).toEqual([
      { bonus: true, value: 3334n },
      { bonus: false, value: 3333n },
      { bonus: false, value: 3333n },
    ]);
  });

  it('a consume takes the lowest-numbered unused session of its kind; its reversal frees exactly that one', () => {
    const b = new Book(entitlement({ paid: 3, bonus: 0 }), { priceMinor: 10000n, standalone: 0n, sessionOrder: 'PAID_FIRST' });
    const c1 = consumeIn(b);
    const c2 = consumeIn(b);
    expect(openSlots(b.slots()).map((s) => s.value)).toEqual([3333n]);
    reverseIn(b, c1);
    // Session 1 (33.34) is free again; session 2 (33.33) stays used by c2.
    const slots = b.slots();
    expect(slots.map((s) => s.consumedBy)).toEqual([null, c2, null]);
    expect(openSlots(slots).map((s) => s.value)).toEqual([3334n, 3333n]);
  });

  it('a top-up is a line of its own, allocated over exactly its sessions and numbered after the others', () => {
    const b = new Book(entitlement({ paid: 3, bonus: 1 }), { priceMinor: 30000n, standalone: 0n, sessionOrder: 'PAID_FIRST' });
    b.apply(topUp(b.e, policies({ topUp: { pricePerSession: 8000n } }), { sessions: 2, branchId: 'b1', paymentReference: 'p', reason: 'top-up', now: at }));
    expect(sessionValues(b.slots())).toEqual([
      { bonus: false, value: 7500n },
      { bonus: false, value: 7500n },
      { bonus: false, value: 7500n },
      { bonus: true, value: 7500n },
      { bonus: false, value: 8000n },
      { bonus: false, value: 8000n },
    ]);
    expect(contractValue(b.slots())).toBe(46000n);
  });

  it('a transfer moves the highest-numbered unused sessions of each kind', () => {
    const b = new Book(entitlement({ paid: 3, bonus: 1 }), { priceMinor: 10000n, standalone: 0n, sessionOrder: 'PAID_FIRST' });
    consumeIn(b);
    expect(highestOpen(b.slots(), 1, 1).map((s) => s.number)).toEqual([3, 4]);
    expect(() => highestOpen(b.slots(), 3, 0)).toThrow(/fewer than 3 paid/);
  });

  it('property: values sum to the lines exactly; unused sessions match the balances; used = consumes - reversals', () => {
    type Op = { op: 'consume' } | { op: 'reverse'; pick: number } | { op: 'topup'; n: number; price: number };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.constant({ op: 'consume' as const }),
      fc.record({ op: fc.constant('reverse' as const), pick: fc.nat(20) }),
      fc.record({ op: fc.constant('topup' as const), n: fc.integer({ min: 1, max: 4 }), price: fc.integer({ min: 1, max: 99_999 }) }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 0, max: 3 }),
        fc.constantFrom('PAID_FIRST' as const, 'BONUS_FIRST' as const),
        fc.array(opArb, { maxLength: 25 }),
        (price, paid, bonus, order, ops) => {
          const b = new Book(entitlement({ paid, bonus, terms: terms({ sessionOrder: order }) }), { priceMinor: BigInt(price), standalone: 0n, sessionOrder: order });
          let lines = BigInt(price);
          const consumes: string[] = [];
          for (const op of ops) {
            if (op.op === 'consume' && b.e.paidRemaining + b.e.bonusRemaining > 0) consumes.push(consumeIn(b));
            if (op.op === 'reverse' && consumes.length > 0) reverseIn(b, consumes.splice(op.pick % consumes.length, 1)[0]!);
            if (op.op === 'topup') {
              b.apply(topUp(b.e, policies({ topUp: { pricePerSession: BigInt(op.price) } }), { sessions: op.n, branchId: 'b1', paymentReference: '', reason: '', now: at }));
              lines += BigInt(op.price * op.n);
            }
          }
          const slots = replay(b.basis, b.entries);
          expect(contractValue(slots)).toBe(lines);
          const open = openSlots(slots);
          expect(open.filter((s) => !s.bonus)).toHaveLength(b.e.paidRemaining);
          expect(open.filter((s) => s.bonus)).toHaveLength(b.e.bonusRemaining);
          expect(usedCount(slots)).toBe(consumes.length);
          // Equal weights: any two sessions of one line differ by at most one minor unit.
          const first = slots.slice(0, paid + bonus).map((s) => s.value);
          expect(first.reduce((m, v) => (v > m ? v : m), 0n) - first.reduce((m, v) => (v < m ? v : m), first[0]!)).toBeLessThanOrEqual(1n);
        },
      ),
      { numRuns: 200 },
    );
  });
});
