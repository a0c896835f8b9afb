import { inTransaction } from '@punchcard/db';
import { ExpiryAnchor, ExpiryMode } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { EntitlementStatus, EntryKind } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLedgerEvents } from '../src/events/ledger-consumer.js';
import { newTenantId, TestEnv } from './support/env.js';
import type { PendingEvent } from './support/fake-ledger.js';

const at = (s: string) => new Date(s);
let env: TestEnv;

beforeAll(async () => {
  env = await TestEnv.start('2025-03-01T10:00:00Z');
});

afterAll(async () => {
  await env?.close();
});

/** Histories for three packages of one tenant, made by the fake ledger (its events are not published). */
function histories(tenantId: string): PendingEvent[][] {
  const soft = { anchor: ExpiryAnchor.PURCHASE, durationDays: 30, mode: ExpiryMode.SOFT, graceDays: 5, reminderOffsetsDays: [14, 3] };
  const rolling = { anchor: ExpiryAnchor.PURCHASE, durationDays: 30, mode: ExpiryMode.HARD, rollingExtensionDays: 20 };
  const purchase = (policy: typeof soft | typeof rolling, expiry: string) =>
    env.ledger.preparePurchase({ tenantId, policy, timeZone: 'Europe/London', purchaseTime: at('2025-03-01T10:00:00Z'), expiryTime: at(expiry) });
  const a = purchase(soft, '2025-03-31T23:00:00Z');
  const b = purchase(rolling, '2025-03-31T23:00:00Z');
  const c = purchase(soft, '2025-03-31T23:00:00Z');
  return [
    [a, env.ledger.prepare(a.entitlementId, EntryKind.EXTEND, at('2025-03-05T10:00:00Z'), { expiryTime: at('2025-04-30T23:00:00Z') }, 'entitlement_extended'),
      env.ledger.prepare(a.entitlementId, EntryKind.FREEZE, at('2025-03-06T10:00:00Z'), { status: EntitlementStatus.FROZEN, frozenUntilTime: at('2025-03-16T10:00:00Z'), expiryTime: at('2025-05-10T23:00:00Z') }, 'entitlement_frozen')],
    [b, env.ledger.prepare(b.entitlementId, EntryKind.CONSUME, at('2025-03-20T10:00:00Z'), { lastUseTime: at('2025-03-20T10:00:00Z'), remaining: 9, expiryTime: at('2025-04-09T23:00:00Z') }, 'session_consumed'),
      env.ledger.prepare(b.entitlementId, EntryKind.CONSUME, at('2025-03-25T10:00:00Z'), { lastUseTime: at('2025-03-25T10:00:00Z'), remaining: 8, expiryTime: at('2025-04-14T23:00:00Z') }, 'session_consumed')],
    [c, env.ledger.prepare(c.entitlementId, EntryKind.REFUND, at('2025-03-07T10:00:00Z'), { status: EntitlementStatus.REFUNDED, remaining: 0 }, 'refunded')],
  ];
}

const event = (tenantId: string, p: PendingEvent) => ({ id: p.eventId, tenantId, data: p.message });

/** What the scheduler holds of the tenant: each package's state and timers, by its place in the history. */
async function holdings(tenantId: string, ids: string[]) {
  const rows = await env.db.db.selectFrom('entitlements').selectAll().where('tenant_id', '=', tenantId).execute();
  const timers = await env.db.db.selectFrom('timers').selectAll().where('tenant_id', '=', tenantId).orderBy('due_time').orderBy('rank').orderBy('state').execute();
  return ids.map((id) => {
    const { tenant_id: _t, entitlement_id: _e, member_id: _m, update_time: _u, ...state } = rows.find((r) => r.entitlement_id === id)!;
    return {
      state,
      timers: timers.filter((t) => t.entitlement_id === id).map((t) => [t.kind, t.state, t.due_time.toISOString(), t.offset_days]),
    };
  });
}

describe('ledger events in batches', () => {
  it('a batch (interleaved, out of order, with a repeat) leaves what applying the events one at a time leaves; a gap defers the rest of that package', async () => {
    const now = at('2025-03-01T12:00:00Z');
    const [one, many] = [newTenantId(), newTenantId()];
    const single = histories(one);
    for (const p of single.flat()) {
      expect(await inTransaction(env.db.db, (tx) => applyLedgerEvents(tx, [event(one, p)], { now }))).toEqual([]);
    }

    const batched = histories(many);
    const [a, b, c] = batched;
    // Interleaved and reversed per package, b's first consume repeated, c's refund missing its purchase at first.
    const first = [b![2]!, a![2]!, c![1]!, a![1]!, b![1]!, b![1]!, a![0]!, b![0]!].map((p) => event(many, p));
    const deferred = await inTransaction(env.db.db, (tx) => applyLedgerEvents(tx, first, { now, gapRetryMs: 10 }));
    expect(deferred).toEqual([{ eventId: c![1]!.eventId, reason: expect.stringContaining('waits for the ones before it'), delayMs: 10 }]);
    expect(await inTransaction(env.db.db, (tx) => applyLedgerEvents(tx, [event(many, c![1]!), event(many, c![0]!)], { now }))).toEqual([]);

    const ids = (h: PendingEvent[][]) => h.map((events) => events[0]!.message.entitlement!.entitlementId);
    const expected = await holdings(one, ids(single));
    expect(await holdings(many, ids(batched))).toEqual(expected);
    // The histories did move timers: planned, cancelled and planned again.
    expect(expected.flatMap((e) => e.timers.map((t) => t[1]))).toEqual(expect.arrayContaining(['PENDING', 'CANCELLED']));
  });
});
