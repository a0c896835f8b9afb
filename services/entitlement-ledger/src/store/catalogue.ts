import type { Kysely } from 'kysely';
import type { LedgerDb } from './schema.js';

type Db = Kysely<LedgerDb>;

export interface TenantRow {
  tenantId: string;
  planTier: number;
  features: number[];
  defaultCurrency: string;
  changedAt: Date;
}

export interface BranchRow {
  tenantId: string;
  branchId: string;
  timeZone: string;
  active: boolean;
  changedAt: Date;
}

export interface DefinitionVersionRow {
  tenantId: string;
  definitionId: string;
  version: number;
  code: string;
  terms: Uint8Array;
  publishedAt: Date | null;
  retired: boolean;
}

/** Applies a catalogue.tenant_changed; an event older than what is stored changes nothing. */
export async function upsertTenant(tx: Db, t: TenantRow): Promise<void> {
  await tx
    .insertInto('tenants')
    .values({
      tenant_id: t.tenantId,
      plan_tier: t.planTier,
      features: t.features,
      default_currency: t.defaultCurrency,
      changed_at: t.changedAt,
    })
    .onConflict((oc) =>
      oc
        .column('tenant_id')
        .doUpdateSet((eb) => ({
          plan_tier: eb.ref('excluded.plan_tier'),
          features: eb.ref('excluded.features'),
          default_currency: eb.ref('excluded.default_currency'),
          changed_at: eb.ref('excluded.changed_at'),
        }))
        .where('tenants.changed_at', '<=', (eb) => eb.ref('excluded.changed_at')),
    )
    .execute();
}

export async function upsertBranch(tx: Db, b: BranchRow): Promise<void> {
  await tx
    .insertInto('branches')
    .values({ tenant_id: b.tenantId, branch_id: b.branchId, time_zone: b.timeZone, active: b.active, changed_at: b.changedAt })
    .onConflict((oc) =>
      oc
        .columns(['tenant_id', 'branch_id'])
        .doUpdateSet((eb) => ({
          time_zone: eb.ref('excluded.time_zone'),
          active: eb.ref('excluded.active'),
          changed_at: eb.ref('excluded.changed_at'),
        }))
        .where('branches.changed_at', '<=', (eb) => eb.ref('excluded.changed_at')),
    )
    .execute();
}

/** Published versions are immutable: a redelivered or repeated publication changes nothing. */
export async function insertDefinitionVersion(tx: Db, d: Omit<DefinitionVersionRow, 'retired'>): Promise<void> {
  await tx
    .insertInto('definition_versions')
    .values({
      tenant_id: d.tenantId,
      definition_id: d.definitionId,
      version: d.version,
      code: d.code,
      terms: d.terms,
      published_at: d.publishedAt,
    })
    .onConflict((oc) => oc.columns(['tenant_id', 'definition_id', 'version']).doNothing())
    .execute();
}

/** No new sales of the definition at this version or earlier ones. */
export async function retireDefinition(tx: Db, tenantId: string, definitionId: string, upToVersion: number): Promise<void> {
  await tx
    .updateTable('definition_versions')
    .set({ retired: true })
    .where('tenant_id', '=', tenantId)
    .where('definition_id', '=', definitionId)
    .where('version', '<=', upToVersion)
    .execute();
}

export async function getTenant(db: Db, tenantId: string): Promise<TenantRow | undefined> {
  const row = await db.selectFrom('tenants').selectAll().where('tenant_id', '=', tenantId).executeTakeFirst();
  return (
    row && {
      tenantId: row.tenant_id,
      planTier: row.plan_tier,
      features: row.features,
      defaultCurrency: row.default_currency,
      changedAt: row.changed_at,
    }
  );
}

export async function getBranch(db: Db, tenantId: string, branchId: string): Promise<BranchRow | undefined> {
  const row = await db
    .selectFrom('branches')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('branch_id', '=', branchId)
    .executeTakeFirst();
  return (
    row && { tenantId: row.tenant_id, branchId: row.branch_id, timeZone: row.time_zone, active: row.active, changedAt: row.changed_at }
  );
}

/** The versions of a definition the ledger has seen, newest first. */
export async function definitionVersions(db: Db, tenantId: string, definitionId: string): Promise<DefinitionVersionRow[]> {
  const rows = await db
    .selectFrom('definition_versions')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('definition_id', '=', definitionId)
    .orderBy('version', 'desc')
    .execute();
  return rows.map((r) => ({
    tenantId: r.tenant_id,
    definitionId: r.definition_id,
    version: r.version,
    code: r.code,
    terms: r.terms,
    publishedAt: r.published_at,
    retired: r.retired,
  }));
}
