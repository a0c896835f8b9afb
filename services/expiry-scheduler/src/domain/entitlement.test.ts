import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { policy } from '../../test/support/domain.js';
import { applyLedgerFact, ordering, type LedgerFact } from './entitlement.js';
import { afterFailure, firingFor, idempotencyKeyFor, MAX_ATTEMPTS } from './firing.js';
import { progressMessage, rate } from './progress.js';

const at = (s: string) => new Date(s);

function fact(over: Partial<LedgerFact> & { kind?: LedgerFact['entry']['kind']; occurred?: string } = {}): LedgerFact {
  const { kind = 'PURCHASE', occurred = '2025-03-01T10:00:00Z', ...rest } = over;
  return {
    tenantId: 't1',
    entitlementId: 'e1',
    memberId: 'm1',
    version: 1,
    status: 'ACTIVE',
    remaining: 10,
    policy: policy({ anchor: 'FIRST_USE', durationDays: 30 }),
    timeZone: 'Europe/London',
    purchaseTime: at('2025-03-01T10:00:00Z'),
    frozenDays: 0,
    entry: { kind, occurredTime: at(occurred), requestId: 'purchase-key' },
    ...rest,
  };
}

describe('ordering per entitlement', () => {
  it('applies the next version, skips old ones, waits on gaps', () => {
    expect(ordering(undefined, 1)).toBe('apply');
    expect(ordering(undefined, 2)).toBe('gap');
    expect(ordering(3, 4)).toBe('apply');
    expect(ordering(3, 3)).toBe('duplicate');
    expect(ordering(3, 1)).toBe('duplicate');
    expect(ordering(3, 6)).toBe('gap');
  });

  it('any shuffled delivery with redelivery, applied by the rule, applies 1..n exactly once in order', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }).chain((n) => fc.tuple(fc.constant(n), fc.shuffledSubarray([...Array(n).keys(), ...Array(n).keys()], { minLength: 2 * n }))), ([n, deliveries]) => {
        const queue = deliveries.map((i) => i + 1);
        const applied: number[] = [];
        let last: number | undefined;
        // A nak puts the message back at the end of the queue, as a delayed redelivery would.
        for (let guard = 0; queue.length > 0 && guard < 10_000; guard++) {
          const v = queue.shift()!;
          const o = ordering(last, v);
          if (o === 'apply') {
            applied.push(v);
            last = v;
          } else if (o === 'gap') queue.push(v);
        }
        expect(applied).toEqual([...Array(n).keys()].map((i) => i + 1));
      }),
    );
  });
});

describe('applyLedgerFact', () => {
  it('records the first use and the last use from consumes', () => {
    const s1 = applyLedgerFact(undefined, fact());
    expect(s1.firstUseTime).toBeUndefined();
    const s2 = applyLedgerFact(s1, fact({ version: 2, kind: 'CONSUME', occurred: '2025-03-05T10:00:00Z', activationTime: at('2025-03-05T10:00:00Z') }));
    expect(s2.firstUseTime).toEqual(at('2025-03-05T10:00:00Z'));
    const s3 = applyLedgerFact(s2, fact({ version: 3, kind: 'CONSUME', occurred: '2025-03-09T10:00:00Z' }));
    expect(s3.firstUseTime).toEqual(at('2025-03-05T10:00:00Z'));
    expect(s3.lastUseTime).toEqual(at('2025-03-09T10:00:00Z'));
    // A backdated visit recorded later does not move the last use back.
    const s4 = applyLedgerFact(s3, fact({ version: 4, kind: 'CONSUME', occurred: '2025-03-07T10:00:00Z' }));
    expect(s4.lastUseTime).toEqual(at('2025-03-09T10:00:00Z'));
  });

  it('tracks the freeze in force and drops it on unfreeze', () => {
    const s1 = applyLedgerFact(undefined, fact());
    const frozen = applyLedgerFact(s1, fact({ version: 2, kind: 'FREEZE', status: 'FROZEN', occurred: '2025-03-10T10:00:00Z', frozenUntilTime: at('2025-03-20T10:00:00Z') }));
    expect(frozen.freeze).toEqual({ from: at('2025-03-10T10:00:00Z'), until: at('2025-03-20T10:00:00Z') });
    const thawed = applyLedgerFact(frozen, fact({ version: 3, kind: 'UNFREEZE', frozenDays: 10, occurred: '2025-03-20T10:00:00Z' }));
    expect(thawed.freeze).toBeUndefined();
    expect(thawed.frozenDays).toBe(10);
  });

  it('copies what the ledger recorded', () => {
    const s = applyLedgerFact(undefined, fact({ expiryTime: at('2025-04-01T00:00:00Z'), graceEndTime: at('2025-04-08T00:00:00Z'), status: 'IN_GRACE', remaining: 3 }));
    expect(s).toMatchObject({ ledgerExpiryTime: at('2025-04-01T00:00:00Z'), ledgerGraceEndTime: at('2025-04-08T00:00:00Z'), status: 'IN_GRACE', remaining: 3 });
  });
});

describe('firing', () => {
  const base = { timerId: 'x', dueTime: at('2025-04-01T00:00:00Z'), expiryTime: at('2025-04-01T00:00:00Z'), graceEndTime: at('2025-04-08T00:00:00Z') };

  it('turns each kind into its ledger call', () => {
    expect(firingFor({ ...base, kind: 'ENTER_GRACE' }, base.dueTime)).toEqual({ action: 'enterGrace', expiryTime: base.expiryTime, graceEndTime: base.graceEndTime });
    expect(firingFor({ ...base, kind: 'EXPIRE' }, base.dueTime)).toEqual({ action: 'expire', dueTime: base.dueTime });
    expect(firingFor({ ...base, kind: 'UNFREEZE' }, base.dueTime)).toEqual({ action: 'unfreeze' });
    expect(firingFor({ ...base, kind: 'REMINDER' }, at('2025-03-20T00:00:00Z'))).toEqual({ action: 'remind' });
    expect(firingFor({ ...base, kind: 'REMINDER' }, at('2025-04-02T00:00:00Z')).action).toBe('skip');
  });

  it('derives a stable idempotency key from the timer id', () => {
    expect(idempotencyKeyFor('abc')).toBe(idempotencyKeyFor('abc'));
    expect(idempotencyKeyFor('abc')).not.toBe(idempotencyKeyFor('abd'));
  });

  it('retries transient failures with growing delays, rule refusals a few times, gives up on the rest', () => {
    expect(afterFailure('EXPIRE', 'unavailable', 1)).toEqual({ outcome: 'retry', delayMs: 5_000 });
    expect(afterFailure('EXPIRE', 'unavailable', 3)).toEqual({ outcome: 'retry', delayMs: 20_000 });
    expect(afterFailure('EXPIRE', 'deadline_exceeded', 11)).toEqual({ outcome: 'retry', delayMs: 3_600_000 });
    expect(afterFailure('EXPIRE', 'unavailable', MAX_ATTEMPTS)).toEqual({ outcome: 'fail' });
    expect(afterFailure('ENTER_GRACE', 'failed_precondition', 1)).toEqual({ outcome: 'retry', delayMs: 5_000 });
    expect(afterFailure('ENTER_GRACE', 'failed_precondition', 3)).toEqual({ outcome: 'fail' });
    expect(afterFailure('EXPIRE', 'not_found', 1)).toEqual({ outcome: 'fail' });
    expect(afterFailure('EXPIRE', 'permission_denied', 1)).toEqual({ outcome: 'fail' });
    expect(afterFailure('UNFREEZE', 'failed_precondition', 1)).toEqual({ outcome: 'done' });
  });
});

describe('progress', () => {
  it('reports done, remaining and rate', () => {
    const p = { done: 5_000, failed: 0, remaining: 95_000, elapsedMs: 2_000 };
    expect(rate(p)).toBe(2_500);
    expect(progressMessage(p)).toBe('expiry backlog: 5000 fired, 0 failed, 95000 remaining, 2500/s, ~38s left');
    expect(progressMessage({ done: 0, failed: 0, remaining: 10, elapsedMs: 0 })).toBe('expiry backlog: 0 fired, 0 failed, 10 remaining, 0/s');
  });
});
