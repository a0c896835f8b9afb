import { trace } from '@opentelemetry/api';
import { startConsumer, type Bus, type ConsumedEvent, type ConsumeOutcome, type Deferral, type RunningConsumer } from '@punchcard/bus';
import { LedgerEntryRecordedSchema, type LedgerEntryRecorded } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { uuidv7 } from '@punchcard/db';
import type { Kysely, Transaction } from 'kysely';
import type { Logger } from 'pino';
import { applyLedgerFact, ordering, type EntitlementState, type LedgerFact } from '../domain/entitlement.js';
import { validateRule } from '../domain/rules.js';
import { timerOfRequest } from '../domain/firing.js';
import { planSchedule, reconcile, type ExistingTimer, type Schedule } from '../domain/schedule.js';
import type { ExpiryDb } from '../store/schema.js';
import { cancelTimers, entitlementKey, existingTimer, insertTimers, lockEntitlements, saveEntitlements, timersOfMany, type NewTimer } from '../store/store.js';
import { ledgerFactFromEvent } from './ledger-mapping.js';

export const LEDGER_DURABLE = 'expiry_scheduler_ledger';

/** How long an event that arrived ahead of its predecessor waits before it is tried again. */
export const DEFAULT_GAP_RETRY_MS = 1_000;

export interface ApplyOptions {
  now: Date;
  logger?: Logger;
  gapRetryMs?: number;
}

/**
 * Applies a batch of ledger events as if one at a time: per entitlement, its events in version order
 * move its state (strictly in order: a gap defers that event and the entitlement's later ones, a
 * repeat changes nothing), and after each its schedule is recomputed and its timers reconciled with
 * the plan — purchase, first use, consume (rolling rules), extension, freeze and unfreeze move them;
 * exhausted, refunded, transferred, upgraded and expired cancel them. That happens in memory; the
 * entitlement rows are locked together in key order, and what changed is written with a statement
 * each (timers planned and cancelled within the batch are stored cancelled, as history). Returns the
 * deferred events.
 */
export async function applyLedgerEvents(
  tx: Transaction<ExpiryDb>,
  events: readonly Pick<ConsumedEvent<LedgerEntryRecorded>, 'id' | 'tenantId' | 'data'>[],
  { now, logger, gapRetryMs = DEFAULT_GAP_RETRY_MS }: ApplyOptions,
): Promise<Deferral[]> {
  const byEntitlement = new Map<string, { id: string; fact: LedgerFact }[]>();
  for (const event of events) {
    const fact = ledgerFactFromEvent(event.tenantId, event.data);
    const key = entitlementKey(fact);
    byEntitlement.set(key, [...(byEntitlement.get(key) ?? []), { id: event.id, fact }]);
  }
  const keys = [...byEntitlement.values()].map((facts) => ({ tenantId: facts[0]!.fact.tenantId, entitlementId: facts[0]!.fact.entitlementId }));
  const locked = await lockEntitlements(tx, keys);
  const stored = await timersOfMany(tx, keys);
  const deferred: Deferral[] = [];
  const changed: { state: EntitlementState; schedule: Schedule }[] = [];
  const cancelled: string[] = [];
  const created: NewTimer[] = [];
  for (const [key, facts] of byEntitlement) {
    let state = locked.get(key);
    let schedule: Schedule | undefined;
    const timers: Tracked[] = (stored.get(key) ?? []).map((r) => ({ ...existingTimer(r) }));
    for (const [i, { id, fact }] of facts.sort((a, b) => a.fact.version - b.fact.version).entries()) {
      const order = ordering(state?.version, fact.version);
      if (order === 'duplicate') continue;
      if (order === 'gap') {
        const reason = `entitlement ${fact.entitlementId} is at version ${state?.version ?? 0}; version ${fact.version} waits for the ones before it`;
        for (const later of facts.slice(i)) deferred.push({ eventId: later.id, reason, delayMs: gapRetryMs });
        break;
      }
      if (!state && fact.policy.customRule) {
        const problems = validateRule(fact.policy.customRule);
        if (problems.length > 0) logger?.warn({ entitlementId: fact.entitlementId, eventId: id, problems }, 'custom expiry rule is invalid; evaluating it as far as it goes');
      }
      state = applyLedgerFact(state, fact);
      schedule = planSchedule(state);
      const { cancel, create } = reconcile(timers, schedule.timers, now, timerOfRequest(fact.entry.requestId));
      for (const t of timers) {
        if (!cancel.includes(t.timerId)) continue;
        t.state = 'CANCELLED';
        if (t.planned) t.planned.state = 'CANCELLED';
        else cancelled.push(t.timerId);
      }
      for (const plan of create) {
        const planned: NewTimer = { ...plan, timerId: uuidv7(), tenantId: state.tenantId, entitlementId: state.entitlementId, state: 'PENDING' };
        created.push(planned);
        timers.push({ timerId: planned.timerId, kind: plan.kind, state: 'PENDING', dueTime: plan.dueTime, offsetDays: plan.offsetDays, planned });
      }
    }
    if (state && schedule) changed.push({ state, schedule });
  }
  await saveEntitlements(tx, changed, now);
  await cancelTimers(tx, cancelled, now);
  await insertTimers(tx, created, now);
  return deferred;
}

/** A timer of the entitlement as the batch goes: stored, or planned by an earlier event of the batch. */
type Tracked = { -readonly [K in keyof ExistingTimer]: ExistingTimer[K] } & { planned?: NewTimer };

export interface LedgerConsumerOptions {
  db: Kysely<ExpiryDb>;
  js: Bus['js'];
  namespace: string;
  clock: () => Date;
  logger?: Logger;
  gapRetryMs?: number;
  ackWaitMs?: number;
  onOutcome?: (outcome: ConsumeOutcome) => void;
}

/** The durable consumer of the ledger's entry events. */
export function startLedgerConsumer(options: LedgerConsumerOptions): Promise<RunningConsumer> {
  return startConsumer({
    db: options.db,
    js: options.js,
    namespace: options.namespace,
    stream: 'LEDGER',
    durable: LEDGER_DURABLE,
    // Every entry event of the stream, whatever its kind (each is an entitlement version, and a missing
    // one would hold the later ones back); refund, household and sharing events carry other payloads.
    schema: LedgerEntryRecordedSchema,
    otherPayloads: 'skip',
    batchHandler: async (tx, events) => {
      for (const event of events) {
        const { entitlement, entry } = event.data;
        trace.getSpan(event.traceContext)?.setAttributes({
          'tenant.id': event.tenantId,
          'entitlement.id': entitlement?.entitlementId ?? '',
          'branch.id': entry?.branchId || entitlement?.purchaseBranchId || '',
        });
      }
      return applyLedgerEvents(tx, events, {
        now: options.clock(),
        ...(options.logger ? { logger: options.logger } : {}),
        ...(options.gapRetryMs !== undefined ? { gapRetryMs: options.gapRetryMs } : {}),
      });
    },
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.ackWaitMs !== undefined ? { ackWaitMs: options.ackWaitMs } : {}),
    ...(options.onOutcome ? { onOutcome: options.onOutcome } : {}),
  });
}
