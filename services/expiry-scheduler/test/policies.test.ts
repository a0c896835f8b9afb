import { timestampDate } from '@bufbuild/protobuf/wkt';
import { publishEvent } from '@punchcard/bus';
import { ExpiryAnchor, ExpiryMode } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import type { ExpiryFired, ReminderDue } from '@punchcard/contracts/punchcard/events/v1/expiry_events_pb';
import { TimerKind, TimerState, type Timer } from '@punchcard/contracts/punchcard/expiry/v1/expiry_pb';
import { HouseholdChangedSchema, RefundChangedSchema, SharingChangedSchema } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { RefundApprovedSchema } from '@punchcard/contracts/punchcard/events/v1/refund_events_pb';
import { EntitlementStatus, EntryKind } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newTenantId, operator, staff, TestEnv, type Replica } from './support/env.js';

const at = (s: string) => new Date(s);
const iso = (t: { seconds: bigint; nanos: number } | undefined) => (t ? timestampDate(t as never).toISOString() : undefined);
const show = (timers: Timer[]) =>
  timers.map((t) => `${TimerKind[t.kind]}${t.offsetDays ? `-${t.offsetDays}` : ''} ${TimerState[t.state]} ${iso(t.dueTime)}${t.noOp ? ' no-op' : ''}`);

let env: TestEnv;
let replica: Replica;

beforeAll(async () => {
  env = await TestEnv.start('2025-03-01T10:00:00Z');
  replica = await env.startReplica();
});

afterAll(async () => {
  await env?.close();
});

async function schedule(tenantId: string, entitlementId: string) {
  return replica.runtime.handlers.getSchedule(staff(tenantId), { entitlementId } as never);
}

async function runDue(tenantId: string, key = `run-${Math.random()}`) {
  return replica.runtime.handlers.runDue(operator(tenantId), { idempotencyKey: key, limit: 0 } as never);
}

describe('HARD expiry (Europe/London, across the DST change)', () => {
  it('schedules reminders and expiry at local midnights, fires them in order, and mirrors what fired', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    // The ledger records the expiry of a standard policy itself: 30 days -> usable through 31 March (BST).
    const e = await env.ledger.purchase({
      tenantId,
      policy: { anchor: ExpiryAnchor.PURCHASE, durationDays: 30, mode: ExpiryMode.HARD },
      timeZone: 'Europe/London',
      purchaseTime: at('2025-03-01T10:00:00Z'),
      expiryTime: at('2025-03-31T23:00:00Z'),
    });
    await env.settle();
    const s = await schedule(tenantId, e.entitlementId);
    expect(iso(s.expiryTime)).toBe('2025-03-31T23:00:00.000Z');
    expect(s.timeZone).toBe('Europe/London');
    expect(s.entitlementVersion).toBe(1n);
    // 14 days before is still GMT (00:00Z); 3 days before too; the expiry is 00:00 BST.
    expect(show(s.timers)).toEqual([
      'REMINDER-14 PENDING 2025-03-18T00:00:00.000Z',
      'REMINDER-3 PENDING 2025-03-29T00:00:00.000Z',
      'EXPIRE PENDING 2025-03-31T23:00:00.000Z',
    ]);

    // Just before the first reminder nothing is due.
    env.clock.set('2025-03-17T23:59:59Z');
    expect(await runDue(tenantId)).toMatchObject({ fired: 0, failed: 0, remaining: 0 });

    env.clock.set('2025-03-18T00:00:00Z');
    expect(await runDue(tenantId)).toMatchObject({ fired: 1, failed: 0, remaining: 0 });

    // One minute before expiry in local time (23:59 BST on 31 March) the package is still usable.
    env.clock.set('2025-03-31T22:59:00Z');
    expect(await runDue(tenantId)).toMatchObject({ fired: 1 });
    expect(env.ledger.callsFor(e.entitlementId)).toEqual([]);

    env.clock.set('2025-03-31T23:00:00Z');
    expect(await runDue(tenantId)).toMatchObject({ fired: 1 });
    const calls = env.ledger.callsFor(e.entitlementId);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ method: 'Expire', tenantId, roles: ['system'], replay: false, instant: at('2025-03-31T23:00:00Z') });

    await env.settle();
    const after = await schedule(tenantId, e.entitlementId);
    expect(after.entitlementVersion).toBe(2n);
    expect(show(after.timers).sort()).toEqual([
      'EXPIRE FIRED 2025-03-31T23:00:00.000Z',
      'REMINDER-14 FIRED 2025-03-18T00:00:00.000Z',
      'REMINDER-3 FIRED 2025-03-29T00:00:00.000Z',
    ]);

    const events = await env.expiryEvents(tenantId);
    expect(events.map((x) => x.event)).toEqual(['reminder_due', 'reminder_due', 'expired']);
    const reminder = events[0]!.data as ReminderDue;
    expect(reminder).toMatchObject({ tenantId, entitlementId: e.entitlementId, memberId: e.memberId, offsetDays: 14, remaining: 10 });
    expect(iso(reminder.expiryTime)).toBe('2025-03-31T23:00:00.000Z');
    const expired = events[2]!.data as ExpiryFired;
    expect(iso(expired.dueTime)).toBe('2025-03-31T23:00:00.000Z');
    expect(iso(expired.firedTime)).toBe('2025-03-31T23:00:00.000Z');
  });
});

describe('SOFT expiry: grace, then expiry (America/New_York, across the DST change)', () => {
  it('enters grace at expiry with the grace end it computed, then expires at the grace end', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-02-01T15:00:00Z');
    // Bought 1 Feb (EST) for 1 month: usable through 1 March -> 00:00 EST 2 March.
    const e = await env.ledger.purchase({
      tenantId,
      policy: { anchor: ExpiryAnchor.PURCHASE, durationMonths: 1, mode: ExpiryMode.SOFT, graceDays: 10, reminderOffsetsDays: [7] },
      timeZone: 'America/New_York',
      purchaseTime: at('2025-02-01T15:00:00Z'),
      expiryTime: at('2025-03-02T05:00:00Z'),
    });
    await env.settle();
    const s = await schedule(tenantId, e.entitlementId);
    // Grace: 10 local days later, past the 9 March DST change -> 00:00 EDT 12 March = 04:00Z.
    expect(iso(s.graceEndTime)).toBe('2025-03-12T04:00:00.000Z');
    expect(show(s.timers)).toEqual([
      'REMINDER-7 PENDING 2025-02-23T05:00:00.000Z',
      'ENTER_GRACE PENDING 2025-03-02T05:00:00.000Z',
      'EXPIRE PENDING 2025-03-12T04:00:00.000Z',
    ]);

    env.clock.set('2025-02-23T05:00:00Z');
    expect(await runDue(tenantId)).toMatchObject({ fired: 1 });
    env.clock.set('2025-03-02T05:00:00Z');
    expect(await runDue(tenantId)).toMatchObject({ fired: 1 });
    await env.settle();
    expect(env.ledger.entitlements.get(e.entitlementId)!.status).toBe(EntitlementStatus.IN_GRACE);
    const grace = env.ledger.callsFor(e.entitlementId);
    expect(grace).toMatchObject([{ method: 'EnterGrace', instant: at('2025-03-02T05:00:00Z'), graceEndTime: at('2025-03-12T04:00:00Z') }]);

    // In grace the member still uses a session; nothing moves.
    await env.ledger.consume(e.entitlementId, at('2025-03-05T15:00:00Z'));
    await env.settle();
    expect(show((await schedule(tenantId, e.entitlementId)).timers).filter((t) => t.includes('PENDING'))).toEqual(['EXPIRE PENDING 2025-03-12T04:00:00.000Z']);

    env.clock.set('2025-03-12T03:59:59Z');
    expect(await runDue(tenantId)).toMatchObject({ fired: 0 });
    env.clock.set('2025-03-12T04:00:00Z');
    expect(await runDue(tenantId)).toMatchObject({ fired: 1 });
    await env.settle();
    expect(env.ledger.callsFor(e.entitlementId).map((c) => c.method)).toEqual(['EnterGrace', 'Expire']);
    expect(env.ledger.entitlements.get(e.entitlementId)!.status).toBe(EntitlementStatus.EXPIRED);
    expect((await env.expiryEvents(tenantId)).map((x) => x.event)).toEqual(['reminder_due', 'grace_started', 'expired']);
  });
});

describe('FIRST_USE activation', () => {
  it('has nothing to fire until the first use, then runs from it', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-05-01T09:00:00Z');
    const e = await env.ledger.purchase({
      tenantId,
      policy: { anchor: ExpiryAnchor.FIRST_USE, durationDays: 14, mode: ExpiryMode.HARD, reminderOffsetsDays: [3] },
      timeZone: 'Asia/Singapore',
      purchaseTime: at('2025-05-01T09:00:00Z'),
    });
    await env.settle();
    let s = await schedule(tenantId, e.entitlementId);
    expect(s.expiryTime).toBeUndefined();
    expect(s.timers).toEqual([]);

    // First visit 20 May 22:00 SGT (14:00Z): 14 days -> usable through 3 June -> 00:00 SGT 4 June.
    env.clock.set('2025-05-20T14:00:00Z');
    await env.ledger.consume(e.entitlementId, at('2025-05-20T14:00:00Z'), { expiryTime: at('2025-06-03T16:00:00Z') });
    await env.settle();
    s = await schedule(tenantId, e.entitlementId);
    expect(iso(s.expiryTime)).toBe('2025-06-03T16:00:00.000Z');
    expect(show(s.timers)).toEqual(['REMINDER-3 PENDING 2025-05-31T16:00:00.000Z', 'EXPIRE PENDING 2025-06-03T16:00:00.000Z']);
  });
});

describe('FIXED_DATE', () => {
  it('expires at the end of the fixed local date', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-06-01T09:00:00Z');
    const e = await env.ledger.purchase({
      tenantId,
      policy: { anchor: ExpiryAnchor.FIXED_DATE, fixedDate: '2025-12-31', mode: ExpiryMode.HARD, reminderOffsetsDays: [30] },
      timeZone: 'Australia/Sydney',
      purchaseTime: at('2025-06-01T09:00:00Z'),
      expiryTime: at('2025-12-31T13:00:00Z'),
    });
    await env.settle();
    const s = await schedule(tenantId, e.entitlementId);
    // Sydney is on daylight time (UTC+11) at new year: 00:00 1 Jan = 13:00Z 31 Dec.
    expect(show(s.timers)).toEqual(['REMINDER-30 PENDING 2025-12-01T13:00:00.000Z', 'EXPIRE PENDING 2025-12-31T13:00:00.000Z']);
  });
});

describe('custom rules (evaluated by the scheduler; the ledger leaves expiry unset)', () => {
  it('"30 days after the last visit, never beyond 90 days after purchase" rolls with each use and stops at the cap', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-01-31T12:00:00Z');
    const e = await env.ledger.purchase({
      tenantId,
      policy: {
        mode: ExpiryMode.HARD,
        reminderOffsetsDays: [5],
        customRule: {
          kind: {
            case: 'whicheverEarlier',
            value: { rules: [{ kind: { case: 'daysAfterLastUse', value: 30 } }, { kind: { case: 'daysAfterPurchase', value: 90 } }] },
          },
        },
      },
      timeZone: 'Europe/London',
      purchaseTime: at('2025-01-31T12:00:00Z'),
    });
    await env.settle();
    // No visit yet: 30 days after purchase -> through 2 March (GMT).
    expect(iso((await schedule(tenantId, e.entitlementId)).expiryTime)).toBe('2025-03-03T00:00:00.000Z');

    await env.ledger.consume(e.entitlementId, at('2025-02-20T10:00:00Z'));
    await env.settle();
    // Through 22 March (GMT).
    expect(iso((await schedule(tenantId, e.entitlementId)).expiryTime)).toBe('2025-03-23T00:00:00.000Z');

    await env.ledger.consume(e.entitlementId, at('2025-04-15T10:00:00Z'));
    await env.settle();
    // 30 days after 15 April is 15 May, beyond the cap: purchase + 90 = 1 May (BST) -> 23:00Z.
    const s = await schedule(tenantId, e.entitlementId);
    expect(iso(s.expiryTime)).toBe('2025-05-01T23:00:00.000Z');
    expect(show(s.timers.filter((t) => t.state === TimerState.PENDING))).toEqual([
      'REMINDER-5 PENDING 2025-04-26T23:00:00.000Z',
      'EXPIRE PENDING 2025-05-01T23:00:00.000Z',
    ]);
    // The earlier plans were cancelled, not left to fire.
    expect(s.timers.filter((t) => t.state === TimerState.CANCELLED).length).toBe(4);

    env.clock.set('2025-05-01T23:00:00Z');
    await runDue(tenantId);
    expect(env.ledger.callsFor(e.entitlementId)).toMatchObject([{ method: 'Expire', instant: at('2025-05-01T23:00:00Z'), replay: false }]);
  });

  it('SOFT, with a manager extension that later visits overtake: grace starts at the rule\'s later expiry', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-01-31T12:00:00Z');
    const e = await env.ledger.purchase({
      tenantId,
      policy: { mode: ExpiryMode.SOFT, graceDays: 7, reminderOffsetsDays: [], customRule: { kind: { case: 'daysAfterLastUse', value: 30 } } },
      timeZone: 'Europe/London',
      purchaseTime: at('2025-01-31T12:00:00Z'),
    });
    await env.ledger.extend(e.entitlementId, at('2025-02-10T10:00:00Z'), at('2025-03-16T00:00:00Z'));
    await env.ledger.consume(e.entitlementId, at('2025-02-28T10:00:00Z'));
    await env.settle();
    // 30 days after 28 Feb: through 30 March; 00:00 BST on 31 March is 23:00Z on the 30th, past the extended date.
    expect(iso((await schedule(tenantId, e.entitlementId)).expiryTime)).toBe('2025-03-30T23:00:00.000Z');

    env.clock.set('2025-03-30T23:00:00Z');
    await runDue(tenantId);
    expect(env.ledger.callsFor(e.entitlementId)).toMatchObject([{ method: 'EnterGrace', instant: at('2025-03-30T23:00:00Z'), replay: false }]);
    expect(env.ledger.entitlements.get(e.entitlementId)!.status).toBe(EntitlementStatus.IN_GRACE);
    await env.settle();
    const s = await schedule(tenantId, e.entitlementId);
    // Grace: 7 days after the last usable day (30 March) ends with 6 April.
    expect(show(s.timers.filter((t) => t.state === TimerState.PENDING))).toEqual(['EXPIRE PENDING 2025-04-06T23:00:00.000Z']);
  });

  it('months after purchase clamp to the month end: 31 Jan + 1 month ends with 28 Feb', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-01-31T20:00:00Z');
    const e = await env.ledger.purchase({
      tenantId,
      policy: { mode: ExpiryMode.HARD, customRule: { kind: { case: 'monthsAfterPurchase', value: 1 } } },
      timeZone: 'America/New_York',
      purchaseTime: at('2025-01-31T20:00:00Z'),
    });
    await env.settle();
    expect(iso((await schedule(tenantId, e.entitlementId)).expiryTime)).toBe('2025-03-01T05:00:00.000Z');
  });
});

describe('rolling extension (standard policy)', () => {
  it('each use the ledger records pushes the schedule', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-07-01T09:00:00Z');
    const e = await env.ledger.purchase({
      tenantId,
      policy: { anchor: ExpiryAnchor.PURCHASE, durationDays: 30, rollingExtensionDays: 45, mode: ExpiryMode.HARD, reminderOffsetsDays: [2] },
      timeZone: 'UTC',
      purchaseTime: at('2025-07-01T09:00:00Z'),
      expiryTime: at('2025-08-01T00:00:00Z'),
    });
    await env.settle();
    await env.ledger.consume(e.entitlementId, at('2025-07-20T09:00:00Z'), { expiryTime: at('2025-09-04T00:00:00Z') });
    await env.settle();
    const s = await schedule(tenantId, e.entitlementId);
    expect(show(s.timers.filter((t) => t.state === TimerState.PENDING))).toEqual(['REMINDER-2 PENDING 2025-09-02T00:00:00.000Z', 'EXPIRE PENDING 2025-09-04T00:00:00.000Z']);
  });
});

describe('reopening', () => {
  it('a reversal that gives an exhausted package a session back plans its expiry again', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    const e = await env.ledger.purchase({
      tenantId,
      policy: { anchor: ExpiryAnchor.PURCHASE, durationDays: 30, mode: ExpiryMode.HARD, reminderOffsetsDays: [3] },
      timeZone: 'Europe/London',
      purchaseTime: at('2025-03-01T10:00:00Z'),
      expiryTime: at('2025-03-31T23:00:00Z'),
      sessions: 1,
    });
    await env.ledger.consume(e.entitlementId, at('2025-03-05T10:00:00Z'));
    await env.settle();
    expect((await schedule(tenantId, e.entitlementId)).timers.map((t) => TimerState[t.state])).toEqual(['CANCELLED', 'CANCELLED']);
    await env.ledger.record(e.entitlementId, EntryKind.REVERSAL, at('2025-03-06T10:00:00Z'), { status: EntitlementStatus.ACTIVE, remaining: 1 }, 'consume_reversed');
    await env.settle();
    const s = await schedule(tenantId, e.entitlementId);
    expect(show(s.timers.filter((t) => t.state === TimerState.PENDING))).toEqual([
      'REMINDER-3 PENDING 2025-03-29T00:00:00.000Z',
      'EXPIRE PENDING 2025-03-31T23:00:00.000Z',
    ]);
  });
});

describe('closing entries cancel pending timers', () => {
  for (const [label, status, kind, event] of [
    ['exhausted', EntitlementStatus.EXHAUSTED, EntryKind.CONSUME, 'session_consumed'],
    ['refunded', EntitlementStatus.REFUNDED, EntryKind.REFUND, 'refunded'],
    ['transferred', EntitlementStatus.TRANSFERRED, EntryKind.TRANSFER_OUT, 'transferred_out'],
    ['upgraded', EntitlementStatus.UPGRADED, EntryKind.UPGRADE_OUT, 'upgraded_out'],
  ] as const) {
    it(label, async () => {
      const tenantId = newTenantId();
      env.clock.set('2025-03-01T10:00:00Z');
      const e = await env.ledger.purchase({
        tenantId,
        policy: { anchor: ExpiryAnchor.PURCHASE, durationDays: 30, mode: ExpiryMode.HARD },
        timeZone: 'Europe/London',
        purchaseTime: at('2025-03-01T10:00:00Z'),
        expiryTime: at('2025-03-31T23:00:00Z'),
      });
      await env.ledger.record(e.entitlementId, kind, at('2025-03-05T10:00:00Z'), { status, remaining: 0 }, event);
      await env.settle();
      const s = await schedule(tenantId, e.entitlementId);
      expect(s.timers.map((t) => TimerState[t.state])).toEqual(['CANCELLED', 'CANCELLED', 'CANCELLED']);
      env.clock.set('2025-04-30T00:00:00Z');
      expect(await runDue(tenantId)).toMatchObject({ fired: 0, remaining: 0 });
      expect(env.ledger.callsFor(e.entitlementId)).toEqual([]);
    });
  }
});

describe('events on LEDGER that are not entries', () => {
  it('refund, household and sharing events are not read; the entries around them apply in order', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    const e = await env.ledger.purchase({
      tenantId,
      policy: { anchor: ExpiryAnchor.PURCHASE, durationDays: 30, mode: ExpiryMode.HARD },
      timeZone: 'Europe/London',
      purchaseTime: at('2025-03-01T10:00:00Z'),
      expiryTime: at('2025-03-31T23:00:00Z'),
    });
    const base = { namespace: env.namespace, source: '/punchcard/entitlement-ledger', producer: 'ledger', tenantId } as const;
    const refund = { tenantId, refundId: 'r-1', entitlementId: e.entitlementId };
    await publishEvent(env.bus.js, { ...base, event: 'refund_requested', aggregateId: 'r-1', aggregateVersion: 1, schema: RefundChangedSchema, message: { refund } });
    await publishEvent(env.bus.js, { ...base, event: 'refund_approved', aggregateId: 'r-1', schema: RefundApprovedSchema, message: { ...refund, memberId: e.memberId } });
    await publishEvent(env.bus.js, { ...base, event: 'household_changed', aggregateId: 'h-1', aggregateVersion: 1, schema: HouseholdChangedSchema, message: { household: { tenantId, householdId: 'h-1' } } });
    await publishEvent(env.bus.js, { ...base, event: 'entitlement_shared', aggregateId: e.entitlementId, schema: SharingChangedSchema, message: { entitlement: e, householdId: 'h-1' } });
    await env.ledger.consume(e.entitlementId, at('2025-03-05T10:00:00Z'));
    await env.settle();
    expect(env.deadLetters).toEqual([]);
    expect(iso((await schedule(tenantId, e.entitlementId)).expiryTime)).toBe('2025-03-31T23:00:00.000Z');
  });
});
