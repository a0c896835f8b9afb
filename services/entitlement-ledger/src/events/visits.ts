import { timestampDate } from '@bufbuild/protobuf/wkt';
import { RetryLater, type ConsumedEvent } from '@punchcard/bus';
import type { VisitCancelled, VisitCompleted } from '@punchcard/contracts/punchcard/events/v1/visit_events_pb';
import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import { RuleViolation } from '../domain/errors.js';
import { consumeSession, reverseConsume, tenantFacts, type Caller, type OperationContext } from '../operations/ledger.js';
import type { LedgerDb } from '../store/schema.js';
import { claimVisit, updateVisit } from '../store/visits.js';

type Tx = Kysely<LedgerDb>;

/** How long to wait for a tenant's catalogue.tenant_changed before judging its visits. */
const UNKNOWN_TENANT_RETRY_MS = 5_000;

/** The booking system that reported the visit, as the actor of the entries it causes. */
function bookingSystem(event: ConsumedEvent<unknown>): Caller {
  return { tenantId: event.tenantId, subject: `visits:${event.source || 'unknown'}`, roles: ['system'] };
}

async function savepoint<T>(tx: Tx, name: string, fn: () => Promise<T>): Promise<T | RuleViolation> {
  await sql.raw(`savepoint ${name}`).execute(tx);
  try {
    const result = await fn();
    await sql.raw(`release savepoint ${name}`).execute(tx);
    return result;
  } catch (err) {
    if (!(err instanceof RuleViolation)) throw err;
    await sql.raw(`rollback to savepoint ${name}`).execute(tx);
    return err;
  }
}

/**
 * visits.visit_completed: consume one session, at most once per (tenant, visit id) whatever the
 * event id or the number of deliveries. A visit the rules refuse (no package, exhausted, BASIC plan
 * …) is recorded as REJECTED with the reason, never dropped silently; one-off visits consume nothing.
 */
export async function onVisitCompleted(
  tx: Tx,
  ctx: OperationContext & { logger?: Logger },
  event: ConsumedEvent<VisitCompleted>,
): Promise<void> {
  const v = event.data;
  if (v.visitId === '') throw new Error('visit_completed without visit_id');
  const now = ctx.clock();
  const occurredTime = v.occurredTime ? timestampDate(v.occurredTime) : event.time;
  const existing = await claimVisit(
    tx,
    {
      tenantId: event.tenantId,
      visitId: v.visitId,
      state: 'REJECTED',
      source: 'event',
      memberId: v.memberId,
      serviceCode: v.serviceCode,
      branchId: v.branchId,
      occurredTime,
      entitlementId: v.entitlementId || null,
      entryId: null,
      reversalEntryId: null,
      reason: '',
      errorCode: '',
    },
    now,
  );
  // Already consumed, rejected, cancelled or reported through the API: nothing more to do.
  if (existing) return;
  const reject = (errorCode: string, reason: string) => {
    ctx.logger?.warn({ tenantId: event.tenantId, visitId: v.visitId, memberId: v.memberId, errorCode, reason }, 'visit not deducted: recorded as REJECTED');
    return updateVisit(tx, event.tenantId, v.visitId, { state: 'REJECTED', errorCode, reason }, now);
  };

  if (v.tenantId !== '' && v.tenantId !== event.tenantId) {
    return reject('invalid_argument', `payload tenant_id ${v.tenantId} does not match the event's tenant ${event.tenantId}`);
  }
  if (v.oneOff) {
    await updateVisit(tx, event.tenantId, v.visitId, { state: 'ONE_OFF', reason: 'paid one-off' }, now);
    return;
  }
  const tenant = await tenantFacts(tx, event.tenantId);
  if (!tenant) throw new RetryLater(`tenant ${event.tenantId} is not known to the ledger yet`, UNKNOWN_TENANT_RETRY_MS);
  if (!tenant.features.has('AUTO_DEDUCTION')) {
    return reject('failed_precondition', 'auto-deduction needs FEATURE_AUTO_DEDUCTION (ADVANCED plan or higher); deduct manually');
  }
  const outcome = await savepoint(tx, 'visit_consume', () =>
    consumeSession(
      tx,
      ctx,
      bookingSystem(event),
      {
        entitlementId: v.entitlementId,
        memberId: v.memberId,
        serviceCode: v.serviceCode,
        branchId: v.branchId,
        occurredTime,
        visitId: v.visitId,
        reason: `visit ${v.visitId}`,
        visitClaimed: true,
      },
      `visit:${v.visitId}`,
    ),
  );
  if (outcome instanceof RuleViolation) await reject(outcome.kind, outcome.message);
}

/**
 * visits.visit_cancelled: reverse the session the visit consumed, if any. A cancellation that
 * arrives first is recorded, so a late visit_completed for the same visit consumes nothing.
 */
export async function onVisitCancelled(tx: Tx, ctx: OperationContext, event: ConsumedEvent<VisitCancelled>): Promise<void> {
  const v = event.data;
  if (v.visitId === '') throw new Error('visit_cancelled without visit_id');
  const now = ctx.clock();
  const reason = v.reason || `visit ${v.visitId} cancelled`;
  const existing = await claimVisit(
    tx,
    {
      tenantId: event.tenantId,
      visitId: v.visitId,
      state: 'CANCELLED',
      source: 'event',
      memberId: '',
      serviceCode: '',
      branchId: '',
      occurredTime: v.occurredTime ? timestampDate(v.occurredTime) : event.time,
      entitlementId: null,
      entryId: null,
      reversalEntryId: null,
      reason,
      errorCode: '',
    },
    now,
  );
  if (!existing) return;
  switch (existing.state) {
    case 'CANCELLED':
    case 'REVERSED':
      return;
    case 'REJECTED':
    case 'ONE_OFF':
      await updateVisit(tx, event.tenantId, v.visitId, { state: 'CANCELLED', reason }, now);
      return;
    case 'CONSUMED': {
      const outcome = await savepoint(tx, 'visit_reverse', () =>
        reverseConsume(tx, ctx, bookingSystem(event), { entryId: existing.entryId!, reason }, `visit-cancel:${v.visitId}`),
      );
      if (outcome instanceof RuleViolation) {
        await updateVisit(
          tx,
          event.tenantId,
          v.visitId,
          { reason: `cancellation could not restore the session: ${outcome.message}`, errorCode: outcome.kind },
          now,
        );
      }
    }
  }
}
