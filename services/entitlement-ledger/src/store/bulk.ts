import { sql, type Kysely } from 'kysely';
import type { Entitlement } from '../domain/types.js';
import { entryRow, toRecord, type EntitlementRecord, type EntryRecord } from './entitlements.js';
import type { LedgerDb } from './schema.js';

type Db = Kysely<LedgerDb>;

/** Rows per statement: inside Postgres's 65,535 bind parameters with room to spare. */
const CHUNK = 1000;

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

/**
 * Reads and row-locks the tenant's entitlements with these ids until the transaction ends, in
 * entitlement id order like every multi-row lock here, so it queues behind (and never deadlocks
 * with) a consume's pick. Ids that are not the tenant's are simply absent from the map.
 */
export async function lockEntitlements(tx: Db, tenantId: string, ids: readonly string[]): Promise<Map<string, EntitlementRecord>> {
  const locked = new Map<string, EntitlementRecord>();
  for (const part of chunks([...new Set(ids)].sort())) {
    const rows = await tx
      .selectFrom('entitlements')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('entitlement_id', 'in', part)
      .orderBy('entitlement_id')
      .forUpdate()
      .execute();
    for (const row of rows) locked.set(row.entitlement_id, toRecord(row));
  }
  return locked;
}

/**
 * `saveEntitlement` for many rows in one statement, under the same conditions per row: the version
 * read under the lock, and balances that stay non-negative. Every row must match, or it throws.
 */
export async function saveEntitlements(tx: Db, changes: readonly { prev: Entitlement; next: Entitlement }[], now: Date): Promise<void> {
  for (const { prev, next } of changes) {
    if (next.version !== prev.version + 1) throw new Error(`entitlement ${prev.entitlementId}: version must advance by one`);
  }
  for (const part of chunks(changes)) {
    const rows = part.map(
      ({ prev, next }) => sql`(
        ${prev.entitlementId}::uuid, ${prev.version}::bigint,
        ${prev.paidRemaining - next.paidRemaining}::int, ${prev.bonusRemaining - next.bonusRemaining}::int,
        ${next.status}::text, ${next.paidSessions}::int, ${next.bonusSessions}::int,
        ${next.householdId}::uuid, ${next.pendingRefundId}::uuid,
        ${next.paidRemaining}::int, ${next.bonusRemaining}::int,
        ${next.activationTime}::timestamptz, ${next.expiryTime}::timestamptz, ${next.graceEndTime}::timestamptz,
        ${next.frozenAt}::timestamptz, ${next.frozenUntilTime}::timestamptz,
        ${next.freezePlannedDays}::int, ${next.frozenDays}::int, ${next.lastUseTime}::timestamptz, ${next.version}::bigint
      )`,
    );
    const tenantId = part[0]!.prev.tenantId;
    if (part.some((c) => c.prev.tenantId !== tenantId)) throw new Error('saveEntitlements takes one tenant at a time');
    const result = await sql`
      update entitlements e set
        status = v.status, paid_sessions = v.paid_sessions, bonus_sessions = v.bonus_sessions,
        household_id = v.household_id, pending_refund_id = v.pending_refund_id,
        paid_remaining = v.paid_remaining, bonus_remaining = v.bonus_remaining,
        activation_time = v.activation_time, expiry_time = v.expiry_time, grace_end_time = v.grace_end_time,
        frozen_at = v.frozen_at, frozen_until_time = v.frozen_until_time,
        freeze_planned_days = v.freeze_planned_days, frozen_days = v.frozen_days, last_use_time = v.last_use_time,
        version = v.version, updated_at = ${now}
      from (values ${sql.join(rows)}) as v (
        entitlement_id, prev_version, paid_drop, bonus_drop,
        status, paid_sessions, bonus_sessions, household_id, pending_refund_id, paid_remaining, bonus_remaining,
        activation_time, expiry_time, grace_end_time, frozen_at, frozen_until_time,
        freeze_planned_days, frozen_days, last_use_time, version)
      where e.tenant_id = ${tenantId} and e.entitlement_id = v.entitlement_id and e.version = v.prev_version
        and e.paid_remaining >= v.paid_drop and e.bonus_remaining >= v.bonus_drop`.execute(tx);
    if (result.numAffectedRows !== BigInt(part.length)) {
      throw new Error(`${part.length - Number(result.numAffectedRows ?? 0n)} of ${part.length} entitlements changed under their locks`);
    }
  }
}

/** `insertEntry` for many entries: one insert per thousand (each still checked by the entries' triggers). */
export async function insertEntries(tx: Db, entries: readonly EntryRecord[]): Promise<void> {
  for (const part of chunks(entries)) await tx.insertInto('entries').values(part.map(entryRow)).execute();
}
