import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { policy, state } from '../../test/support/domain.js';
import { compareDue, laterDue, planSchedule, reconcile, type DueCursor, type ExistingTimer, type PlannedTimer, type TimerState } from './schedule.js';

const at = (s: string) => new Date(s);
const summary = (timers: readonly PlannedTimer[]) => timers.map((t) => `${t.kind}${t.offsetDays ? `-${t.offsetDays}` : ''} ${t.dueTime.toISOString()}`);

describe('planSchedule', () => {
  it('HARD: reminders at the default 14 and 3 days, then expire at expiry', () => {
    const plan = planSchedule(state());
    expect(plan.expiryTime?.toISOString()).toBe('2025-03-31T23:00:00.000Z');
    expect(plan.graceEndTime).toBeUndefined();
    expect(summary(plan.timers)).toEqual([
      'REMINDER-14 2025-03-18T00:00:00.000Z',
      'REMINDER-3 2025-03-29T00:00:00.000Z',
      'EXPIRE 2025-03-31T23:00:00.000Z',
    ]);
  });

  it('reminder offsets straddling the DST change stay on local midnight', () => {
    // Expiry 00:00 BST 1 April; 14 days before is 00:00 GMT 18 March.
    const plan = planSchedule(state({ policy: policy({ anchor: 'PURCHASE', durationDays: 30, reminderOffsetsDays: [14, 1, 1, 0, -2] }) }));
    expect(summary(plan.timers)).toEqual([
      'REMINDER-14 2025-03-18T00:00:00.000Z',
      'REMINDER-1 2025-03-30T23:00:00.000Z',
      'EXPIRE 2025-03-31T23:00:00.000Z',
    ]);
  });

  it('SOFT: enter grace at expiry, expire at the grace end', () => {
    const plan = planSchedule(state({ policy: policy({ anchor: 'PURCHASE', durationDays: 30, mode: 'SOFT', graceDays: 7, reminderOffsetsDays: [7] }) }));
    expect(plan.graceEndTime?.toISOString()).toBe('2025-04-07T23:00:00.000Z');
    expect(summary(plan.timers)).toEqual([
      'REMINDER-7 2025-03-25T00:00:00.000Z',
      'ENTER_GRACE 2025-03-31T23:00:00.000Z',
      'EXPIRE 2025-04-07T23:00:00.000Z',
    ]);
    expect(plan.timers[1]).toMatchObject({ expiryTime: at('2025-03-31T23:00:00Z'), graceEndTime: at('2025-04-07T23:00:00Z') });
  });

  it('SOFT with no grace days: grace and expiry at the same instant, grace first', () => {
    const plan = planSchedule(state({ policy: policy({ anchor: 'PURCHASE', durationDays: 30, mode: 'SOFT', reminderOffsetsDays: [1] }) }));
    expect(summary(plan.timers).slice(1)).toEqual(['ENTER_GRACE 2025-03-31T23:00:00.000Z', 'EXPIRE 2025-03-31T23:00:00.000Z']);
  });

  it('IN_GRACE: only the expiry at the grace end', () => {
    const s = state({
      status: 'IN_GRACE',
      policy: policy({ anchor: 'PURCHASE', durationDays: 30, mode: 'SOFT', graceDays: 7 }),
      ledgerExpiryTime: at('2025-03-31T23:00:00Z'),
      ledgerGraceEndTime: at('2025-04-07T23:00:00Z'),
    });
    expect(summary(planSchedule(s).timers)).toEqual(['EXPIRE 2025-04-07T23:00:00.000Z']);
  });

  it('FROZEN with an end: unfreeze then, expiry pushed by the freeze', () => {
    const s = state({
      status: 'FROZEN',
      policy: policy({ anchor: 'PURCHASE', durationDays: 30, freezeExtendsExpiry: true, reminderOffsetsDays: [3] }),
      freeze: { from: at('2025-03-10T10:00:00Z'), until: at('2025-03-20T10:00:00Z') },
    });
    expect(summary(planSchedule(s).timers)).toEqual([
      'UNFREEZE 2025-03-20T10:00:00.000Z',
      'REMINDER-3 2025-04-07T23:00:00.000Z',
      'EXPIRE 2025-04-10T23:00:00.000Z',
    ]);
  });

  it('FIRST_USE before first use and never-expiring packages have nothing to fire', () => {
    expect(planSchedule(state({ policy: policy({ anchor: 'FIRST_USE', durationDays: 10 }) })).timers).toEqual([]);
    expect(planSchedule(state({ policy: policy() })).timers).toEqual([]);
  });

  it('closed entitlements have nothing to fire', () => {
    for (const status of ['EXPIRED', 'EXHAUSTED', 'REFUNDED', 'TRANSFERRED', 'UPGRADED'] as const) {
      expect(planSchedule(state({ status })).timers).toEqual([]);
    }
  });
});

describe('reconcile', () => {
  const now = at('2025-03-20T00:00:00Z');
  const plan = planSchedule(state()).timers;
  const stored = (t: PlannedTimer, i: number, s: TimerState = 'PENDING'): ExistingTimer => ({ timerId: `t${i}`, kind: t.kind, state: s, dueTime: t.dueTime, offsetDays: t.offsetDays });

  it('creates what is planned, skipping reminders already past', () => {
    const r = reconcile([], plan, now);
    expect(r.cancel).toEqual([]);
    expect(summary(r.create)).toEqual(['REMINDER-3 2025-03-29T00:00:00.000Z', 'EXPIRE 2025-03-31T23:00:00.000Z']);
  });

  it('keeps existing timers (pending, fired or failed) and cancels pending ones that left the plan', () => {
    const existing = [stored(plan[0]!, 0, 'FIRED'), stored(plan[1]!, 1), stored(plan[2]!, 2)];
    expect(reconcile(existing, plan, now)).toEqual({ cancel: [], create: [] });
    const extended = planSchedule(state({ ledgerExpiryTime: at('2025-04-30T23:00:00Z') })).timers;
    const r = reconcile(existing, extended, now);
    expect(r.cancel).toEqual(['t1', 't2']);
    expect(summary(r.create)).toEqual([
      'REMINDER-14 2025-04-16T23:00:00.000Z',
      'REMINDER-3 2025-04-27T23:00:00.000Z',
      'EXPIRE 2025-04-30T23:00:00.000Z',
    ]);
  });

  it('keeps pending the timer whose own ledger call made the change, though it left the plan', () => {
    const existing = [stored(plan[1]!, 1), stored(plan[2]!, 2)];
    const closed = planSchedule(state({ status: 'EXPIRED' })).timers;
    expect(closed).toEqual([]);
    expect(reconcile(existing, closed, now, 't2')).toEqual({ cancel: ['t1'], create: [] });
    expect(reconcile(existing, closed, now)).toEqual({ cancel: ['t1', 't2'], create: [] });
  });

  it('recreates a cancelled timer that is planned again', () => {
    const existing = [stored(plan[2]!, 2, 'CANCELLED')];
    expect(summary(reconcile(existing, plan.slice(2), now).create)).toEqual(['EXPIRE 2025-03-31T23:00:00.000Z']);
  });

  it('is idempotent: reconciling the applied result again changes nothing', () => {
    const kinds = fc.constantFrom('REMINDER', 'ENTER_GRACE', 'EXPIRE', 'UNFREEZE' as const);
    const timer = fc.record({ kind: kinds, due: fc.integer({ min: 0, max: 20 }), offsetDays: fc.integer({ min: 0, max: 2 }) });
    const states = fc.constantFrom<TimerState>('PENDING', 'FIRED', 'CANCELLED', 'FAILED');
    fc.assert(
      fc.property(fc.array(fc.tuple(timer, states)), fc.array(timer), fc.integer({ min: 0, max: 20 }), (existingSpec, plannedSpec, nowDay) => {
        const day = (n: number) => new Date(Date.UTC(2025, 0, 1 + n));
        const existing: ExistingTimer[] = existingSpec.map(([t, s], i) => ({ timerId: `x${i}`, kind: t.kind, state: s, dueTime: day(t.due), offsetDays: t.offsetDays }));
        const planned: PlannedTimer[] = plannedSpec.map((t) => ({ kind: t.kind, dueTime: day(t.due), offsetDays: t.offsetDays }));
        const first = reconcile(existing, planned, day(nowDay));
        const cancelled = new Set(first.cancel);
        const after: ExistingTimer[] = [
          ...existing.map((t) => (cancelled.has(t.timerId) ? { ...t, state: 'CANCELLED' as const } : t)),
          ...first.create.map((t, i) => ({ timerId: `n${i}`, kind: t.kind, state: 'PENDING' as const, dueTime: t.dueTime, offsetDays: t.offsetDays })),
        ];
        const second = reconcile(after, planned, day(nowDay));
        expect(second.cancel).toEqual([]);
        expect(second.create).toEqual([]);
        // Never a pending timer outside the plan.
        const plannedKeys = new Set(planned.map((t) => `${t.kind}|${t.dueTime.getTime()}|${t.offsetDays}`));
        for (const t of after) if (t.state === 'PENDING') expect(plannedKeys.has(`${t.kind}|${t.dueTime.getTime()}|${t.offsetDays}`)).toBe(true);
      }),
    );
  });
});

describe('due order', () => {
  const cursor = (dueTime: string, rank: number, timerId: string): DueCursor => ({ dueTime: new Date(dueTime), rank, timerId });
  const arbCursor = fc.record({
    dueTime: fc.integer({ min: 0, max: 5 }).map((h) => new Date(Date.UTC(2025, 0, 1, h))),
    rank: fc.integer({ min: 0, max: 3 }),
    timerId: fc.uuid(),
  });

  it('orders by due time, then rank, then timer id', () => {
    const id1 = '00000000-0000-4000-8000-000000000001';
    const id2 = '00000000-0000-4000-8000-00000000000a';
    expect(compareDue(cursor('2025-01-01T00:00:00Z', 3, id2), cursor('2025-01-01T00:00:01Z', 0, id1))).toBeLessThan(0);
    expect(compareDue(cursor('2025-01-01T00:00:00Z', 2, id2), cursor('2025-01-01T00:00:00Z', 3, id1))).toBeLessThan(0);
    expect(compareDue(cursor('2025-01-01T00:00:00Z', 3, id1), cursor('2025-01-01T00:00:00Z', 3, id2))).toBeLessThan(0);
    expect(compareDue(cursor('2025-01-01T00:00:00Z', 3, id1), cursor('2025-01-01T00:00:00Z', 3, id1))).toBe(0);
  });

  it('is antisymmetric and transitive', () => {
    fc.assert(
      fc.property(arbCursor, arbCursor, arbCursor, (a, b, c) => {
        expect(Math.sign(compareDue(a, b))).toBe(-Math.sign(compareDue(b, a)) || 0);
        if (compareDue(a, b) <= 0 && compareDue(b, c) <= 0) expect(compareDue(a, c)).toBeLessThanOrEqual(0);
      }),
    );
  });

  it('laterDue folded over claims ends at the furthest of them, whatever order they are told in', () => {
    fc.assert(
      fc.property(fc.array(arbCursor, { minLength: 1, maxLength: 20 }), (told) => {
        const furthest = told.reduce<DueCursor | undefined>((f, c) => laterDue(f, c), undefined)!;
        expect(told).toContain(furthest);
        for (const c of told) expect(compareDue(furthest, c)).toBeGreaterThanOrEqual(0);
      }),
    );
  });
});
