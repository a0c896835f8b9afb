import { randomUUID } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { LedgerEntryRecordedSchema } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { inTransaction } from '@punchcard/db';
import { applyLedgerFact, type EntitlementState } from '../../src/domain/entitlement.js';
import { planSchedule, reconcile } from '../../src/domain/schedule.js';
import { ledgerFactFromEvent } from '../../src/events/ledger-mapping.js';
import { insertTimers, saveEntitlements } from '../../src/store/store.js';
import { DAY, type TestEnv } from './env.js';
import type { PolicyInit } from './fake-ledger.js';

export interface BacklogSpec {
  tenantId: string;
  count: number;
  /** Expiry of the first entitlement; each next one `stepMs` later. */
  firstExpiry: Date;
  stepMs: number;
  policy: PolicyInit;
}

/**
 * A backlog without the bus: `count` entitlements the fake ledger knows at version 1, and the
 * scheduler's state and timers for them written through its own domain and store, as if their
 * purchase events had been applied while nothing fired (downtime). Returns the entitlement ids,
 * in due order.
 */
export async function seedBacklog(env: TestEnv, spec: BacklogSpec): Promise<string[]> {
  const now = env.clock.now();
  const states: EntitlementState[] = [];
  for (let i = 0; i < spec.count; i++) {
    const expiryTime = new Date(spec.firstExpiry.getTime() + i * spec.stepMs);
    const pending = env.ledger.preparePurchase({
      tenantId: spec.tenantId,
      policy: spec.policy,
      timeZone: 'UTC',
      purchaseTime: new Date(expiryTime.getTime() - 30 * DAY),
      expiryTime,
    });
    const entitlement = env.ledger.entitlements.get(pending.entitlementId)!;
    const fact = ledgerFactFromEvent(spec.tenantId, create(LedgerEntryRecordedSchema, { entitlement, entry: pending.entry }));
    states.push(applyLedgerFact(undefined, fact));
  }
  for (let i = 0; i < states.length; i += 250) {
    await inTransaction(env.db.db, async (tx) => {
      const planned = states.slice(i, i + 250).map((state) => ({ state, schedule: planSchedule(state) }));
      await saveEntitlements(tx, planned, now);
      const timers = planned.flatMap(({ state, schedule }) =>
        reconcile([], schedule.timers, now).create.map((t) => ({ ...t, timerId: randomUUID(), tenantId: state.tenantId, entitlementId: state.entitlementId, state: 'PENDING' as const })),
      );
      await insertTimers(tx, timers, now);
    });
  }
  return states.map((s) => s.entitlementId);
}
