import { sql, type Insertable, type Kysely, type QueryCreator, type Selectable, type UpdateQueryBuilder, type UpdateResult } from 'kysely';
import type { Entitlement, EntryDraft, Status } from '../domain/types.js';
import { decodeDetail, encodeDetail } from '../proto/detail.js';
import type { LedgerDb, EntitlementsTable, EntriesTable } from './schema.js';

/** An entitlement as stored: the domain state plus what only readers need. */
export interface EntitlementRecord extends Entitlement {
  /** punchcard.catalogue.v1.DefinitionTerms bytes of the version it was sold on. */
  termsBytes: Uint8Array;
  priceCurrency: string;
  priceMinor: bigint;
  paymentReference: string;
}

export interface Actor {
  subject: string;
  roles: readonly string[];
}

export interface EntryRecord extends EntryDraft {
  /** The entitlement's currency, for the entry's amounts. */
  currency?: string;
  tenantId: string;
  entryId: string;
  entitlementId: string;
  memberId: string;
  actor: Actor;
  recordTime: Date;
  requestId: string;
}

type Db = Kysely<LedgerDb>;

/** Statuses a consume or reversal may still change; closed ones are never locked. */
const OPEN_STATUSES: Status[] = ['ACTIVE', 'IN_GRACE', 'FROZEN', 'EXHAUSTED'];

export function toRecord(row: Selectable<EntitlementsTable>): EntitlementRecord {
  return {
    tenantId: row.tenant_id,
    entitlementId: row.entitlement_id,
    memberId: row.member_id,
    definitionId: row.definition_id,
    definitionVersion: row.definition_version,
    terms: row.rules,
    timeZone: row.time_zone,
    purchaseBranchId: row.purchase_branch_id,
    status: row.status,
    paidSessions: row.paid_sessions,
    bonusSessions: row.bonus_sessions,
    paidRemaining: row.paid_remaining,
    bonusRemaining: row.bonus_remaining,
    purchaseTime: row.purchase_time,
    activationTime: row.activation_time,
    expiryTime: row.expiry_time,
    graceEndTime: row.grace_end_time,
    frozenAt: row.frozen_at,
    frozenUntilTime: row.frozen_until_time,
    freezePlannedDays: row.freeze_planned_days,
    frozenDays: row.frozen_days,
    lastUseTime: row.last_use_time,
    version: Number(row.version),
    householdId: row.household_id,
    transferCount: row.transfer_count,
    originEntitlementId: row.origin_entitlement_id,
    pendingRefundId: row.pending_refund_id,
    termsBytes: row.terms,
    priceCurrency: row.price_currency,
    priceMinor: row.price_minor,
    paymentReference: row.payment_reference,
  };
}

export async function insertEntitlement(tx: Db, e: EntitlementRecord, now: Date): Promise<void> {
  await tx
    .insertInto('entitlements')
    .values({
      tenant_id: e.tenantId,
      entitlement_id: e.entitlementId,
      member_id: e.memberId,
      definition_id: e.definitionId,
      definition_version: e.definitionVersion,
      terms: e.termsBytes,
      rules: JSON.stringify(e.terms),
      time_zone: e.timeZone,
      purchase_branch_id: e.purchaseBranchId,
      status: e.status,
      paid_sessions: e.paidSessions,
      bonus_sessions: e.bonusSessions,
      paid_remaining: e.paidRemaining,
      bonus_remaining: e.bonusRemaining,
      price_currency: e.priceCurrency,
      price_minor: e.priceMinor,
      payment_reference: e.paymentReference,
      purchase_time: e.purchaseTime,
      activation_time: e.activationTime,
      expiry_time: e.expiryTime,
      grace_end_time: e.graceEndTime,
      frozen_at: e.frozenAt,
      frozen_until_time: e.frozenUntilTime,
      freeze_planned_days: e.freezePlannedDays,
      frozen_days: e.frozenDays,
      last_use_time: e.lastUseTime,
      version: e.version,
      updated_at: now,
      household_id: e.householdId,
      transfer_count: e.transferCount,
      origin_entitlement_id: e.originEntitlementId,
      pending_refund_id: e.pendingRefundId,
    })
    .execute();
}

/** Reads one entitlement of the tenant, without a lock. */
export async function getEntitlement(db: Db, tenantId: string, entitlementId: string): Promise<EntitlementRecord | undefined> {
  const row = await db
    .selectFrom('entitlements')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('entitlement_id', '=', entitlementId)
    .executeTakeFirst();
  return row && toRecord(row);
}

/** Reads and row-locks one entitlement until the transaction ends: every change goes through this lock. */
export async function lockEntitlement(tx: Db, tenantId: string, entitlementId: string): Promise<EntitlementRecord | undefined> {
  const row = await tx
    .selectFrom('entitlements')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('entitlement_id', '=', entitlementId)
    .forUpdate()
    .executeTakeFirst();
  return row && toRecord(row);
}

/**
 * {@link lockEntitlement} that also reads the tenant's features (undefined when the ledger has not
 * heard of the tenant), in the same statement: a consume needs both, and a round trip to Postgres
 * is the largest part of its cost.
 */
export async function lockEntitlementWithTenant(
  tx: Db,
  tenantId: string,
  entitlementId: string,
): Promise<{ entitlement: EntitlementRecord; tenantFeatures: number[] | undefined } | undefined> {
  const row = await tx
    .selectFrom('entitlements')
    .leftJoin('tenants', 'tenants.tenant_id', 'entitlements.tenant_id')
    .selectAll('entitlements')
    .select('tenants.features as tenant_features')
    .where('entitlements.tenant_id', '=', tenantId)
    .where('entitlements.entitlement_id', '=', entitlementId)
    .forUpdate('entitlements')
    .executeTakeFirst();
  if (!row) return undefined;
  const { tenant_features, ...entitlement } = row;
  return { entitlement: toRecord(entitlement), tenantFeatures: tenant_features ?? undefined };
}

/**
 * Row-locks the member's open entitlements in entitlement id order, so concurrent picks for one
 * member queue up behind each other instead of deadlocking, and each decides on committed balances.
 */
export async function lockOpenForMember(tx: Db, tenantId: string, memberId: string): Promise<EntitlementRecord[]> {
  const rows = await tx
    .selectFrom('entitlements')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('member_id', '=', memberId)
    .where('status', 'in', OPEN_STATUSES)
    .orderBy('entitlement_id')
    .forUpdate()
    .execute();
  return rows.map(toRecord);
}

/** The member's most recent closed entitlements (no lock): only to explain a refusal. */
export async function recentClosedForMember(db: Db, tenantId: string, memberId: string, limit = 20): Promise<EntitlementRecord[]> {
  const rows = await db
    .selectFrom('entitlements')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('member_id', '=', memberId)
    .where('status', 'not in', OPEN_STATUSES)
    .orderBy('purchase_time', 'desc')
    .limit(limit)
    .execute();
  return rows.map(toRecord);
}

/** The columns a transition may change, as an entitlement row holds them (one or many rows at a time). */
export function changeableColumns(next: Entitlement) {
  return {
    status: next.status,
    paid_sessions: next.paidSessions,
    bonus_sessions: next.bonusSessions,
    household_id: next.householdId,
    pending_refund_id: next.pendingRefundId,
    paid_remaining: next.paidRemaining,
    bonus_remaining: next.bonusRemaining,
    activation_time: next.activationTime,
    expiry_time: next.expiryTime,
    grace_end_time: next.graceEndTime,
    frozen_at: next.frozenAt,
    frozen_until_time: next.frozenUntilTime,
    freeze_planned_days: next.freezePlannedDays,
    frozen_days: next.frozenDays,
    last_use_time: next.lastUseTime,
    version: next.version,
  };
}

/**
 * Writes the entitlement's new state. Conditional on the version the caller read under its lock and
 * on the balances staying non-negative, so a write can never apply to a state it was not decided on.
 */
/**
 * The update that saves a decided transition of a locked entitlement, as a write for the statement
 * that inserts its entry (see insertEntryWithEvent). Guarded by the version and the balances it
 * was decided on; if the guard does not hold, no row changes and the entry's check
 * (entries_match_entitlement) refuses the entry, so the statement fails.
 */
export function entitlementUpdate(prev: Entitlement, next: Entitlement, now: Date): (q: QueryCreator<LedgerDb>) => UpdateQueryBuilder<LedgerDb, 'entitlements', 'entitlements', UpdateResult> {
  if (next.version !== prev.version + 1) throw new Error(`entitlement ${prev.entitlementId}: version must advance by one`);
  return (q) =>
    q
      .updateTable('entitlements')
      .set({
        ...changeableColumns(next),
        updated_at: now,
      })
      .where('tenant_id', '=', prev.tenantId)
      .where('entitlement_id', '=', prev.entitlementId)
      .where('version', '=', BigInt(prev.version))
      .where('paid_remaining', '>=', prev.paidRemaining - next.paidRemaining)
      .where('bonus_remaining', '>=', prev.bonusRemaining - next.bonusRemaining);
}

/** An entry as the `entries` table stores it. */
export function entryRow(e: EntryRecord): Insertable<EntriesTable> {
  return {
    tenant_id: e.tenantId,
    entry_id: e.entryId,
    entitlement_id: e.entitlementId,
    kind: e.kind,
    sessions_delta: e.sessionsDelta,
    paid_delta: e.paidDelta,
    bonus_delta: e.bonusDelta,
    branch_id: e.branchId,
    actor_subject: e.actor.subject,
    actor_roles: [...e.actor.roles],
    reason: e.reason,
    occurred_time: e.occurredTime,
    record_time: e.recordTime,
    request_id: e.requestId,
    balance_after: e.balanceAfter,
    reverses_entry_id: e.reversesEntryId ?? null,
    in_grace: e.inGrace,
    visit_id: e.visitId ?? null,
    service_code: e.serviceCode ?? null,
    member_id: e.memberId,
    entitlement_version: e.entitlementVersion,
    expiry_time: e.expiryTime,
    counterpart_entitlement_id: e.counterpartEntitlementId ?? null,
    counterpart_entry_id: e.counterpartEntryId ?? null,
    amount_minor: e.amountMinor ?? null,
    currency: e.amountMinor !== undefined || e.detail ? (e.currency ?? null) : null,
    refund_id: e.refundId ?? null,
    detail: e.detail ? encodeDetail(e.detail, e.currency ?? '') : null,
  };
}

export function toEntry(row: Selectable<EntriesTable>): EntryRecord {
  return {
    tenantId: row.tenant_id,
    entryId: row.entry_id,
    entitlementId: row.entitlement_id,
    kind: row.kind,
    sessionsDelta: row.sessions_delta,
    paidDelta: row.paid_delta,
    bonusDelta: row.bonus_delta,
    branchId: row.branch_id,
    actor: { subject: row.actor_subject, roles: row.actor_roles },
    reason: row.reason,
    occurredTime: row.occurred_time,
    recordTime: row.record_time,
    requestId: row.request_id,
    balanceAfter: row.balance_after,
    inGrace: row.in_grace,
    memberId: row.member_id,
    entitlementVersion: Number(row.entitlement_version),
    expiryTime: row.expiry_time,
    ...(row.reverses_entry_id ? { reversesEntryId: row.reverses_entry_id } : {}),
    ...(row.visit_id ? { visitId: row.visit_id } : {}),
    ...(row.service_code ? { serviceCode: row.service_code } : {}),
    ...(row.counterpart_entitlement_id ? { counterpartEntitlementId: row.counterpart_entitlement_id } : {}),
    ...(row.counterpart_entry_id ? { counterpartEntryId: row.counterpart_entry_id } : {}),
    ...(row.amount_minor !== null ? { amountMinor: row.amount_minor } : {}),
    ...(row.currency !== null ? { currency: row.currency } : {}),
    ...(row.refund_id ? { refundId: row.refund_id } : {}),
    ...(row.detail ? { detail: decodeDetail(row.detail) } : {}),
  };
}

/** One entry of the tenant, with the id of the reversal that undid it, if any. */
export async function getEntry(db: Db, tenantId: string, entryId: string): Promise<(EntryRecord & { reversedBy?: string }) | undefined> {
  const row = await db
    .selectFrom('entries as e')
    .leftJoin('entries as r', (join) =>
      join.onRef('r.tenant_id', '=', 'e.tenant_id').onRef('r.reverses_entry_id', '=', 'e.entry_id'),
    )
    .selectAll('e')
    .select('r.entry_id as reversed_by')
    .where('e.tenant_id', '=', tenantId)
    .where('e.entry_id', '=', entryId)
    .executeTakeFirst();
  if (!row) return undefined;
  const { reversed_by, ...entry } = row;
  return { ...toEntry(entry), ...(reversed_by ? { reversedBy: reversed_by } : {}) };
}

export interface Page<T> {
  items: T[];
  /** Cursor for the next page; undefined on the last. */
  next?: bigint | number;
}

export async function listEntries(
  db: Db,
  tenantId: string,
  entitlementId: string,
  afterVersion: number,
  limit: number,
): Promise<Page<EntryRecord>> {
  const rows = await db
    .selectFrom('entries')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('entitlement_id', '=', entitlementId)
    .where('entitlement_version', '>', BigInt(afterVersion))
    .orderBy('entitlement_version')
    .limit(limit + 1)
    .execute();
  const items = rows.slice(0, limit).map(toEntry);
  const last = items.at(-1);
  return rows.length > limit && last ? { items, next: last.entitlementVersion } : { items };
}

export interface EntitlementFilter {
  memberId?: string;
  statuses?: Status[];
  expiringBefore?: Date;
}

export async function listEntitlements(
  db: Db,
  tenantId: string,
  filter: EntitlementFilter,
  afterSeq: bigint,
  limit: number,
): Promise<Page<EntitlementRecord>> {
  let q = db.selectFrom('entitlements').selectAll().where('tenant_id', '=', tenantId).where('seq', '>', afterSeq);
  if (filter.memberId) q = q.where('member_id', '=', filter.memberId);
  if (filter.statuses && filter.statuses.length > 0) q = q.where('status', 'in', filter.statuses);
  if (filter.expiringBefore) q = q.where('expiry_time', '<', filter.expiringBefore);
  const rows = await q.orderBy('seq').limit(limit + 1).execute();
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { items: page.map(toRecord), ...(rows.length > limit && last ? { next: last.seq } : {}) };
}

/** Every entry of an entitlement in version order (to value its sessions; a package has few). */
export async function allEntries(db: Db, tenantId: string, entitlementId: string): Promise<EntryRecord[]> {
  const rows = await db
    .selectFrom('entries')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('entitlement_id', '=', entitlementId)
    .orderBy('entitlement_version')
    .execute();
  return rows.map(toEntry);
}

/**
 * Row-locks the member's open entitlements and, when `withPools`, the open ones shared with a
 * household the member belongs to; all in entitlement id order, like every multi-row lock here.
 */
export async function lockOpenForConsumer(tx: Db, tenantId: string, memberId: string, withPools: boolean): Promise<EntitlementRecord[]> {
  if (!withPools) return lockOpenForMember(tx, tenantId, memberId);
  const rows = await tx
    .selectFrom('entitlements')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('status', 'in', OPEN_STATUSES)
    .where((eb) =>
      eb.or([
        eb('member_id', '=', memberId),
        eb(
          'household_id',
          'in',
          eb.selectFrom('household_members').select('household_id').where('tenant_id', '=', tenantId).where('member_id', '=', memberId),
        ),
      ]),
    )
    .orderBy('entitlement_id')
    .forUpdate()
    .execute();
  return rows.map(toRecord);
}

/**
 * Sessions each member has used from one entitlement: consumes net of their reversals, counted from
 * the entries. Read under the entitlement's row lock it is exact, as entries are written only under it.
 */
export async function poolUsage(db: Db, tenantId: string, entitlementId: string): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('entries')
    .select(['member_id', sql<number>`sum(case when kind = 'CONSUME' then 1 else -1 end)::int`.as('used')])
    .where('tenant_id', '=', tenantId)
    .where('entitlement_id', '=', entitlementId)
    .where('kind', 'in', ['CONSUME', 'REVERSAL'])
    .groupBy('member_id')
    .execute();
  return new Map(rows.map((r) => [r.member_id, r.used]));
}

/**
 * Changes what is not a session movement (the household pool, the refund hold) under the row lock,
 * conditional on the version the caller decided on; the version does not advance (no entry).
 */
export async function saveSharingAndHold(tx: Db, prev: Entitlement, next: Pick<Entitlement, 'householdId' | 'pendingRefundId'>, now: Date): Promise<void> {
  const result = await tx
    .updateTable('entitlements')
    .set({ household_id: next.householdId, pending_refund_id: next.pendingRefundId, updated_at: now })
    .where('tenant_id', '=', prev.tenantId)
    .where('entitlement_id', '=', prev.entitlementId)
    .where('version', '=', BigInt(prev.version))
    .executeTakeFirst();
  if (result.numUpdatedRows !== 1n) {
    throw new Error(`entitlement ${prev.entitlementId} changed under its lock (expected version ${prev.version})`);
  }
}
