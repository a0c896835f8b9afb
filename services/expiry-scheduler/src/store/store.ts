import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { EntitlementState } from '../domain/entitlement.js';
import { KIND_RANK, type DueCursor, type ExistingTimer, type PlannedTimer, type Schedule, type TimerState } from '../domain/schedule.js';
import type { EntitlementsTable, ExpiryDb, TimersTable } from './schema.js';

type Db = Kysely<ExpiryDb>;
type Tx = Transaction<ExpiryDb>;

export type TimerRow = Selectable<TimersTable>;
export type EntitlementRow = Selectable<EntitlementsTable>;

const orNull = <T>(v: T | undefined): T | null => (v === undefined ? null : v);
const orUndefined = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

export function stateFromRow(r: EntitlementRow): EntitlementState {
  return {
    tenantId: r.tenant_id,
    entitlementId: r.entitlement_id,
    memberId: r.member_id,
    version: Number(r.version),
    status: r.status,
    remaining: r.remaining,
    policy: r.policy,
    timeZone: r.time_zone,
    purchaseTime: r.purchase_time,
    firstUseTime: orUndefined(r.first_use_time),
    lastUseTime: orUndefined(r.last_use_time),
    frozenDays: r.frozen_days,
    freeze: r.freeze_from ? { from: r.freeze_from, until: orUndefined(r.freeze_until) } : undefined,
    ledgerExpiryTime: orUndefined(r.ledger_expiry_time),
    ledgerGraceEndTime: orUndefined(r.ledger_grace_end_time),
  };
}

/** An entitlement's key in the maps below. */
export function entitlementKey(k: { tenantId: string; entitlementId: string }): string {
  return `${k.tenantId}\u0000${k.entitlementId}`;
}

type Key = { tenantId: string; entitlementId: string };
const keyRows = (keys: readonly Key[]) => JSON.stringify(keys.map((k) => ({ tenant_id: k.tenantId, entitlement_id: k.entitlementId })));

/**
 * The entitlements' rows, locked until the transaction ends and in key order (so batches of events
 * on overlapping entitlements queue instead of deadlocking): their events apply one at a time across
 * replicas. Entitlements not seen yet are absent.
 */
export async function lockEntitlements(tx: Tx, keys: readonly Key[]): Promise<Map<string, EntitlementState>> {
  if (keys.length === 0) return new Map();
  const { rows } = await sql<EntitlementRow>`
    select e.* from entitlements e
    join jsonb_to_recordset(${keyRows(keys)}::jsonb) as k (tenant_id text, entitlement_id text)
      on e.tenant_id = k.tenant_id and e.entitlement_id = k.entitlement_id
    order by e.tenant_id, e.entitlement_id
    for update of e`.execute(tx);
  return new Map(rows.map((r) => [entitlementKey({ tenantId: r.tenant_id, entitlementId: r.entitlement_id }), stateFromRow(r)]));
}

/** The entitlements' live timers (all but the cancelled ones, which planning ignores), by entitlement key. */
export async function timersOfMany(tx: Tx, keys: readonly Key[]): Promise<Map<string, TimerRow[]>> {
  const out = new Map<string, TimerRow[]>();
  if (keys.length === 0) return out;
  const { rows } = await sql<TimerRow>`
    select t.* from timers t
    join jsonb_to_recordset(${keyRows(keys)}::jsonb) as k (tenant_id text, entitlement_id text)
      on t.tenant_id = k.tenant_id and t.entitlement_id = k.entitlement_id
    where t.state <> 'CANCELLED'`.execute(tx);
  for (const r of rows) {
    const key = entitlementKey({ tenantId: r.tenant_id, entitlementId: r.entitlement_id });
    out.set(key, [...(out.get(key) ?? []), r]);
  }
  return out;
}

/** Stores the entitlements' states and the schedules in force, in one statement (key order). */
export async function saveEntitlements(tx: Tx, changes: readonly { state: EntitlementState; schedule: Schedule }[], now: Date): Promise<void> {
  if (changes.length === 0) return;
  const rows = changes
    .map(({ state: s, schedule }) => ({
      tenant_id: s.tenantId,
      entitlement_id: s.entitlementId,
      member_id: s.memberId,
      version: s.version,
      status: s.status,
      remaining: s.remaining,
      policy: s.policy,
      time_zone: s.timeZone,
      purchase_time: s.purchaseTime,
      first_use_time: orNull(s.firstUseTime),
      last_use_time: orNull(s.lastUseTime),
      frozen_days: s.frozenDays,
      freeze_from: orNull(s.freeze?.from),
      freeze_until: orNull(s.freeze?.until),
      ledger_expiry_time: orNull(s.ledgerExpiryTime),
      ledger_grace_end_time: orNull(s.ledgerGraceEndTime),
      expiry_time: orNull(schedule.expiryTime),
      grace_end_time: orNull(schedule.graceEndTime),
    }))
    .sort((a, b) => (entitlementKey({ tenantId: a.tenant_id, entitlementId: a.entitlement_id }) < entitlementKey({ tenantId: b.tenant_id, entitlementId: b.entitlement_id }) ? -1 : 1));
  await sql`
    insert into entitlements (tenant_id, entitlement_id, member_id, version, status, remaining, policy, time_zone, purchase_time,
      first_use_time, last_use_time, frozen_days, freeze_from, freeze_until, ledger_expiry_time, ledger_grace_end_time,
      expiry_time, grace_end_time, update_time)
    select v.tenant_id, v.entitlement_id, v.member_id, v.version, v.status, v.remaining, v.policy, v.time_zone, v.purchase_time,
      v.first_use_time, v.last_use_time, v.frozen_days, v.freeze_from, v.freeze_until, v.ledger_expiry_time, v.ledger_grace_end_time,
      v.expiry_time, v.grace_end_time, ${now}
    from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as v (tenant_id text, entitlement_id text, member_id text, version bigint,
      status text, remaining integer, policy jsonb, time_zone text, purchase_time timestamptz, first_use_time timestamptz,
      last_use_time timestamptz, frozen_days integer, freeze_from timestamptz, freeze_until timestamptz, ledger_expiry_time timestamptz,
      ledger_grace_end_time timestamptz, expiry_time timestamptz, grace_end_time timestamptz)
    on conflict (tenant_id, entitlement_id) do update set
      member_id = excluded.member_id, version = excluded.version, status = excluded.status, remaining = excluded.remaining,
      policy = excluded.policy, time_zone = excluded.time_zone, purchase_time = excluded.purchase_time,
      first_use_time = excluded.first_use_time, last_use_time = excluded.last_use_time, frozen_days = excluded.frozen_days,
      freeze_from = excluded.freeze_from, freeze_until = excluded.freeze_until, ledger_expiry_time = excluded.ledger_expiry_time,
      ledger_grace_end_time = excluded.ledger_grace_end_time, expiry_time = excluded.expiry_time,
      grace_end_time = excluded.grace_end_time, update_time = excluded.update_time`.execute(tx);
}

/** The entitlement's timers in every state. */
export async function timersOf(db: Db | Tx, tenantId: string, entitlementId: string): Promise<TimerRow[]> {
  return db
    .selectFrom('timers')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('entitlement_id', '=', entitlementId)
    // Every state, said as the two partial indexes' predicates so that each arm reads one of them.
    .where(sql<boolean>`(state <> 'CANCELLED' or state = 'CANCELLED')`)
    .orderBy('due_time')
    .orderBy('rank')
    .orderBy('timer_id')
    .execute();
}

export function existingTimer(r: TimerRow): ExistingTimer {
  return { timerId: r.timer_id, kind: r.kind, state: r.state, dueTime: r.due_time, offsetDays: r.offset_days };
}

/** Cancels pending timers; a timer a sweep holds is waited for, and not cancelled once it fired. */
export async function cancelTimers(tx: Tx, timerIds: readonly string[], now: Date): Promise<void> {
  if (timerIds.length === 0) return;
  await sql`
    update timers set state = 'CANCELLED', update_time = ${now}
    where timer_id = any(${timerIds}::uuid[]) and state = 'PENDING'`.execute(tx);
}

/** A timer to store: planned (pending), or planned and cancelled again by a later event of the same batch. */
export interface NewTimer extends PlannedTimer {
  timerId: string;
  tenantId: string;
  entitlementId: string;
  state: 'PENDING' | 'CANCELLED';
}

export async function insertTimers(tx: Tx, timers: readonly NewTimer[], now: Date): Promise<void> {
  if (timers.length === 0) return;
  const rows = timers.map((t) => ({
    timer_id: t.timerId,
    tenant_id: t.tenantId,
    entitlement_id: t.entitlementId,
    kind: t.kind,
    state: t.state,
    due_time: t.dueTime,
    rank: KIND_RANK[t.kind],
    offset_days: t.offsetDays,
    expiry_time: orNull(t.expiryTime),
    grace_end_time: orNull(t.graceEndTime),
  }));
  await sql`
    insert into timers (timer_id, tenant_id, entitlement_id, kind, state, due_time, rank, offset_days, expiry_time, grace_end_time,
      next_attempt_time, create_time, update_time)
    select v.timer_id, v.tenant_id, v.entitlement_id, v.kind, v.state, v.due_time, v.rank, v.offset_days, v.expiry_time, v.grace_end_time,
      v.due_time, ${now}, ${now}
    from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as v (timer_id uuid, tenant_id text, entitlement_id text, kind text, state text,
      due_time timestamptz, rank smallint, offset_days integer, expiry_time timestamptz, grace_end_time timestamptz)`.execute(tx);
}

/** A due timer claimed by a sweep, with what its reminder needs to say. */
export interface ClaimedTimer extends TimerRow {
  member_id: string;
  remaining: number;
}

/**
 * Claims up to `limit` due timers in due order, locking them until the transaction ends; rows other
 * sweeps hold are skipped, so replicas share a backlog without firing anything twice. Only the
 * earliest pending timer of each entitlement is eligible, so its timers fire in order (grace before
 * expiry) even when replicas race.
 */
export async function claimDue(tx: Tx, options: { now: Date; limit: number; tenantId?: string; after?: DueCursor }): Promise<ClaimedTimer[]> {
  const tenant = options.tenantId === undefined ? sql`` : sql`and t.tenant_id = ${options.tenantId}`;
  const after = options.after;
  // From where the caller's last claim ended: the index scan starts there instead of walking every
  // entry before it again (fired timers leave dead entries behind until vacuum).
  const from = after ? sql`and (t.due_time, t.rank, t.timer_id) > (${after.dueTime}, ${after.rank}::smallint, ${after.timerId}::uuid)` : sql``;
  // The member and balance are read for the claimed rows only, not for every candidate the claim
  // walks past (rows other batches hold are skipped after the joins above them ran).
  const result = await sql<ClaimedTimer>`
    select c.*, e.member_id, e.remaining
    from (
      select t.* from timers t
      where t.state = 'PENDING'
        and t.due_time <= ${options.now}
        and t.next_attempt_time <= ${options.now}
        ${tenant}
        ${from}
        and not exists (
          select 1 from timers p
          where p.tenant_id = t.tenant_id and p.entitlement_id = t.entitlement_id and p.state = 'PENDING'
            and (p.due_time, p.rank, p.timer_id) < (t.due_time, t.rank, t.timer_id)
        )
      order by t.due_time, t.rank, t.timer_id
      limit ${options.limit}
      for update of t skip locked
    ) c
    join entitlements e on e.tenant_id = c.tenant_id and e.entitlement_id = c.entitlement_id
    order by c.due_time, c.rank, c.timer_id`.execute(tx);
  return result.rows;
}

/** A batch's rows as one jsonb parameter: the statement's text (and prepared plan) is the same for any number. */
const jsonRows = (rows: readonly object[]) => JSON.stringify(rows);

/** Marks a batch's fired timers in one statement. */
export async function markFired(tx: Tx, fired: readonly { timerId: string; noOp: boolean; attempts: number }[], now: Date): Promise<void> {
  if (fired.length === 0) return;
  await sql`
    update timers t
    set state = 'FIRED', fired_time = ${now}, no_op = v."noOp", attempts = v.attempts, last_error = null, update_time = ${now}
    from jsonb_to_recordset(${jsonRows(fired)}::jsonb) as v ("timerId" uuid, "noOp" boolean, attempts integer)
    where t.timer_id = v."timerId"`.execute(tx);
}

/** Timers whose ledger call failed transiently: pending again from `nextAttempt`, with the error. */
export async function markRetry(tx: Tx, retries: readonly { timerId: string; attempts: number; nextAttempt: Date; error: string }[], now: Date): Promise<void> {
  if (retries.length === 0) return;
  await sql`
    update timers t
    set attempts = v.attempts, next_attempt_time = v."nextAttempt", last_error = v.error, update_time = ${now}
    from jsonb_to_recordset(${jsonRows(retries)}::jsonb) as v ("timerId" uuid, attempts integer, "nextAttempt" timestamptz, error text)
    where t.timer_id = v."timerId"`.execute(tx);
}

/** Timers given up on: FAILED with the error, for an operator. */
export async function markFailed(tx: Tx, failures: readonly { timerId: string; attempts: number; error: string }[], now: Date): Promise<void> {
  if (failures.length === 0) return;
  await sql`
    update timers t
    set state = 'FAILED', attempts = v.attempts, last_error = v.error, update_time = ${now}
    from jsonb_to_recordset(${jsonRows(failures)}::jsonb) as v ("timerId" uuid, attempts integer, error text)
    where t.timer_id = v."timerId"`.execute(tx);
}

/** Puts the tenant's failed timers back to pending, due now, with a fresh retry budget; returns how many. */
export async function requeueFailed(tx: Tx, tenantId: string, now: Date): Promise<number> {
  const result = await tx
    .updateTable('timers')
    .set({ state: 'PENDING', attempts: 0, next_attempt_time: now, update_time: now })
    .where('tenant_id', '=', tenantId)
    .where('state', '=', 'FAILED')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/**
 * `state = 'PENDING'` as a literal, not a parameter: statements run prepared, and a generic plan
 * cannot match a parameter to the partial indexes on pending timers, so it would scan the table.
 */
const PENDING = sql<TimerState>`'PENDING'`;

/** Pending timers due at `now` (including ones backing off after a failure). */
export async function countDue(db: Db, now: Date, tenantId?: string): Promise<number> {
  let q = db
    .selectFrom('timers')
    .select((eb) => eb.fn.countAll<bigint>().as('n'))
    .where('state', '=', PENDING)
    .where('due_time', '<=', now);
  if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId);
  const row = await q.executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Where a ListDue page ends: the last timer's place in due order. */
export async function listDue(db: Db, options: { tenantId: string; before: Date; limit: number; after?: DueCursor }): Promise<TimerRow[]> {
  let q = db
    .selectFrom('timers')
    .selectAll()
    .where('tenant_id', '=', options.tenantId)
    .where('state', '=', PENDING)
    .where('due_time', '<=', options.before);
  const after = options.after;
  if (after) {
    q = q.where((eb) => eb(eb.refTuple('due_time', 'rank', 'timer_id'), '>', eb.tuple(after.dueTime, after.rank, after.timerId)));
  }
  return q.orderBy('due_time').orderBy('rank').orderBy('timer_id').limit(options.limit).execute();
}

/** Deletes cancelled timers last changed before `before`; returns how many. */
export async function pruneCancelledTimers(db: Db, before: Date): Promise<number> {
  const result = await db.deleteFrom('timers').where('state', '=', 'CANCELLED').where('update_time', '<', before).executeTakeFirst();
  return Number(result.numDeletedRows);
}

export async function getEntitlement(db: Db, tenantId: string, entitlementId: string): Promise<EntitlementRow | undefined> {
  return db.selectFrom('entitlements').selectAll().where('tenant_id', '=', tenantId).where('entitlement_id', '=', entitlementId).executeTakeFirst();
}

