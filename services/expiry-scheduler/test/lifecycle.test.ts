import { timestampDate } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import { ExpiryAnchor, ExpiryMode } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { TimerKind, TimerState, type Timer } from '@punchcard/contracts/punchcard/expiry/v1/expiry_pb';
import { EntitlementStatus, EntryKind } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { housekeep } from '../src/housekeeping.js';
import { newTenantId, operator, staff, TestEnv, type Replica } from './support/env.js';

const at = (s: string) => new Date(s);
const iso = (t: { seconds: bigint; nanos: number } | undefined) => (t ? timestampDate(t as never).toISOString() : undefined);
const pending = (timers: Timer[]) =>
  timers.filter((t) => t.state === TimerState.PENDING).map((t) => `${TimerKind[t.kind]}${t.offsetDays ? `-${t.offsetDays}` : ''} ${iso(t.dueTime)}`);

let env: TestEnv;
let replica: Replica;

beforeAll(async () => {
  env = await TestEnv.start('2025-03-01T10:00:00Z');
  replica = await env.startReplica();
});

afterAll(async () => {
  await env?.close();
});

const schedule = (tenantId: string, entitlementId: string) => replica.runtime.handlers.getSchedule(staff(tenantId), { entitlementId } as never);
const runDue = (tenantId: string) => replica.runtime.handlers.runDue(operator(tenantId), { idempotencyKey: `run-${Math.random()}`, limit: 0 } as never);

const london = { anchor: ExpiryAnchor.PURCHASE, durationDays: 30, mode: ExpiryMode.HARD, reminderOffsetsDays: [3] };

describe('freeze', () => {
  it('a freeze the ledger records pushes expiry out; the scheduler unfreezes at its end', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    const e = await env.ledger.purchase({
      tenantId,
      policy: { ...london, maxFreezeDays: 30, freezeExtendsExpiry: true },
      timeZone: 'Europe/London',
      purchaseTime: at('2025-03-01T10:00:00Z'),
      expiryTime: at('2025-03-31T23:00:00Z'),
    });
    env.clock.set('2025-03-10T10:00:00Z');
    // Frozen for 10 days: the ledger pushes expiry 10 local days, to 00:00 BST 11 April.
    await env.ledger.freeze(e.entitlementId, at('2025-03-10T10:00:00Z'), at('2025-03-20T10:00:00Z'), at('2025-04-10T23:00:00Z'));
    await env.settle();
    let s = await schedule(tenantId, e.entitlementId);
    expect(iso(s.expiryTime)).toBe('2025-04-10T23:00:00.000Z');
    expect(pending(s.timers)).toEqual(['UNFREEZE 2025-03-20T10:00:00.000Z', 'REMINDER-3 2025-04-07T23:00:00.000Z', 'EXPIRE 2025-04-10T23:00:00.000Z']);

    env.clock.set('2025-03-20T10:00:00Z');
    expect(await runDue(tenantId)).toMatchObject({ fired: 1 });
    expect(env.ledger.callsFor(e.entitlementId)).toMatchObject([{ method: 'Unfreeze', tenantId, replay: false }]);
    await env.settle();
    s = await schedule(tenantId, e.entitlementId);
    expect(env.ledger.entitlements.get(e.entitlementId)!.status).toBe(EntitlementStatus.ACTIVE);
    expect(pending(s.timers)).toEqual(['REMINDER-3 2025-04-07T23:00:00.000Z', 'EXPIRE 2025-04-10T23:00:00.000Z']);
  });

  it('for a custom rule the scheduler pushes its own expiry by the frozen days', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    const e = await env.ledger.purchase({
      tenantId,
      policy: { mode: ExpiryMode.HARD, maxFreezeDays: 30, freezeExtendsExpiry: true, reminderOffsetsDays: [3], customRule: { kind: { case: 'daysAfterPurchase', value: 30 } } },
      timeZone: 'Europe/London',
      purchaseTime: at('2025-03-01T10:00:00Z'),
    });
    await env.settle();
    expect(iso((await schedule(tenantId, e.entitlementId)).expiryTime)).toBe('2025-03-31T23:00:00.000Z');
    await env.ledger.freeze(e.entitlementId, at('2025-03-10T10:00:00Z'), at('2025-03-17T10:00:00Z'));
    await env.settle();
    const s = await schedule(tenantId, e.entitlementId);
    expect(iso(s.expiryTime)).toBe('2025-04-07T23:00:00.000Z');
    expect(pending(s.timers)).toEqual(['UNFREEZE 2025-03-17T10:00:00.000Z', 'REMINDER-3 2025-04-04T23:00:00.000Z', 'EXPIRE 2025-04-07T23:00:00.000Z']);

    // Unfrozen early by staff after 3 days: only 3 days count.
    await env.ledger.record(e.entitlementId, EntryKind.UNFREEZE, at('2025-03-13T10:00:00Z'), { status: EntitlementStatus.ACTIVE, frozenUntilTime: null, frozenDays: 3 }, 'entitlement_unfrozen');
    await env.settle();
    const thawed = await schedule(tenantId, e.entitlementId);
    expect(iso(thawed.expiryTime)).toBe('2025-04-03T23:00:00.000Z');
    expect(pending(thawed.timers)).toEqual(['REMINDER-3 2025-03-31T23:00:00.000Z', 'EXPIRE 2025-04-03T23:00:00.000Z']);
  });
});

describe('extension', () => {
  it('a manager extension reschedules: old timers cancelled, new ones planned', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    const e = await env.ledger.purchase({ tenantId, policy: london, timeZone: 'Europe/London', purchaseTime: at('2025-03-01T10:00:00Z'), expiryTime: at('2025-03-31T23:00:00Z') });
    env.clock.set('2025-03-25T10:00:00Z');
    await env.ledger.extend(e.entitlementId, at('2025-03-25T10:00:00Z'), at('2025-04-30T23:00:00Z'));
    await env.settle();
    const s = await schedule(tenantId, e.entitlementId);
    expect(iso(s.expiryTime)).toBe('2025-04-30T23:00:00.000Z');
    expect(pending(s.timers)).toEqual(['REMINDER-3 2025-04-27T23:00:00.000Z', 'EXPIRE 2025-04-30T23:00:00.000Z']);
    expect(s.timers.filter((t) => t.state === TimerState.CANCELLED).map((t) => TimerKind[t.kind]).sort()).toEqual(['EXPIRE', 'REMINDER']);

    env.clock.set('2025-04-01T00:00:00Z');
    expect(await runDue(tenantId)).toMatchObject({ fired: 0 });
    expect(env.ledger.callsFor(e.entitlementId)).toEqual([]);
  });

  it('an extension during grace makes the package active again and plans grace anew', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    const e = await env.ledger.purchase({
      tenantId,
      policy: { ...london, mode: ExpiryMode.SOFT, graceDays: 5 },
      timeZone: 'Europe/London',
      purchaseTime: at('2025-03-01T10:00:00Z'),
      expiryTime: at('2025-03-31T23:00:00Z'),
    });
    await env.settle();
    env.clock.set('2025-04-01T08:00:00Z');
    await runDue(tenantId);
    await env.settle();
    expect(env.ledger.entitlements.get(e.entitlementId)!.status).toBe(EntitlementStatus.IN_GRACE);
    expect(pending((await schedule(tenantId, e.entitlementId)).timers)).toEqual(['EXPIRE 2025-04-05T23:00:00.000Z']);

    await env.ledger.extend(e.entitlementId, at('2025-04-02T10:00:00Z'), at('2025-05-31T23:00:00Z'));
    await env.settle();
    expect(pending((await schedule(tenantId, e.entitlementId)).timers)).toEqual([
      'REMINDER-3 2025-05-28T23:00:00.000Z',
      'ENTER_GRACE 2025-05-31T23:00:00.000Z',
      'EXPIRE 2025-06-05T23:00:00.000Z',
    ]);
  });
});

describe('housekeeping', () => {
  it('prunes cancelled timers a month old by the service clock, keeps pending and fired ones', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    const e = await env.ledger.purchase({ tenantId, policy: london, timeZone: 'Europe/London', purchaseTime: at('2025-03-01T10:00:00Z'), expiryTime: at('2025-03-31T23:00:00Z') });
    await env.ledger.extend(e.entitlementId, at('2025-03-02T10:00:00Z'), at('2025-06-30T23:00:00Z'));
    await env.settle();
    const states = async () => (await schedule(tenantId, e.entitlementId)).timers.map((t) => TimerState[t.state]).sort();
    expect(await states()).toEqual(['CANCELLED', 'CANCELLED', 'PENDING', 'PENDING']);
    expect((await housekeep(env.db.db, at('2025-03-20T00:00:00Z'))).cancelledTimers).toBe(0);
    const pruned = await housekeep(env.db.db, at('2025-04-02T00:00:00Z'));
    expect(pruned.cancelledTimers).toBeGreaterThanOrEqual(2);
    expect(await states()).toEqual(['PENDING', 'PENDING']);
  });
});

describe('ordering per entitlement', () => {
  it('an event that arrives before its predecessor waits for it; a redelivered one changes nothing', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    const purchase = env.ledger.preparePurchase({ tenantId, policy: london, timeZone: 'Europe/London', purchaseTime: at('2025-03-01T10:00:00Z'), expiryTime: at('2025-03-31T23:00:00Z') });
    const id = purchase.entitlementId;
    const extend1 = env.ledger.prepare(id, EntryKind.EXTEND, at('2025-03-02T10:00:00Z'), { expiryTime: at('2025-04-30T23:00:00Z') }, 'entitlement_extended');
    const extend2 = env.ledger.prepare(id, EntryKind.EXTEND, at('2025-03-03T10:00:00Z'), { expiryTime: at('2025-05-31T23:00:00Z') }, 'entitlement_extended');
    // Published 3, 1, 2 - and 2 once more.
    await extend2.publish();
    await purchase.publish();
    await extend1.publish();
    await extend1.publish();
    await env.settle();
    const s = await schedule(tenantId, id);
    expect(s.entitlementVersion).toBe(3n);
    expect(iso(s.expiryTime)).toBe('2025-05-31T23:00:00.000Z');
    expect(pending(s.timers)).toEqual(['REMINDER-3 2025-05-28T23:00:00.000Z', 'EXPIRE 2025-05-31T23:00:00.000Z']);
  });
});

describe('ledger failures', () => {
  it('a transient failure is retried with backoff under the same idempotency key', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    const e = await env.ledger.purchase({ tenantId, policy: london, timeZone: 'Europe/London', purchaseTime: at('2025-03-01T10:00:00Z'), expiryTime: at('2025-03-31T23:00:00Z') });
    await env.settle();
    env.clock.set('2025-04-01T00:00:00Z');
    env.ledger.failNext(2, Code.Unavailable);
    expect(await runDue(tenantId)).toMatchObject({ fired: 1, failed: 0, remaining: 1 });
    let expire = (await schedule(tenantId, e.entitlementId)).timers.find((t) => t.kind === TimerKind.EXPIRE)!;
    expect(expire).toMatchObject({ state: TimerState.PENDING, attempts: 1 });
    expect(expire.lastError).toContain('having a moment');

    // Not before the backoff has passed.
    expect(await runDue(tenantId)).toMatchObject({ fired: 0, remaining: 1 });
    env.clock.advance(5_000);
    expect(await runDue(tenantId)).toMatchObject({ fired: 0, remaining: 1 });
    env.clock.advance(10_000);
    expect(await runDue(tenantId)).toMatchObject({ fired: 1, remaining: 0 });
    expire = (await schedule(tenantId, e.entitlementId)).timers.find((t) => t.kind === TimerKind.EXPIRE)!;
    expect(expire).toMatchObject({ state: TimerState.FIRED, attempts: 3, lastError: '' });
    const calls = env.ledger.callsFor(e.entitlementId);
    expect(calls.map((c) => c.idempotencyKey)).toEqual([calls[0]!.idempotencyKey, calls[0]!.idempotencyKey, calls[0]!.idempotencyKey]);
    expect(env.ledger.entitlements.get(e.entitlementId)!.status).toBe(EntitlementStatus.EXPIRED);
  });

  it('a refusal that does not settle fails the timer for an operator', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    const e = await env.ledger.purchase({ tenantId, policy: london, timeZone: 'Europe/London', purchaseTime: at('2025-03-01T10:00:00Z'), expiryTime: at('2025-03-31T23:00:00Z') });
    await env.settle();
    env.clock.set('2025-04-01T00:00:00Z');
    env.ledger.failNext(1, Code.NotFound);
    expect(await runDue(tenantId)).toMatchObject({ fired: 1, failed: 1, remaining: 0 });
    const expire = (await schedule(tenantId, e.entitlementId)).timers.find((t) => t.kind === TimerKind.EXPIRE)!;
    expect(expire).toMatchObject({ state: TimerState.FAILED, attempts: 1 });
    // Nothing retries it on its own ...
    expect(await runDue(tenantId)).toMatchObject({ fired: 0, failed: 0, remaining: 0 });
    // ... until an operator, having fixed the cause, asks for it.
    const retried = await replica.runtime.handlers.runDue(operator(tenantId), { idempotencyKey: 'retry-1', limit: 0, retryFailed: true } as never);
    expect(retried).toMatchObject({ fired: 1, failed: 0, remaining: 0 });
    expect(env.ledger.entitlements.get(e.entitlementId)!.status).toBe(EntitlementStatus.EXPIRED);
    expect(env.ledger.callsFor(e.entitlementId).map((c) => c.idempotencyKey)).toEqual([expire.timerId, expire.timerId].map((id) => `expiry-timer-${id}`));
  });

  it('the ledger event of a call whose sweep died before recording it leaves the timer to fire and announce', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    const e = await env.ledger.purchase({ tenantId, policy: london, timeZone: 'Europe/London', purchaseTime: at('2025-03-01T10:00:00Z'), expiryTime: at('2025-03-31T23:00:00Z') });
    await env.settle();
    env.clock.set('2025-04-01T00:00:00Z');
    const timer = (await schedule(tenantId, e.entitlementId)).timers.find((t) => t.kind === TimerKind.EXPIRE)!;
    // What a sweep sends before it dies: the ledger applies it and publishes entitlement_expired.
    const call = { action: 'expire' as const, idempotencyKey: `expiry-timer-${timer.timerId}`, entitlementId: e.entitlementId, dueTime: at('2025-03-31T23:00:00Z'), reason: 'due' };
    expect(await replica.ledger.expireBatch(tenantId, [call])).toEqual([{ changed: true }]);
    await env.settle();
    // The entitlement is expired: its reminder is cancelled, but not its expiry timer, which did it.
    const s = await schedule(tenantId, e.entitlementId);
    expect(s.timers.map((t) => [TimerKind[t.kind], TimerState[t.state]])).toEqual([['EXPIRE', 'PENDING'], ['REMINDER', 'CANCELLED']]);
    expect(await runDue(tenantId)).toMatchObject({ fired: 1, failed: 0 });
    expect((await schedule(tenantId, e.entitlementId)).timers.find((t) => t.timerId === timer.timerId)).toMatchObject({ state: TimerState.FIRED, noOp: false });
    expect(env.ledger.callsFor(e.entitlementId).map((c) => c.replay)).toEqual([false, true]);
    expect((await env.expiryEvents(tenantId)).filter((x) => x.event === 'expired').map((x) => x.id)).toEqual([timer.timerId]);
  });

  it('a stale call (the ledger answers without an entry) is recorded as a no-op and announces nothing', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    const e = await env.ledger.purchase({ tenantId, policy: london, timeZone: 'Europe/London', purchaseTime: at('2025-03-01T10:00:00Z'), expiryTime: at('2025-03-31T23:00:00Z') });
    await env.settle();
    // The ledger extended, but the scheduler fires before the event reaches it.
    env.ledger.entitlements.get(e.entitlementId)!.expiryTime = { $typeName: 'google.protobuf.Timestamp', seconds: BigInt(Date.parse('2025-06-01T00:00:00Z') / 1000), nanos: 0 };
    env.clock.set('2025-04-01T00:00:00Z');
    expect(await runDue(tenantId)).toMatchObject({ fired: 2 });
    const expire = (await schedule(tenantId, e.entitlementId)).timers.find((t) => t.kind === TimerKind.EXPIRE)!;
    expect(expire).toMatchObject({ state: TimerState.FIRED, noOp: true });
    // The reminder was late past the expiry (skipped); the expiry changed nothing: nothing to announce.
    expect(await env.expiryEvents(tenantId)).toEqual([]);
    expect(env.ledger.entitlements.get(e.entitlementId)!.status).toBe(EntitlementStatus.ACTIVE);
  });
});

describe('reminders', () => {
  it('default to 14 and 3 days; one already past when planned is not created', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-20T10:00:00Z');
    const e = await env.ledger.purchase({
      tenantId,
      policy: { anchor: ExpiryAnchor.PURCHASE, durationDays: 10, mode: ExpiryMode.HARD },
      timeZone: 'Europe/London',
      purchaseTime: at('2025-03-20T10:00:00Z'),
      expiryTime: at('2025-03-30T23:00:00Z'),
    });
    await env.settle();
    expect(pending((await schedule(tenantId, e.entitlementId)).timers)).toEqual(['REMINDER-3 2025-03-28T00:00:00.000Z', 'EXPIRE 2025-03-30T23:00:00.000Z']);
  });
});
