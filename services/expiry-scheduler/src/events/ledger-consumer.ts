import { trace } from '@opentelemetry/api';
import { RetryLater, startConsumer, type Bus, type ConsumedEvent, type ConsumeOutcome, type RunningConsumer } from '@punchcard/bus';
import { LedgerEntryRecordedSchema, type LedgerEntryRecorded } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import type { Kysely, Transaction } from 'kysely';
import type { Logger } from 'pino';
import { applyLedgerFact, ordering } from '../domain/entitlement.js';
import { validateRule } from '../domain/rules.js';
import { planSchedule, reconcile } from '../domain/schedule.js';
import type { ExpiryDb } from '../store/schema.js';
import { applyReconciliation, existingTimer, lockEntitlement, saveEntitlement, timersOf } from '../store/store.js';
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
 * Applies one ledger event: the entitlement's state moves to the event's version (strictly in order;
 * a gap waits), its schedule is recomputed, and its timers are reconciled with the plan — purchase,
 * first use, consume (rolling rules), extension, freeze and unfreeze move them; exhausted, refunded,
 * transferred, upgraded and expired cancel them.
 */
export async function applyLedgerEvent(
  tx: Transaction<ExpiryDb>,
  event: Pick<ConsumedEvent<LedgerEntryRecorded>, 'tenantId' | 'data'>,
  { now, logger, gapRetryMs = DEFAULT_GAP_RETRY_MS }: ApplyOptions,
): Promise<'applied' | 'duplicate'> {
  const fact = ledgerFactFromEvent(event.tenantId, event.data);
  const prev = await lockEntitlement(tx, fact.tenantId, fact.entitlementId);
  switch (ordering(prev?.version, fact.version)) {
    case 'duplicate':
      return 'duplicate';
    case 'gap':
      throw new RetryLater(`entitlement ${fact.entitlementId} is at version ${prev?.version ?? 0}; version ${fact.version} waits for the ones before it`, gapRetryMs);
    case 'apply':
      break;
  }
  if (!prev && fact.policy.customRule) {
    const problems = validateRule(fact.policy.customRule);
    if (problems.length > 0) logger?.warn({ entitlementId: fact.entitlementId, problems }, 'custom expiry rule is invalid; evaluating it as far as it goes');
  }
  const next = applyLedgerFact(prev, fact);
  const schedule = planSchedule(next);
  await saveEntitlement(tx, next, schedule, now);
  const existing = (await timersOf(tx, next.tenantId, next.entitlementId)).map(existingTimer);
  await applyReconciliation(tx, next, reconcile(existing, schedule.timers, now), now);
  return 'applied';
}

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
    handler: async (tx, event) => {
      const { entitlement, entry } = event.data;
      trace.getActiveSpan()?.setAttributes({
        'tenant.id': event.tenantId,
        'entitlement.id': entitlement?.entitlementId ?? '',
        'branch.id': entry?.branchId || entitlement?.purchaseBranchId || '',
      });
      await applyLedgerEvent(tx, event, {
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
