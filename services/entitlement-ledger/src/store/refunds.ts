import type { Kysely, Selectable } from 'kysely';
import type { RefundQuote } from '../domain/types.js';
import { decodeRefundQuote, encodeRefundQuote } from '../proto/detail.js';
import type { Actor } from './entitlements.js';
import type { LedgerDb, RefundState, RefundsTable } from './schema.js';

type Db = Kysely<LedgerDb>;

export interface RefundRecord {
  tenantId: string;
  refundId: string;
  entitlementId: string;
  memberId: string;
  state: RefundState;
  quote: RefundQuote;
  reason: string;
  requestedBy: Actor;
  requestTime: Date;
  decidedBy: Actor | null;
  decisionNote: string;
  decideTime: Date | null;
  settleTime: Date | null;
  providerReference: string;
  failureReason: string;
  refundEntryId: string | null;
  version: number;
  seq: bigint;
}

function toRefund(r: Selectable<RefundsTable>): RefundRecord {
  return {
    tenantId: r.tenant_id,
    refundId: r.refund_id,
    entitlementId: r.entitlement_id,
    memberId: r.member_id,
    state: r.state,
    quote: decodeRefundQuote(r.quote),
    reason: r.reason,
    requestedBy: { subject: r.requested_by_subject, roles: r.requested_by_roles },
    requestTime: r.request_time,
    decidedBy: r.decided_by_subject === null ? null : { subject: r.decided_by_subject, roles: r.decided_by_roles ?? [] },
    decisionNote: r.decision_note,
    decideTime: r.decide_time,
    settleTime: r.settle_time,
    providerReference: r.provider_reference,
    failureReason: r.failure_reason,
    refundEntryId: r.refund_entry_id,
    version: Number(r.version),
    seq: r.seq,
  };
}

export async function insertRefund(tx: Db, r: Omit<RefundRecord, 'seq' | 'decidedBy' | 'decisionNote' | 'decideTime' | 'settleTime' | 'providerReference' | 'failureReason' | 'refundEntryId' | 'version' | 'state'>): Promise<RefundRecord> {
  const row = await tx
    .insertInto('refunds')
    .values({
      tenant_id: r.tenantId,
      refund_id: r.refundId,
      entitlement_id: r.entitlementId,
      member_id: r.memberId,
      state: 'REQUESTED',
      quote: encodeRefundQuote(r.quote),
      currency: r.quote.currency,
      amount_minor: r.quote.amount,
      reason: r.reason,
      requested_by_subject: r.requestedBy.subject,
      requested_by_roles: [...r.requestedBy.roles],
      request_time: r.requestTime,
      decided_by_subject: null,
      decided_by_roles: null,
      refund_entry_id: null,
      version: 1,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toRefund(row);
}

export async function getRefund(db: Db, tenantId: string, refundId: string): Promise<RefundRecord | undefined> {
  const row = await db.selectFrom('refunds').selectAll().where('tenant_id', '=', tenantId).where('refund_id', '=', refundId).executeTakeFirst();
  return row && toRefund(row);
}

/** Row-locks the refund: its state changes are serialised (taken after the entitlement's lock). */
export async function lockRefund(tx: Db, tenantId: string, refundId: string): Promise<RefundRecord | undefined> {
  const row = await tx.selectFrom('refunds').selectAll().where('tenant_id', '=', tenantId).where('refund_id', '=', refundId).forUpdate().executeTakeFirst();
  return row && toRefund(row);
}

export type RefundChange = Partial<Pick<RefundRecord, 'decidedBy' | 'decisionNote' | 'decideTime' | 'settleTime' | 'providerReference' | 'failureReason' | 'refundEntryId'>> & {
  state: RefundState;
};

/** Moves a refund from `from` to the next state; conditional, so a state is left at most once. */
export async function changeRefund(tx: Db, r: RefundRecord, change: RefundChange): Promise<RefundRecord> {
  const row = await tx
    .updateTable('refunds')
    .set({
      state: change.state,
      version: BigInt(r.version + 1),
      ...(change.decidedBy ? { decided_by_subject: change.decidedBy.subject, decided_by_roles: [...change.decidedBy.roles] } : {}),
      ...(change.decisionNote !== undefined ? { decision_note: change.decisionNote } : {}),
      ...(change.decideTime ? { decide_time: change.decideTime } : {}),
      ...(change.settleTime ? { settle_time: change.settleTime } : {}),
      ...(change.providerReference !== undefined ? { provider_reference: change.providerReference } : {}),
      ...(change.failureReason !== undefined ? { failure_reason: change.failureReason } : {}),
      ...(change.refundEntryId ? { refund_entry_id: change.refundEntryId } : {}),
    })
    .where('tenant_id', '=', r.tenantId)
    .where('refund_id', '=', r.refundId)
    .where('state', '=', r.state)
    .where('version', '=', BigInt(r.version))
    .returningAll()
    .executeTakeFirst();
  if (!row) throw new Error(`refund ${r.refundId} changed under its lock (expected ${r.state} at version ${r.version})`);
  return toRefund(row);
}

export async function listRefunds(
  db: Db,
  tenantId: string,
  filter: { entitlementId?: string; state?: RefundState },
  afterSeq: bigint,
  limit: number,
): Promise<RefundRecord[]> {
  let q = db.selectFrom('refunds').selectAll().where('tenant_id', '=', tenantId).where('seq', '>', afterSeq);
  if (filter.entitlementId) q = q.where('entitlement_id', '=', filter.entitlementId);
  if (filter.state) q = q.where('state', '=', filter.state);
  const rows = await q.orderBy('seq').limit(limit).execute();
  return rows.map(toRefund);
}
