import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { context, ROOT_CONTEXT, trace, type Context } from '@opentelemetry/api';
import { enqueue, enqueueMany, traceHeaders, type OwnWrite } from '@punchcard/bus';
import { answerWrite } from '@punchcard/db';
import {
  HouseholdChangedSchema,
  LedgerEntryRecordedSchema,
  RefundChangedSchema,
  SharingChangedSchema,
} from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { RefundApprovedSchema } from '@punchcard/contracts/punchcard/events/v1/refund_events_pb';
import type { Kysely } from 'kysely';
import type { EntryKind } from '../domain/types.js';
import { encodeMovement } from '../proto/encoded.js';
import { entitlementToProto, householdToProto, refundToProto } from '../proto/mapping.js';
import { entryRow, type Actor, type EntitlementRecord, type EntryRecord } from '../store/entitlements.js';
import type { HouseholdRecord } from '../store/households.js';
import type { RefundRecord } from '../store/refunds.js';

export const PRODUCER = 'ledger';

/** The event each entry kind publishes (`ledger.<name>`); every one carries `LedgerEntryRecorded`. */
export const EVENT_BY_KIND: Partial<Record<EntryKind, string>> = {
  PURCHASE: 'entitlement_purchased',
  CONSUME: 'session_consumed',
  REVERSAL: 'consume_reversed',
  EXTEND: 'entitlement_extended',
  FREEZE: 'entitlement_frozen',
  UNFREEZE: 'entitlement_unfrozen',
  GRACE: 'grace_started',
  EXPIRE: 'entitlement_expired',
  TRANSFER_OUT: 'transferred_out',
  TRANSFER_IN: 'transferred_in',
  TOP_UP: 'topped_up',
  UPGRADE_OUT: 'upgraded_out',
  UPGRADE_IN: 'upgraded_in',
  REFUND: 'refunded',
};

/**
 * Events that are not entries (they move no sessions and carry no entitlement version), with their
 * payloads. Consumers of the LEDGER stream that read only LedgerEntryRecorded should filter on the
 * entry events' subjects.
 */
export const NON_ENTRY_EVENTS = {
  refund_requested: RefundChangedSchema.typeName,
  refund_approved: RefundApprovedSchema.typeName,
  refund_rejected: RefundChangedSchema.typeName,
  refund_payout_failed: RefundChangedSchema.typeName,
  household_changed: HouseholdChangedSchema.typeName,
  entitlement_shared: SharingChangedSchema.typeName,
  entitlement_unshared: SharingChangedSchema.typeName,
} as const;

/**
 * Writes one entry and its event to the outbox in the caller's transaction, in one statement: the
 * event is published if and only if the entry commits, with the entitlement version for
 * per-entitlement ordering and the entry id as the event id (so the event of an entry is recognisable
 * wherever it is seen). The entries' trigger checks the entry against the saved entitlement once the
 * statement is done, so the row is saved before it or by `saving` (entitlementUpdate), in the same
 * statement. Returns the event's payload, which is also
 * the answer of a movement RPC (see encodeMovement); inside the RPC's idempotency claim it is stored
 * as the answer in the same statement.
 */
export async function insertEntryWithEvent(tx: Kysely<any>, entitlement: EntitlementRecord, entry: EntryRecord, saving?: OwnWrite): Promise<Uint8Array> {
  trace.getActiveSpan()?.setAttributes(movementAttributes(entitlement, entry));
  const payload = encodeMovement({ entitlement, entry });
  const writes: OwnWrite[] = [(q) => q.insertInto('entries').values(entryRow(entry))];
  if (saving) writes.push(saving);
  // The payload is the RPC's answer too: stored with the effect when it is the answer of the request.
  const answer = answerWrite(tx, payload);
  if (answer) writes.push(answer);
  await enqueue(tx, entryEvent(entitlement, entry, payload), { alongside: writes });
  return payload;
}

/**
 * {@link insertEntryWithEvent}'s events for the entries of one batch operation of a tenant: the same events, in
 * one insert, each with its payload already encoded (see encodeMovement). An entry made for a request
 * of its own (a consume of a group commit) names that request's trace; the others carry the active one.
 * `alongside`: writes of the same statement (see enqueueMany).
 */
export async function enqueueEntryEvents(
  tx: Kysely<any>,
  recorded: readonly { entitlement: EntitlementRecord; entry: EntryRecord; payload: Uint8Array; trace?: Context | undefined }[],
  alongside: readonly OwnWrite[] = [],
): Promise<void> {
  if (recorded.length === 0) return;
  trace.getActiveSpan()?.setAttributes({ 'tenant.id': recorded[0]!.entitlement.tenantId, 'entitlement.count': recorded.length });
  const own = recorded.some((r) => r.trace !== undefined);
  const inputs = recorded.map(({ entitlement, entry, payload, trace: cause }) => {
    if (cause) trace.getSpan(cause)?.setAttributes(movementAttributes(entitlement, entry));
    return entryEvent(entitlement, entry, payload, cause ? traceHeaders(cause) : undefined);
  });
  // enqueueMany puts the active trace over the given headers: with traces of their own there must be none.
  const write = () => enqueueMany(tx, inputs, { alongside });
  await (own ? context.with(ROOT_CONTEXT, write) : write());
}

/** What tags the span of the RPC or visit event that made a movement, so a trace is found by any of them. */
function movementAttributes(entitlement: EntitlementRecord, entry: EntryRecord) {
  return {
    'tenant.id': entitlement.tenantId,
    'entitlement.id': entitlement.entitlementId,
    'branch.id': entry.branchId || entitlement.purchaseBranchId,
  };
}

/** An entry's event, in one literal: keys added after a spread would give each one a hidden class of its own (see entryRecord). */
function entryEvent(entitlement: EntitlementRecord, entry: EntryRecord, payload: Uint8Array, headers?: Record<string, string>) {
  const event = EVENT_BY_KIND[entry.kind];
  if (!event) throw new Error(`no ledger event is defined for ${entry.kind} entries`);
  return {
    producer: PRODUCER,
    event,
    tenantId: entitlement.tenantId,
    aggregateId: entitlement.entitlementId,
    aggregateVersion: entry.entitlementVersion,
    schema: LedgerEntryRecordedSchema,
    id: entry.entryId,
    time: entry.recordTime,
    payload,
    ...(headers ? { headers } : {}),
  };
}

/** ledger.refund_requested / _rejected / _payout_failed: a refund changed state. */
export async function enqueueRefundChanged(
  tx: Kysely<any>,
  event: 'refund_requested' | 'refund_rejected' | 'refund_payout_failed',
  refund: RefundRecord,
  at: Date,
): Promise<void> {
  await enqueue(tx, {
    producer: PRODUCER,
    event,
    tenantId: refund.tenantId,
    aggregateId: refund.refundId,
    aggregateVersion: refund.version,
    schema: RefundChangedSchema,
    message: { refund: refundToProto(refund) },
    time: at,
  });
}

/** ledger.refund_approved: billing-integration's contract (RefundApproved); it pays out once per refund id. */
export async function enqueueRefundApproved(tx: Kysely<any>, refund: RefundRecord, at: Date): Promise<void> {
  await enqueue(tx, {
    producer: PRODUCER,
    event: 'refund_approved',
    tenantId: refund.tenantId,
    aggregateId: refund.refundId,
    aggregateVersion: refund.version,
    schema: RefundApprovedSchema,
    message: {
      tenantId: refund.tenantId,
      refundId: refund.refundId,
      entitlementId: refund.entitlementId,
      amount: { currencyCode: refund.quote.currency, amountMinor: refund.quote.amount },
      approveTime: timestampFromDate(refund.decideTime ?? at),
      memberId: refund.memberId,
    },
    time: at,
  });
}

export async function enqueueHouseholdChanged(tx: Kysely<any>, household: HouseholdRecord, at: Date): Promise<void> {
  await enqueue(tx, {
    producer: PRODUCER,
    event: 'household_changed',
    tenantId: household.tenantId,
    aggregateId: household.householdId,
    aggregateVersion: household.version,
    schema: HouseholdChangedSchema,
    message: { household: householdToProto(household) },
    time: at,
  });
}

export async function enqueueSharingChanged(tx: Kysely<any>, entitlement: EntitlementRecord, actor: Actor, at: Date): Promise<void> {
  await enqueue(tx, {
    producer: PRODUCER,
    event: entitlement.householdId ? 'entitlement_shared' : 'entitlement_unshared',
    tenantId: entitlement.tenantId,
    aggregateId: entitlement.entitlementId,
    schema: SharingChangedSchema,
    message: {
      entitlement: entitlementToProto(entitlement),
      householdId: entitlement.householdId ?? '',
      actor: { subject: actor.subject, roles: [...actor.roles] },
      changeTime: timestampFromDate(at),
    },
    time: at,
  });
}
