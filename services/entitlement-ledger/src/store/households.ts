import type { Kysely } from 'kysely';
import type { HouseholdKind, LedgerDb } from './schema.js';

type Db = Kysely<LedgerDb>;

export interface HouseholdRecord {
  tenantId: string;
  householdId: string;
  name: string;
  kind: HouseholdKind;
  ownerMemberId: string;
  members: { memberId: string; addedAt: Date }[];
  version: number;
  seq: bigint;
  createdAt: Date;
  updatedAt: Date;
}

export async function insertHousehold(
  tx: Db,
  h: Omit<HouseholdRecord, 'members' | 'version' | 'seq' | 'createdAt' | 'updatedAt'>,
  memberIds: readonly string[],
  now: Date,
): Promise<void> {
  await tx
    .insertInto('households')
    .values({
      tenant_id: h.tenantId,
      household_id: h.householdId,
      name: h.name,
      kind: h.kind,
      owner_member_id: h.ownerMemberId,
      version: 1,
      created_at: now,
      updated_at: now,
    })
    .execute();
  await tx
    .insertInto('household_members')
    .values(memberIds.map((m) => ({ tenant_id: h.tenantId, household_id: h.householdId, member_id: m, added_at: now })))
    .execute();
}

async function withMembers(db: Db, rows: { tenant_id: string; household_id: string; name: string; kind: HouseholdKind; owner_member_id: string; version: bigint; seq: bigint; created_at: Date; updated_at: Date }[]): Promise<HouseholdRecord[]> {
  if (rows.length === 0) return [];
  const members = await db
    .selectFrom('household_members')
    .selectAll()
    .where('tenant_id', '=', rows[0]!.tenant_id)
    .where(
      'household_id',
      'in',
      rows.map((r) => r.household_id),
    )
    .orderBy('added_at')
    .orderBy('member_id')
    .execute();
  return rows.map((r) => ({
    tenantId: r.tenant_id,
    householdId: r.household_id,
    name: r.name,
    kind: r.kind,
    ownerMemberId: r.owner_member_id,
    // The owner first, then in the order they joined.
    members: members
      .filter((m) => m.household_id === r.household_id)
      .sort((x, y) => Number(y.member_id === r.owner_member_id) - Number(x.member_id === r.owner_member_id))
      .map((m) => ({ memberId: m.member_id, addedAt: m.added_at })),
    version: Number(r.version),
    seq: r.seq,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }));
}

export async function getHousehold(db: Db, tenantId: string, householdId: string): Promise<HouseholdRecord | undefined> {
  const rows = await db.selectFrom('households').selectAll().where('tenant_id', '=', tenantId).where('household_id', '=', householdId).execute();
  return (await withMembers(db, rows))[0];
}

/** Row-locks the household: membership changes of one household are serialised. */
export async function lockHousehold(tx: Db, tenantId: string, householdId: string): Promise<HouseholdRecord | undefined> {
  const rows = await tx.selectFrom('households').selectAll().where('tenant_id', '=', tenantId).where('household_id', '=', householdId).forUpdate().execute();
  return (await withMembers(tx, rows))[0];
}

export async function listHouseholds(db: Db, tenantId: string, memberId: string | undefined, afterSeq: bigint, limit: number): Promise<HouseholdRecord[]> {
  let q = db.selectFrom('households').selectAll().where('tenant_id', '=', tenantId).where('seq', '>', afterSeq);
  if (memberId) {
    q = q.where('household_id', 'in', (eb) =>
      eb.selectFrom('household_members').select('household_id').where('tenant_id', '=', tenantId).where('member_id', '=', memberId),
    );
  }
  return withMembers(db, await q.orderBy('seq').limit(limit).execute());
}

export async function addMember(tx: Db, tenantId: string, householdId: string, memberId: string, now: Date): Promise<void> {
  await tx.insertInto('household_members').values({ tenant_id: tenantId, household_id: householdId, member_id: memberId, added_at: now }).execute();
}

export async function removeMember(tx: Db, tenantId: string, householdId: string, memberId: string): Promise<void> {
  await tx
    .deleteFrom('household_members')
    .where('tenant_id', '=', tenantId)
    .where('household_id', '=', householdId)
    .where('member_id', '=', memberId)
    .execute();
}

export async function bumpHousehold(tx: Db, tenantId: string, householdId: string, now: Date): Promise<void> {
  await tx
    .updateTable('households')
    .set((eb) => ({ version: eb('version', '+', 1n), updated_at: now }))
    .where('tenant_id', '=', tenantId)
    .where('household_id', '=', householdId)
    .execute();
}

/** Which of `memberIds` belong to the household. */
export async function membersOf(db: Db, tenantId: string, householdId: string, memberIds: readonly string[]): Promise<Set<string>> {
  if (memberIds.length === 0) return new Set();
  const rows = await db
    .selectFrom('household_members')
    .select('member_id')
    .where('tenant_id', '=', tenantId)
    .where('household_id', '=', householdId)
    .where('member_id', 'in', [...memberIds])
    .execute();
  return new Set(rows.map((r) => r.member_id));
}

/** Whether two members belong to a common household. */
export async function shareAHousehold(db: Db, tenantId: string, a: string, b: string): Promise<boolean> {
  const row = await db
    .selectFrom('household_members as x')
    .innerJoin('household_members as y', (j) => j.onRef('y.tenant_id', '=', 'x.tenant_id').onRef('y.household_id', '=', 'x.household_id'))
    .select('x.household_id')
    .where('x.tenant_id', '=', tenantId)
    .where('x.member_id', '=', a)
    .where('y.member_id', '=', b)
    .executeTakeFirst();
  return row !== undefined;
}
