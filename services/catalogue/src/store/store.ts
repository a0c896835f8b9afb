import type { Kysely } from 'kysely';
import type { CatalogueTables } from './schema.js';
import { isUuid } from '@punchcard/db';

/** A connection or a transaction over the catalogue schema. Every query names the tenant. */
export type Db = Kysely<CatalogueTables>;

export interface TenantRecord {
  tenantId: string;
  name: string;
  planTier: string;
  defaultCurrency: string;
  earningRule: string;
  revision: number;
  createTime: Date;
  updateTime: Date;
}

export interface BranchRecord {
  tenantId: string;
  branchId: string;
  code: string;
  name: string;
  timeZone: string;
  active: boolean;
  revision: number;
  createTime: Date;
  updateTime: Date;
}

export interface DefinitionHead {
  tenantId: string;
  definitionId: string;
  code: string;
  latestVersion: number;
  status: string;
  revision: number;
}

export interface VersionRecord {
  tenantId: string;
  definitionId: string;
  version: number;
  status: string;
  /** DefinitionTerms in protobuf JSON. */
  terms: object;
  createTime: Date;
  publishTime: Date | null;
  retireTime: Date | null;
}

/** What the list filters need from a version's terms. */
export interface VersionIndex {
  allBranches: boolean;
  branchIds: string[];
  serviceCodes: string[];
}

// ---- tenants

export async function insertTenant(db: Db, t: Omit<TenantRecord, 'revision' | 'updateTime'>): Promise<TenantRecord> {
  const row = await db
    .insertInto('tenants')
    .values({
      tenant_id: t.tenantId,
      name: t.name,
      plan_tier: t.planTier,
      default_currency: t.defaultCurrency,
      earning_rule: t.earningRule,
      revision: 1,
      create_time: t.createTime,
      update_time: t.createTime,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return tenantRecord(row);
}

/** `lock` takes the tenant's row lock: it serializes the tenant's catalogue changes (one active package on BASIC). */
export async function getTenant(db: Db, tenantId: string, lock = false): Promise<TenantRecord | undefined> {
  let q = db.selectFrom('tenants').selectAll().where('tenant_id', '=', tenantId);
  if (lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  return row && tenantRecord(row);
}

export async function updateTenant(
  db: Db,
  tenantId: string,
  t: Pick<TenantRecord, 'name' | 'planTier' | 'defaultCurrency' | 'earningRule' | 'updateTime'>,
): Promise<TenantRecord> {
  const row = await db
    .updateTable('tenants')
    .set((eb) => ({
      name: t.name,
      plan_tier: t.planTier,
      default_currency: t.defaultCurrency,
      earning_rule: t.earningRule,
      update_time: t.updateTime,
      revision: eb('revision', '+', 1),
    }))
    .where('tenant_id', '=', tenantId)
    .returningAll()
    .executeTakeFirstOrThrow();
  return tenantRecord(row);
}

function tenantRecord(r: { [K in keyof CatalogueTables['tenants']]: unknown }): TenantRecord {
  return {
    tenantId: r.tenant_id as string,
    name: r.name as string,
    planTier: r.plan_tier as string,
    defaultCurrency: r.default_currency as string,
    earningRule: r.earning_rule as string,
    revision: r.revision as number,
    createTime: r.create_time as Date,
    updateTime: r.update_time as Date,
  };
}

// ---- branches

export async function insertBranch(db: Db, b: Omit<BranchRecord, 'revision' | 'updateTime'>): Promise<BranchRecord> {
  const row = await db
    .insertInto('branches')
    .values({
      tenant_id: b.tenantId,
      branch_id: b.branchId,
      code: b.code,
      name: b.name,
      time_zone: b.timeZone,
      active: b.active,
      revision: 1,
      create_time: b.createTime,
      update_time: b.createTime,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return branchRecord(row);
}

export async function getBranch(db: Db, tenantId: string, branchId: string, lock = false): Promise<BranchRecord | undefined> {
  if (!isUuid(branchId)) return undefined;
  let q = db.selectFrom('branches').selectAll().where('tenant_id', '=', tenantId).where('branch_id', '=', branchId);
  if (lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  return row && branchRecord(row);
}

export async function updateBranch(
  db: Db,
  tenantId: string,
  branchId: string,
  b: Pick<BranchRecord, 'name' | 'timeZone' | 'active' | 'updateTime'>,
): Promise<BranchRecord> {
  const row = await db
    .updateTable('branches')
    .set((eb) => ({ name: b.name, time_zone: b.timeZone, active: b.active, update_time: b.updateTime, revision: eb('revision', '+', 1) }))
    .where('tenant_id', '=', tenantId)
    .where('branch_id', '=', branchId)
    .returningAll()
    .executeTakeFirstOrThrow();
  return branchRecord(row);
}

/** Branches ordered by code, after the `after` code; one more than `limit` tells there is a next page. */
export async function listBranches(
  db: Db,
  tenantId: string,
  page: { after?: string | undefined; limit: number; activeOnly: boolean },
): Promise<BranchRecord[]> {
  let q = db.selectFrom('branches').selectAll().where('tenant_id', '=', tenantId);
  if (page.activeOnly) q = q.where('active', '=', true);
  if (page.after !== undefined) q = q.where('code', '>', page.after);
  const rows = await q.orderBy('code').limit(page.limit + 1).execute();
  return rows.map(branchRecord);
}

/** Which of `ids` are branches of the tenant. */
export async function existingBranchIds(db: Db, tenantId: string, ids: readonly string[]): Promise<Set<string>> {
  const valid = ids.filter(isUuid);
  if (valid.length === 0) return new Set();
  const rows = await db.selectFrom('branches').select('branch_id').where('tenant_id', '=', tenantId).where('branch_id', 'in', valid).execute();
  return new Set(rows.map((r) => r.branch_id));
}

function branchRecord(r: { [K in keyof CatalogueTables['branches']]: unknown }): BranchRecord {
  return {
    tenantId: r.tenant_id as string,
    branchId: r.branch_id as string,
    code: r.code as string,
    name: r.name as string,
    timeZone: r.time_zone as string,
    active: r.active as boolean,
    revision: r.revision as number,
    createTime: r.create_time as Date,
    updateTime: r.update_time as Date,
  };
}

// ---- definitions

export async function insertDefinition(
  db: Db,
  d: { tenantId: string; definitionId: string; code: string; terms: object; index: VersionIndex; createTime: Date },
): Promise<VersionRecord> {
  await db
    .insertInto('definitions')
    .values({
      tenant_id: d.tenantId,
      definition_id: d.definitionId,
      code: d.code,
      latest_version: 1,
      status: 'DRAFT',
      revision: 0,
      create_time: d.createTime,
      update_time: d.createTime,
    })
    .execute();
  return insertVersion(db, { ...d, version: 1, status: 'DRAFT', publishTime: null });
}

export async function getDefinitionHead(db: Db, tenantId: string, definitionId: string, lock = false): Promise<DefinitionHead | undefined> {
  if (!isUuid(definitionId)) return undefined;
  let q = db
    .selectFrom('definitions')
    .select(['tenant_id', 'definition_id', 'code', 'latest_version', 'status', 'revision'])
    .where('tenant_id', '=', tenantId)
    .where('definition_id', '=', definitionId);
  if (lock) q = q.forUpdate();
  const r = await q.executeTakeFirst();
  return (
    r && {
      tenantId: r.tenant_id,
      definitionId: r.definition_id,
      code: r.code,
      latestVersion: r.latest_version,
      status: r.status,
      revision: r.revision,
    }
  );
}

/** A version; 0 = the latest. */
export async function getVersion(db: Db, tenantId: string, definitionId: string, version: number): Promise<VersionRecord | undefined> {
  if (!isUuid(definitionId)) return undefined;
  let q = db
    .selectFrom('definition_versions as v')
    .selectAll('v')
    .where('v.tenant_id', '=', tenantId)
    .where('v.definition_id', '=', definitionId);
  q =
    version === 0
      ? q
          .innerJoin('definitions as d', (j) => j.onRef('d.tenant_id', '=', 'v.tenant_id').onRef('d.definition_id', '=', 'v.definition_id'))
          .whereRef('v.version', '=', 'd.latest_version')
      : q.where('v.version', '=', version);
  const row = await q.executeTakeFirst();
  return row && versionRecord(row);
}

export async function insertVersion(
  db: Db,
  v: { tenantId: string; definitionId: string; version: number; status: string; terms: object; index: VersionIndex; createTime: Date; publishTime: Date | null },
): Promise<VersionRecord> {
  const row = await db
    .insertInto('definition_versions')
    .values({
      tenant_id: v.tenantId,
      definition_id: v.definitionId,
      version: v.version,
      status: v.status,
      terms: JSON.stringify(v.terms),
      all_branches: v.index.allBranches,
      branch_ids: v.index.branchIds,
      service_codes: v.index.serviceCodes,
      create_time: v.createTime,
      publish_time: v.publishTime,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return versionRecord(row);
}

/** Replaces a DRAFT version's terms. */
export async function replaceDraftTerms(
  db: Db,
  key: { tenantId: string; definitionId: string; version: number },
  terms: object,
  index: VersionIndex,
  now: Date,
): Promise<VersionRecord> {
  const row = await db
    .updateTable('definition_versions')
    .set({ terms: JSON.stringify(terms), all_branches: index.allBranches, branch_ids: index.branchIds, service_codes: index.serviceCodes })
    .where('tenant_id', '=', key.tenantId)
    .where('definition_id', '=', key.definitionId)
    .where('version', '=', key.version)
    .where('status', '=', 'DRAFT')
    .returningAll()
    .executeTakeFirstOrThrow();
  await touchDefinition(db, key, {}, now);
  return versionRecord(row);
}

/** Sets a version's status (and its publish / retire time). */
export async function setVersionStatus(
  db: Db,
  key: { tenantId: string; definitionId: string; version: number },
  status: string,
  times: { publishTime?: Date; retireTime?: Date } = {},
): Promise<VersionRecord> {
  const row = await db
    .updateTable('definition_versions')
    .set({ status, ...(times.publishTime && { publish_time: times.publishTime }), ...(times.retireTime && { retire_time: times.retireTime }) })
    .where('tenant_id', '=', key.tenantId)
    .where('definition_id', '=', key.definitionId)
    .where('version', '=', key.version)
    .returningAll()
    .executeTakeFirstOrThrow();
  return versionRecord(row);
}

/** Moves the definition's head: latest version, status, and the event revision when an event is written. */
export async function touchDefinition(
  db: Db,
  key: { tenantId: string; definitionId: string },
  change: { latestVersion?: number; status?: string; bumpRevision?: boolean },
  now: Date,
): Promise<DefinitionHead> {
  const r = await db
    .updateTable('definitions')
    .set((eb) => ({
      update_time: now,
      ...(change.latestVersion !== undefined && { latest_version: change.latestVersion }),
      ...(change.status !== undefined && { status: change.status }),
      ...(change.bumpRevision && { revision: eb('revision', '+', 1) }),
    }))
    .where('tenant_id', '=', key.tenantId)
    .where('definition_id', '=', key.definitionId)
    .returning(['tenant_id', 'definition_id', 'code', 'latest_version', 'status', 'revision'])
    .executeTakeFirstOrThrow();
  return { tenantId: r.tenant_id, definitionId: r.definition_id, code: r.code, latestVersion: r.latest_version, status: r.status, revision: r.revision };
}

export interface DefinitionFilter {
  status?: string | undefined;
  branchId?: string | undefined;
  serviceCode?: string | undefined;
}

/** Latest version of each definition, ordered by code, after the `after` code; fetches `limit + 1`. */
export async function listDefinitions(
  db: Db,
  tenantId: string,
  filter: DefinitionFilter,
  page: { after?: string | undefined; limit: number },
): Promise<Array<VersionRecord & { code: string }>> {
  let q = db
    .selectFrom('definitions as d')
    .innerJoin('definition_versions as v', (j) =>
      j.onRef('v.tenant_id', '=', 'd.tenant_id').onRef('v.definition_id', '=', 'd.definition_id').onRef('v.version', '=', 'd.latest_version'),
    )
    .selectAll('v')
    .select('d.code')
    .where('d.tenant_id', '=', tenantId);
  if (filter.status !== undefined) q = q.where('d.status', '=', filter.status);
  if (filter.serviceCode !== undefined) {
    const code = filter.serviceCode;
    q = q.where((eb) => eb(eb.val(code), '=', eb.fn.any('v.service_codes')));
  }
  if (filter.branchId !== undefined) {
    const id = filter.branchId;
    q = q.where((eb) => eb.or([eb('v.all_branches', '=', true), eb(eb.val(id), '=', eb.fn.any('v.branch_ids'))]));
  }
  if (page.after !== undefined) q = q.where('d.code', '>', page.after);
  const rows = await q.orderBy('d.code').limit(page.limit + 1).execute();
  return rows.map((r) => ({ ...versionRecord(r), code: r.code }));
}

/** Which of `ids` are definitions of the tenant. */
export async function existingDefinitionIds(db: Db, tenantId: string, ids: readonly string[]): Promise<Set<string>> {
  const valid = ids.filter(isUuid);
  if (valid.length === 0) return new Set();
  const rows = await db
    .selectFrom('definitions')
    .select('definition_id')
    .where('tenant_id', '=', tenantId)
    .where('definition_id', 'in', valid)
    .execute();
  return new Set(rows.map((r) => r.definition_id));
}

/** Codes of the tenant's ACTIVE definitions other than `exceptId`. */
export async function otherActiveCodes(db: Db, tenantId: string, exceptId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('definitions')
    .select('code')
    .where('tenant_id', '=', tenantId)
    .where('status', '=', 'ACTIVE')
    .where('definition_id', '!=', exceptId)
    .orderBy('code')
    .limit(5)
    .execute();
  return rows.map((r) => r.code);
}

export async function countDefinitions(db: Db, tenantId: string): Promise<number> {
  const r = await db
    .selectFrom('definitions')
    .select((eb) => eb.fn.countAll<bigint>().as('n'))
    .where('tenant_id', '=', tenantId)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

function versionRecord(r: { [K in keyof CatalogueTables['definition_versions']]: unknown }): VersionRecord {
  return {
    tenantId: r.tenant_id as string,
    definitionId: r.definition_id as string,
    version: r.version as number,
    status: r.status as string,
    terms: r.terms as object,
    createTime: r.create_time as Date,
    publishTime: r.publish_time as Date | null,
    retireTime: r.retire_time as Date | null,
  };
}
