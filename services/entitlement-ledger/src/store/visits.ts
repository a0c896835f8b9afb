import type { Kysely, Selectable } from 'kysely';
import type { LedgerDb, VisitState, VisitsTable } from './schema.js';

type Db = Kysely<LedgerDb>;

export interface VisitRecord {
  tenantId: string;
  visitId: string;
  state: VisitState;
  source: 'event' | 'api';
  memberId: string;
  serviceCode: string;
  branchId: string;
  occurredTime: Date | null;
  entitlementId: string | null;
  entryId: string | null;
  reversalEntryId: string | null;
  reason: string;
  errorCode: string;
  createdAt: Date;
  updatedAt: Date;
}

function toVisit(r: Selectable<VisitsTable>): VisitRecord {
  return {
    tenantId: r.tenant_id,
    visitId: r.visit_id,
    state: r.state,
    source: r.source,
    memberId: r.member_id,
    serviceCode: r.service_code,
    branchId: r.branch_id,
    occurredTime: r.occurred_time,
    entitlementId: r.entitlement_id,
    entryId: r.entry_id,
    reversalEntryId: r.reversal_entry_id,
    reason: r.reason,
    errorCode: r.error_code,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/**
 * Row-locks the visit's record, if there is one. Concurrent reports of one visit serialise here (an
 * insert of the same key waits on the primary key), so exactly one of them consumes.
 */
export async function lockVisit(tx: Db, tenantId: string, visitId: string): Promise<VisitRecord | undefined> {
  const row = await tx
    .selectFrom('visits')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('visit_id', '=', visitId)
    .forUpdate()
    .executeTakeFirst();
  return row && toVisit(row);
}

export async function getVisit(db: Db, tenantId: string, visitId: string): Promise<VisitRecord | undefined> {
  const row = await db
    .selectFrom('visits')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('visit_id', '=', visitId)
    .executeTakeFirst();
  return row && toVisit(row);
}

export type NewVisit = Omit<VisitRecord, 'createdAt' | 'updatedAt'>;

/**
 * Claims a visit id for this transaction: inserts its record (a concurrent claim of the same id waits
 * on the primary key until this transaction ends) and returns undefined; when the visit is already
 * recorded, returns that record, row-locked, and inserts nothing.
 */
export async function claimVisit(tx: Db, v: NewVisit, now: Date): Promise<VisitRecord | undefined> {
  const inserted = await tx
    .insertInto('visits')
    .values({
      tenant_id: v.tenantId,
      visit_id: v.visitId,
      state: v.state,
      source: v.source,
      member_id: v.memberId,
      service_code: v.serviceCode,
      branch_id: v.branchId,
      occurred_time: v.occurredTime,
      entitlement_id: v.entitlementId,
      entry_id: v.entryId,
      reversal_entry_id: v.reversalEntryId,
      reason: v.reason,
      error_code: v.errorCode,
      created_at: now,
      updated_at: now,
    })
    .onConflict((oc) => oc.columns(['tenant_id', 'visit_id']).doNothing())
    .returning('visit_id')
    .executeTakeFirst();
  if (inserted) return undefined;
  return lockVisit(tx, v.tenantId, v.visitId);
}

export type VisitChanges = Partial<Pick<VisitRecord, 'state' | 'source' | 'memberId' | 'serviceCode' | 'branchId' | 'occurredTime' | 'entitlementId' | 'entryId' | 'reversalEntryId' | 'reason' | 'errorCode'>>;

export async function updateVisit(tx: Db, tenantId: string, visitId: string, changes: VisitChanges, now: Date): Promise<void> {
  await tx
    .updateTable('visits')
    .set({
      ...(changes.state !== undefined ? { state: changes.state } : {}),
      ...(changes.source !== undefined ? { source: changes.source } : {}),
      ...(changes.memberId !== undefined ? { member_id: changes.memberId } : {}),
      ...(changes.serviceCode !== undefined ? { service_code: changes.serviceCode } : {}),
      ...(changes.branchId !== undefined ? { branch_id: changes.branchId } : {}),
      ...(changes.occurredTime !== undefined ? { occurred_time: changes.occurredTime } : {}),
      ...(changes.entitlementId !== undefined ? { entitlement_id: changes.entitlementId } : {}),
      ...(changes.entryId !== undefined ? { entry_id: changes.entryId } : {}),
      ...(changes.reversalEntryId !== undefined ? { reversal_entry_id: changes.reversalEntryId } : {}),
      ...(changes.reason !== undefined ? { reason: changes.reason } : {}),
      ...(changes.errorCode !== undefined ? { error_code: changes.errorCode } : {}),
      updated_at: now,
    })
    .where('tenant_id', '=', tenantId)
    .where('visit_id', '=', visitId)
    .execute();
}

export async function listVisits(
  db: Db,
  tenantId: string,
  filter: { state?: VisitState; memberId?: string },
  after: { createdAt: Date; visitId: string } | undefined,
  limit: number,
): Promise<VisitRecord[]> {
  let q = db.selectFrom('visits').selectAll().where('tenant_id', '=', tenantId);
  if (filter.state) q = q.where('state', '=', filter.state);
  if (filter.memberId) q = q.where('member_id', '=', filter.memberId);
  if (after) {
    q = q.where((eb) =>
      eb.or([
        eb('created_at', '>', after.createdAt),
        eb.and([eb('created_at', '=', after.createdAt), eb('visit_id', '>', after.visitId)]),
      ]),
    );
  }
  const rows = await q.orderBy('created_at').orderBy('visit_id').limit(limit).execute();
  return rows.map(toVisit);
}
