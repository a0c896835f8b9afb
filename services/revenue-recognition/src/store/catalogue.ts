import { sql, type Kysely } from 'kysely';
import type { EarningRule } from '../domain/types.js';
import type { RevenueDb } from './schema.js';

export interface TenantRow {
  tenantId: string;
  currency: string;
  earningRule: EarningRule;
}

/** Keeps the newest version of a tenant: an older update arriving late changes nothing. */
export async function upsertTenant(db: Kysely<RevenueDb>, t: TenantRow & { updatedAt: Date }): Promise<void> {
  await db
    .insertInto('tenant')
    .values({ tenant_id: t.tenantId, currency: t.currency, earning_rule: t.earningRule, updated_at: t.updatedAt })
    .onConflict((oc) =>
      oc
        .column('tenant_id')
        .doUpdateSet((eb) => ({ currency: eb.ref('excluded.currency'), earning_rule: eb.ref('excluded.earning_rule'), updated_at: eb.ref('excluded.updated_at') }))
        .where('tenant.updated_at', '<=', (eb) => eb.ref('excluded.updated_at')),
    )
    .execute();
}

export async function getTenant(db: Kysely<RevenueDb>, tenantId: string): Promise<TenantRow | undefined> {
  const row = await db.selectFrom('tenant').selectAll().where('tenant_id', '=', tenantId).executeTakeFirst();
  return row && { tenantId: row.tenant_id, currency: row.currency, earningRule: row.earning_rule as EarningRule };
}

export async function upsertBranch(db: Kysely<RevenueDb>, b: { tenantId: string; branchId: string; timeZone: string; updatedAt: Date }): Promise<void> {
  await db
    .insertInto('branch')
    .values({ tenant_id: b.tenantId, branch_id: b.branchId, time_zone: b.timeZone, updated_at: b.updatedAt })
    .onConflict((oc) =>
      oc
        .columns(['tenant_id', 'branch_id'])
        .doUpdateSet((eb) => ({ time_zone: eb.ref('excluded.time_zone'), updated_at: eb.ref('excluded.updated_at') }))
        .where('branch.updated_at', '<=', (eb) => eb.ref('excluded.updated_at')),
    )
    .execute();
}

/**
 * The tenants among `tenantIds` that revenue has heard of, by id, and the time zones of every branch
 * of theirs it has heard of (tenant id → branch id → zone; an empty map for each other id): one query.
 */
export async function tenantsWithZones(
  db: Kysely<RevenueDb>,
  tenantIds: readonly string[],
): Promise<{ tenants: Map<string, TenantRow>; zones: Map<string, Map<string, string>> }> {
  const ids = [...new Set(tenantIds)];
  const tenants = new Map<string, TenantRow>();
  const zones = new Map<string, Map<string, string>>(ids.map((id) => [id, new Map()]));
  if (ids.length === 0) return { tenants, zones };
  // A row per branch, the tenant's columns on each; a branch whose tenant is unknown yet comes alone.
  const { rows } = await sql<{ tenant_id: string; currency: string | null; earning_rule: string | null; branch_id: string | null; time_zone: string | null }>`
    select v.id as tenant_id, t.currency, t.earning_rule, b.branch_id, b.time_zone
    from jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb) as v (id)
    left join tenant t on t.tenant_id = v.id
    left join branch b on b.tenant_id = v.id`.execute(db);
  for (const r of rows) {
    if (r.currency !== null && !tenants.has(r.tenant_id)) tenants.set(r.tenant_id, { tenantId: r.tenant_id, currency: r.currency, earningRule: r.earning_rule as EarningRule });
    if (r.branch_id !== null) zones.get(r.tenant_id)!.set(r.branch_id, r.time_zone!);
  }
  return { tenants, zones };
}

/** Time zones of the tenant's branches among `branchIds` that revenue has heard of. */
export async function branchTimeZones(db: Kysely<RevenueDb>, tenantId: string, branchIds: readonly string[]): Promise<Map<string, string>> {
  const ids = [...new Set(branchIds.filter(Boolean))];
  if (ids.length === 0) return new Map();
  const rows = await db.selectFrom('branch').select(['branch_id', 'time_zone']).where('tenant_id', '=', tenantId).where('branch_id', 'in', ids).execute();
  return new Map(rows.map((r) => [r.branch_id, r.time_zone]));
}

/** Definition versions are immutable once published; a republish of the same version refreshes it. */
export async function upsertDefinition(
  db: Kysely<RevenueDb>,
  d: { tenantId: string; definitionId: string; version: number; code: string; name: string; terms: Uint8Array },
): Promise<void> {
  await db
    .insertInto('definition')
    .values({ tenant_id: d.tenantId, definition_id: d.definitionId, version: d.version, code: d.code, name: d.name, terms: d.terms })
    .onConflict((oc) =>
      oc.columns(['tenant_id', 'definition_id', 'version']).doUpdateSet((eb) => ({ code: eb.ref('excluded.code'), name: eb.ref('excluded.name'), terms: eb.ref('excluded.terms') })),
    )
    .execute();
}

export interface DefinitionRef {
  tenantId: string;
  definitionId: string;
  version: number;
}

export const definitionKey = (d: DefinitionRef): string => `${d.tenantId}\u0000${d.definitionId}\u0000${d.version}`;

/** Terms of the given definition versions that revenue has heard of, by {@link definitionKey}. */
export async function definitionTermsOf(db: Kysely<RevenueDb>, refs: readonly DefinitionRef[]): Promise<Map<string, Uint8Array>> {
  if (refs.length === 0) return new Map();
  const { rows } = await sql<{ tenant_id: string; definition_id: string; version: number; terms: Uint8Array }>`
    select tenant_id, definition_id, version, terms from definition
    where (tenant_id, definition_id, version) in (
      select * from unnest(${refs.map((r) => r.tenantId)}::text[], ${refs.map((r) => r.definitionId)}::text[], ${refs.map((r) => r.version)}::integer[]))`.execute(db);
  return new Map(rows.map((r) => [definitionKey({ tenantId: r.tenant_id, definitionId: r.definition_id, version: r.version }), r.terms]));
}
