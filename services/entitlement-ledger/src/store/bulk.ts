import { sqlWrite, type OwnWrite } from '@punchcard/bus';
import { sql, type Kysely, type RawBuilder, type Selectable } from 'kysely';
import type { Entitlement } from '../domain/types.js';
import { changeableColumns, entryRow, toRecord, type EntitlementRecord, type EntryRecord } from './entitlements.js';
import type { StoredKeyRow } from './idempotency.js';
import type { EntitlementsTable, LedgerDb } from './schema.js';

type Db = Kysely<LedgerDb>;

/**
 * Rows as one jsonb parameter, for `jsonb_to_recordset`: a statement's text then stays the same
 * whatever the number of rows, so it is prepared once. Values must be JSON already (see `hex`, and
 * int8 as text): no replacer, which would cost a call per value.
 */
export function jsonRows(rows: readonly object[]): string {
  return JSON.stringify(rows);
}

/** bytea as jsonb_to_recordset reads it from a JSON string. */
export function hex(bytes: Uint8Array): string {
  return `\\x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`;
}

/**
 * Reads and row-locks the tenant's entitlements with these ids until the transaction ends, in
 * entitlement id order like every multi-row lock here, so it queues behind (and never deadlocks
 * with) a consume's pick. Ids that are not the tenant's are simply absent from the map. With them,
 * the tenant's features as the ledger knows them (undefined when it does not know the tenant, or no
 * row was found), and the rows of `alongside` (a batch's stored idempotency keys, see onceEach),
 * read in the same statement.
 */
export async function lockEntitlements(
  tx: Db,
  tenantId: string,
  ids: readonly string[],
  alongside?: RawBuilder<StoredKeyRow>,
): Promise<{ rows: Map<string, EntitlementRecord>; tenantFeatures: number[] | undefined; storedKeys: StoredKeyRow[] }> {
  if (ids.length === 0) return { rows: new Map(), tenantFeatures: undefined, storedKeys: alongside ? (await alongside.execute(tx)).rows : [] };
  // Each id is looked up and locked on its own, in id order. The ids go as jsonb, whose estimate is
  // the same whatever their number, so Postgres keeps one generic plan: with an array (`= any(...)`)
  // it may find a plan for the array's known length cheaper and plan the statement on every call (it
  // does on the table of test/batch-plans.test.ts).
  // A full join on false puts the rows of `alongside` after the locked ones, each with the other's
  // columns null.
  const found = await sql<Selectable<EntitlementsTable> & { tenant_features: number[] | null } & Partial<StoredKeyRow>>`
    with locked as (
      select e.*
      from (select v.id::uuid as id from jsonb_array_elements_text(${JSON.stringify([...new Set(ids)])}::jsonb) as v (id) order by 1) v
      cross join lateral (select * from entitlements e where e.tenant_id = ${tenantId} and e.entitlement_id = v.id for update) e)
    select locked.*, ${alongside ? sql`stored.*, ` : sql``}(select t.features from tenants t where t.tenant_id = ${tenantId}) as tenant_features
    from locked${alongside ? sql` full join (${alongside}) stored on false` : sql``}`.execute(tx);
  const rows = new Map<string, EntitlementRecord>();
  const storedKeys: StoredKeyRow[] = [];
  let tenantFeatures: number[] | undefined;
  for (const row of found.rows) {
    if (row.stored_key != null) {
      storedKeys.push(row as StoredKeyRow);
      continue;
    }
    const { tenant_features, ...entitlement } = row;
    tenantFeatures ??= tenant_features ?? undefined;
    rows.set(entitlement.entitlement_id, toRecord(entitlement));
  }
  return { rows, tenantFeatures, storedKeys };
}

/**
 * `entitlementUpdate` for many rows of one tenant, as a write for the statement that inserts their
 * entries (see saveMovements), under the same conditions per row: the version read under the lock,
 * and balances that stay non-negative. A row that does not match keeps its version, so its entry's
 * check against the saved row (entries_match_entitlement, after the statement) fails the statement.
 */
export function entitlementsUpdate(changes: readonly { prev: Entitlement; next: Entitlement }[], now: Date): OwnWrite {
  const tenantId = changes[0]!.prev.tenantId;
  const rows = changes.map(({ prev, next }) => {
    if (prev.tenantId !== tenantId) throw new Error('entitlementsUpdate takes one tenant at a time');
    if (next.version !== prev.version + 1) throw new Error(`entitlement ${prev.entitlementId}: version must advance by one`);
    return {
      entitlement_id: prev.entitlementId,
      prev_version: prev.version,
      paid_drop: prev.paidRemaining - next.paidRemaining,
      bonus_drop: prev.bonusRemaining - next.bonusRemaining,
      ...changeableColumns(next),
    };
  });
  return sqlWrite(
    () => sql`
    update entitlements e set
      status = v.status, paid_sessions = v.paid_sessions, bonus_sessions = v.bonus_sessions,
      household_id = v.household_id, pending_refund_id = v.pending_refund_id,
      paid_remaining = v.paid_remaining, bonus_remaining = v.bonus_remaining,
      activation_time = v.activation_time, expiry_time = v.expiry_time, grace_end_time = v.grace_end_time,
      frozen_at = v.frozen_at, frozen_until_time = v.frozen_until_time,
      freeze_planned_days = v.freeze_planned_days, frozen_days = v.frozen_days, last_use_time = v.last_use_time,
      version = v.version, updated_at = ${now}
    from jsonb_to_recordset(${jsonRows(rows)}::jsonb) as v (
      entitlement_id uuid, prev_version bigint, paid_drop int, bonus_drop int,
      status text, paid_sessions int, bonus_sessions int, household_id uuid, pending_refund_id uuid,
      paid_remaining int, bonus_remaining int, activation_time timestamptz, expiry_time timestamptz,
      grace_end_time timestamptz, frozen_at timestamptz, frozen_until_time timestamptz,
      freeze_planned_days int, frozen_days int, last_use_time timestamptz, version bigint)
    where e.tenant_id = ${tenantId} and e.entitlement_id = v.entitlement_id and e.version = v.prev_version
      and e.paid_remaining >= v.paid_drop and e.bonus_remaining >= v.bonus_drop`,
  );
}

/** Many entries (`entryRow` each) as one write (each still checked by the entries' triggers). */
export function entriesInsert(entries: readonly EntryRecord[]): OwnWrite {
  const rows = entries.map((e) => {
    const row = entryRow(e);
    return { ...row, amount_minor: row.amount_minor?.toString() ?? null, detail: row.detail ? hex(row.detail) : null };
  });
  const columns = sql.join(Object.keys(rows[0]!).map((c) => sql.ref(c)));
  return sqlWrite(
    () => sql`
    insert into entries (${columns})
    select ${columns} from jsonb_populate_recordset(null::entries, ${jsonRows(rows)}::jsonb)`,
  );
}
