import type { Kysely, Selectable } from 'kysely';
import type { Contract, ContractLineKind } from '../domain/contract.js';
import type { EntitlementStatus, SessionOrder } from '../domain/types.js';
import type { ContractTable, RevenueDb } from './schema.js';

/**
 * Locks the entitlement's progress row (creating it at 0) for the rest of the transaction and returns
 * the version applied so far, so two replicas never apply events of one entitlement concurrently.
 */
export async function lockProgress(db: Kysely<RevenueDb>, tenantId: string, entitlementId: string): Promise<number> {
  await db
    .insertInto('entitlement_progress')
    .values({ tenant_id: tenantId, entitlement_id: entitlementId, applied_version: 0 })
    .onConflict((oc) => oc.columns(['tenant_id', 'entitlement_id']).doNothing())
    .execute();
  const row = await db
    .selectFrom('entitlement_progress')
    .select('applied_version')
    .where('tenant_id', '=', tenantId)
    .where('entitlement_id', '=', entitlementId)
    .forUpdate()
    .executeTakeFirstOrThrow();
  return Number(row.applied_version);
}

export async function setProgress(db: Kysely<RevenueDb>, tenantId: string, entitlementId: string, version: number): Promise<void> {
  await db
    .updateTable('entitlement_progress')
    .set({ applied_version: version })
    .where('tenant_id', '=', tenantId)
    .where('entitlement_id', '=', entitlementId)
    .execute();
}

export async function loadContract(db: Kysely<RevenueDb>, tenantId: string, entitlementId: string): Promise<Contract | undefined> {
  const row = await db.selectFrom('contract').selectAll().where('tenant_id', '=', tenantId).where('entitlement_id', '=', entitlementId).executeTakeFirst();
  return row && fromRow(row);
}

export async function saveContract(db: Kysely<RevenueDb>, c: Contract, now: Date): Promise<void> {
  const values = toRow(c, now);
  await db
    .insertInto('contract')
    .values(values)
    .onConflict((oc) =>
      oc.columns(['tenant_id', 'entitlement_id']).doUpdateSet({
        status: values.status,
        lines: values.lines,
        sessions: values.sessions,
        package_recognised_minor: values.package_recognised_minor,
        breakage_recognised_minor: values.breakage_recognised_minor,
        updated_at: now,
      }),
    )
    .execute();
}

/** A row as read: JSON columns arrive parsed, int8 as bigint. */
type ContractRow = Selectable<ContractTable>;

function fromRow(r: ContractRow): Contract {
  return {
    tenantId: r.tenant_id,
    entitlementId: r.entitlement_id,
    definitionId: r.definition_id,
    definitionVersion: r.definition_version,
    memberId: r.member_id,
    currency: r.currency,
    liabilityBranchId: r.liability_branch_id,
    breakageBps: r.breakage_bps,
    sessionOrder: r.session_order as SessionOrder,
    standalonePrice: BigInt(r.standalone_price_minor),
    costs: {
      perSession: BigInt(r.costs.perSession),
      byBranch: Object.fromEntries(Object.entries(r.costs.byBranch).map(([k, v]) => [k, BigInt(v)])),
    },
    status: r.status as EntitlementStatus,
    lines: r.lines.map((l) => ({ ...l, kind: l.kind as ContractLineKind, amount: BigInt(l.amount) })),
    sessions: r.sessions.map((s) => ({
      ...s,
      value: BigInt(s.value),
      consumedBy: s.consumedBy && { ...s.consumedBy, deliveryCost: BigInt(s.consumedBy.deliveryCost) },
    })),
    packageRecognised: BigInt(r.package_recognised_minor),
    breakageRecognised: BigInt(r.breakage_recognised_minor),
  };
}

const json = (value: unknown) => JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));

function toRow(c: Contract, now: Date) {
  return {
    tenant_id: c.tenantId,
    entitlement_id: c.entitlementId,
    definition_id: c.definitionId,
    definition_version: c.definitionVersion,
    member_id: c.memberId,
    currency: c.currency,
    liability_branch_id: c.liabilityBranchId,
    breakage_bps: c.breakageBps,
    session_order: c.sessionOrder,
    standalone_price_minor: c.standalonePrice,
    costs: json(c.costs),
    status: c.status,
    lines: json(c.lines),
    sessions: json(c.sessions),
    package_recognised_minor: c.packageRecognised,
    breakage_recognised_minor: c.breakageRecognised,
    updated_at: now,
  };
}

