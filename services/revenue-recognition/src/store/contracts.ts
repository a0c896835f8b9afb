import { sqlWrite, type OwnWrite } from '@punchcard/bus';
import { sql, type Kysely, type Selectable } from 'kysely';
import type { Contract, ContractLineKind } from '../domain/contract.js';
import type { EntitlementStatus, SessionOrder } from '../domain/types.js';
import type { ContractTable, RevenueDb } from './schema.js';

/** An entitlement as revenue keys it: ids are unique within their tenant only. */
export interface EntitlementRef {
  tenantId: string;
  entitlementId: string;
}

export const entitlementKey = (e: EntitlementRef): string => `${e.tenantId}\u0000${e.entitlementId}`;

/** What revenue holds of an entitlement: the version applied so far (0 before its first event) and its contract. */
export interface EntitlementState {
  applied: number;
  contract: Contract | undefined;
}

/**
 * Locks the entitlements' progress rows (creating them at 0) for the rest of the transaction, so two
 * replicas never apply events of one entitlement concurrently, and returns each one's state by
 * {@link entitlementKey}. Rows are created and locked in key order: two transactions locking
 * overlapping sets wait for each other instead of deadlocking.
 */
export async function lockEntitlements(db: Kysely<RevenueDb>, refs: readonly EntitlementRef[]): Promise<Map<string, EntitlementState>> {
  const out = new Map<string, EntitlementState>();
  if (refs.length === 0) return out;
  const tenants = refs.map((r) => r.tenantId);
  const entitlements = refs.map((r) => r.entitlementId);
  await sql`
    insert into entitlement_progress (tenant_id, entitlement_id, applied_version)
    select k.tenant_id, k.entitlement_id, 0 from unnest(${tenants}::text[], ${entitlements}::text[]) as k(tenant_id, entitlement_id)
    order by k.tenant_id, k.entitlement_id
    on conflict do nothing`.execute(db);
  const rows = await db
    .selectFrom('entitlement_progress as p')
    .leftJoin('contract as c', (j) => j.onRef('c.tenant_id', '=', 'p.tenant_id').onRef('c.entitlement_id', '=', 'p.entitlement_id'))
    .selectAll('c')
    .select(['p.tenant_id as progress_tenant_id', 'p.entitlement_id as progress_entitlement_id', 'p.applied_version'])
    .where(sql<boolean>`(p.tenant_id, p.entitlement_id) in (select * from unnest(${tenants}::text[], ${entitlements}::text[]))`)
    .orderBy('p.tenant_id')
    .orderBy('p.entitlement_id')
    .forUpdate('p')
    .execute();
  for (const r of rows) {
    const contract = r.tenant_id === null ? undefined : fromRow(r as ContractRow);
    out.set(entitlementKey({ tenantId: r.progress_tenant_id, entitlementId: r.progress_entitlement_id }), { applied: Number(r.applied_version), contract });
  }
  return out;
}

/** The writes recording the version applied of each entitlement (locked by {@link lockEntitlements}), for a statement's `alongside`. */
export function progressWrites(progress: readonly (EntitlementRef & { version: number })[]): OwnWrite[] {
  if (progress.length === 0) return [];
  return [
    sqlWrite(
      () => sql`
        update entitlement_progress p set applied_version = v.version
        from jsonb_to_recordset(${JSON.stringify(progress.map((x) => ({ tenant: x.tenantId, entitlement: x.entitlementId, version: x.version })))}::jsonb)
          as v (tenant text, entitlement text, version bigint)
        where p.tenant_id = v.tenant and p.entitlement_id = v.entitlement`,
    ),
  ];
}

export async function loadContract(db: Kysely<RevenueDb>, tenantId: string, entitlementId: string): Promise<Contract | undefined> {
  const row = await db.selectFrom('contract').selectAll().where('tenant_id', '=', tenantId).where('entitlement_id', '=', entitlementId).executeTakeFirst();
  return row && fromRow(row);
}

/**
 * The writes that insert or update contracts (at most one per entitlement), for a statement's
 * `alongside`. The rows travel as one jsonb parameter: as arrays, pg would quote and escape every
 * JSON column's text into an array literal (about four times the client's CPU for a 10-session contract).
 */
export function contractsWrites(contracts: readonly Contract[], now: Date): OwnWrite[] {
  if (contracts.length === 0) return [];
  return [
    sqlWrite(() => sql`
      insert into contract (tenant_id, entitlement_id, definition_id, definition_version, member_id, currency, liability_branch_id,
        breakage_bps, session_order, standalone_price_minor, costs, status, lines, sessions, package_recognised_minor, breakage_recognised_minor, updated_at)
      select c.*, ${now}::timestamptz from jsonb_to_recordset(${json(contracts.map(toRow))}::jsonb) as c(
        tenant_id text, entitlement_id text, definition_id text, definition_version integer, member_id text, currency text,
        liability_branch_id text, breakage_bps integer, session_order text, standalone_price_minor bigint, costs jsonb, status text,
        lines jsonb, sessions jsonb, package_recognised_minor bigint, breakage_recognised_minor bigint)
      on conflict (tenant_id, entitlement_id) do update set
        status = excluded.status,
        lines = excluded.lines,
        sessions = excluded.sessions,
        package_recognised_minor = excluded.package_recognised_minor,
        breakage_recognised_minor = excluded.breakage_recognised_minor,
        updated_at = excluded.updated_at`),
  ];
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

/** JSON with int8 values as strings, as the JSON columns store them and jsonb_to_recordset reads bigint. */
const json = (value: unknown) => JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));

function toRow(c: Contract) {
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
    costs: c.costs,
    status: c.status,
    lines: c.lines,
    sessions: c.sessions,
    package_recognised_minor: c.packageRecognised,
    breakage_recognised_minor: c.breakageRecognised,
  };
}

