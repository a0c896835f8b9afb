import { randomUUID } from 'node:crypto';
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import {
  CatalogueService,
  CreateBranchRequestSchema,
  CreateDefinitionRequestSchema,
  CreateTenantRequestSchema,
  PublishDefinitionRequestSchema,
  RetireDefinitionRequestSchema,
  UpdateBranchRequestSchema,
  UpdateDefinitionRequestSchema,
  UpdateTenantRequestSchema,
  CreateBranchResponseSchema,
  CreateDefinitionResponseSchema,
  CreateTenantResponseSchema,
  DefinitionStatus,
  EarningRule,
  GetBranchResponseSchema,
  GetDefinitionResponseSchema,
  GetTenantResponseSchema,
  ListBranchesResponseSchema,
  ListDefinitionsResponseSchema,
  PlanTier,
  PublishDefinitionResponseSchema,
  RetireDefinitionResponseSchema,
  UpdateBranchResponseSchema,
  UpdateDefinitionResponseSchema,
  UpdateTenantResponseSchema,
  type CreateBranchRequest,
  type CreateDefinitionRequest,
  type CreateTenantRequest,
  type GetBranchRequest,
  type GetDefinitionRequest,
  type ListBranchesRequest,
  type ListDefinitionsRequest,
  type PublishDefinitionRequest,
  type RetireDefinitionRequest,
  type UpdateBranchRequest,
  type UpdateDefinitionRequest,
  type UpdateTenantRequest,
} from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { inTransaction, isUniqueViolation, requestHash, withIdempotency } from '@punchcard/db';
import { alreadyExists, failedPrecondition, invalidArgument, notFound, requireRole, type Caller } from '@punchcard/platform';
import type { Kysely } from 'kysely';
import { assertMayChangeBranch, assertMayChangeDefinition, assertTenantWide } from '../domain/access.js';
import { assertValid } from '../domain/errors.js';
import { assertCanActivate, assertTermsInPlan } from '../domain/plan-gates.js';
import { newBranch, newTenant, updateBranch, updateTenant, type EarningRule as DomainEarningRule, type TenantFields } from '../domain/tenant.js';
import type { NormalizedTerms } from '../domain/terms.js';
import type { PlanTier as DomainPlanTier } from '../domain/tiers.js';
import { referencesOf, referenceViolations, validateTerms } from '../domain/validate-terms.js';
import { assertCanPublish, assertCanRetire, planUpdate, type DefinitionStatus as DomainStatus } from '../domain/versioning.js';
import * as events from '../events/catalogue-events.js';
import type { CatalogueTables } from '../store/schema.js';
import * as store from '../store/store.js';
import { branchToProto, definitionToProto, enumName, storedTerms, tenantToProto, termsFromProto, termsToJson } from './convert.js';
import { decodePageToken, page, pageSize } from './pagination.js';

export interface HandlerDeps {
  db: Kysely<CatalogueTables>;
  /** The service clock; tests inject a fixed one. */
  now: () => Date;
}

/** Tenant ids appear in event subjects, so they must be subject tokens. */
const TENANT_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The CatalogueService methods as plain functions of (caller, request). Mutations run in one
 * transaction with their idempotency record and their outbox events.
 */
export function catalogueHandlers(deps: HandlerDeps) {
  const { db, now } = deps;

  /**
   * Runs a mutation once per idempotency key: the stored response bytes are replayed for a repeat
   * of the same request; the key with a different request is refused.
   */
  async function mutate<I extends DescMessage, O extends DescMessage>(
    caller: Caller,
    method: string,
    input: I,
    request: MessageShape<I> & { idempotencyKey: string },
    output: O,
    run: (tx: store.Db, at: Date) => Promise<MessageShape<O>>,
  ): Promise<MessageShape<O>> {
    if (request.idempotencyKey === '') throw invalidArgument('idempotency_key', 'required');
    const hash = requestHash(toBinary(input, { ...request, idempotencyKey: '' }));
    const { response } = await inTransaction(db, (tx) =>
      withIdempotency(tx, { tenantId: caller.tenantId, key: request.idempotencyKey, method: `${CatalogueService.typeName}/${method}`, requestHash: hash }, async () =>
        toBinary(output, await run(tx, now())),
      ),
    );
    return fromBinary(output, response);
  }

  async function tenantOf(tx: store.Db, caller: Caller, lock = false): Promise<store.TenantRecord> {
    const tenant = await store.getTenant(tx, caller.tenantId, lock);
    if (!tenant) throw failedPrecondition(`tenant ${caller.tenantId} is not set up; call CreateTenant first`);
    return tenant;
  }

  async function checkedTerms(tx: store.Db, caller: Caller, tenant: store.TenantRecord, raw: Parameters<typeof termsFromProto>[0], definitionId?: string) {
    const terms = validateTerms(termsFromProto(raw), { currency: tenant.defaultCurrency, definitionId });
    assertMayChangeDefinition(caller, terms.branches, 'terms.branches');
    const refs = referencesOf(terms);
    assertValid(
      referenceViolations(terms, {
        branches: await store.existingBranchIds(tx, tenant.tenantId, [...refs.branches.keys()]),
        definitions: await store.existingDefinitionIds(tx, tenant.tenantId, [...refs.definitions.keys()]),
      }),
    );
    assertTermsInPlan(tenant.planTier as DomainPlanTier, terms);
    return terms;
  }

  /** The definition a mutation acts on, locked; a branch-scoped caller must cover its current branches. */
  async function definitionHead(tx: store.Db, caller: Caller, definitionId: string) {
    if (definitionId === '') throw invalidArgument('definition_id', 'required');
    const head = await store.getDefinitionHead(tx, caller.tenantId, definitionId, true);
    if (!head) throw notFound('definition', definitionId);
    const latest = await store.getVersion(tx, caller.tenantId, definitionId, head.latestVersion);
    if (!latest) throw new Error(`definition ${definitionId} has no version ${head.latestVersion}`);
    const terms = storedTerms(latest.terms);
    assertMayChangeDefinition(caller, terms.branches, `definition ${JSON.stringify(head.code)} version ${latest.version}`);
    return { head, latest, state: { version: latest.version, status: latest.status as DomainStatus, terms } };
  }

  return {
    async createTenant(caller: Caller, req: CreateTenantRequest) {
      requireRole(caller, 'admin');
      assertTenantWide(caller, 'CreateTenant');
      if (!TENANT_ID.test(caller.tenantId)) {
        throw invalidArgument('tenant_id', `the token's tenant id ${JSON.stringify(caller.tenantId)} must be 1-64 letters, digits, "_" or "-"`);
      }
      const fields = newTenant(tenantInput(req));
      return mutate(caller, 'CreateTenant', CreateTenantRequestSchema, req, CreateTenantResponseSchema, async (tx, at) => {
        if (await store.getTenant(tx, caller.tenantId)) throw alreadyExists('tenant', caller.tenantId);
        const record = await store
          .insertTenant(tx, { tenantId: caller.tenantId, ...fields, createTime: at })
          .catch(rethrowUnique('tenant', caller.tenantId));
        const tenant = tenantToProto(record);
        await events.tenantChanged(tx, tenant, record.revision, at);
        return create(CreateTenantResponseSchema, { tenant });
      });
    },

    async getTenant(caller: Caller) {
      const tenant = await store.getTenant(db, caller.tenantId);
      if (!tenant) throw notFound('tenant', caller.tenantId);
      return create(GetTenantResponseSchema, { tenant: tenantToProto(tenant) });
    },

    async updateTenant(caller: Caller, req: UpdateTenantRequest) {
      requireRole(caller, 'admin');
      assertTenantWide(caller, 'UpdateTenant');
      return mutate(caller, 'UpdateTenant', UpdateTenantRequestSchema, req, UpdateTenantResponseSchema, async (tx, at) => {
        const current = await store.getTenant(tx, caller.tenantId, true);
        if (!current) throw notFound('tenant', caller.tenantId);
        const fields = tenantFields(current);
        const next = updateTenant(fields, tenantInput(req), { definitionCount: await store.countDefinitions(tx, caller.tenantId) });
        if (sameFields(fields, next)) return create(UpdateTenantResponseSchema, { tenant: tenantToProto(current) });
        const record = await store.updateTenant(tx, caller.tenantId, { ...next, updateTime: at });
        const tenant = tenantToProto(record);
        await events.tenantChanged(tx, tenant, record.revision, at);
        return create(UpdateTenantResponseSchema, { tenant });
      });
    },

    async createBranch(caller: Caller, req: CreateBranchRequest) {
      requireRole(caller, 'admin', 'manager');
      assertTenantWide(caller, 'CreateBranch');
      const fields = newBranch({ code: req.code, name: req.name, timeZone: req.timeZone });
      return mutate(caller, 'CreateBranch', CreateBranchRequestSchema, req, CreateBranchResponseSchema, async (tx, at) => {
        await tenantOf(tx, caller);
        const record = await store
          .insertBranch(tx, { tenantId: caller.tenantId, branchId: randomUUID(), ...fields, createTime: at })
          .catch(rethrowUnique('branch code', fields.code));
        const branch = branchToProto(record);
        await events.branchChanged(tx, branch, record.revision, at);
        return create(CreateBranchResponseSchema, { branch });
      });
    },

    async updateBranch(caller: Caller, req: UpdateBranchRequest) {
      requireRole(caller, 'admin', 'manager');
      if (req.branchId === '') throw invalidArgument('branch_id', 'required');
      assertMayChangeBranch(caller, req.branchId);
      return mutate(caller, 'UpdateBranch', UpdateBranchRequestSchema, req, UpdateBranchResponseSchema, async (tx, at) => {
        const current = await store.getBranch(tx, caller.tenantId, req.branchId, true);
        if (!current) throw notFound('branch', req.branchId);
        const next = updateBranch(current, { name: req.name, timeZone: req.timeZone, active: req.active });
        if (next.name === current.name && next.timeZone === current.timeZone && next.active === current.active) {
          return create(UpdateBranchResponseSchema, { branch: branchToProto(current) });
        }
        const record = await store.updateBranch(tx, caller.tenantId, req.branchId, { ...next, updateTime: at });
        const branch = branchToProto(record);
        await events.branchChanged(tx, branch, record.revision, at);
        return create(UpdateBranchResponseSchema, { branch });
      });
    },

    async getBranch(caller: Caller, req: GetBranchRequest) {
      if (req.branchId === '') throw invalidArgument('branch_id', 'required');
      const branch = await store.getBranch(db, caller.tenantId, req.branchId);
      if (!branch) throw notFound('branch', req.branchId);
      return create(GetBranchResponseSchema, { branch: branchToProto(branch) });
    },

    async listBranches(caller: Caller, req: ListBranchesRequest) {
      const limit = pageSize(req.pageSize);
      const filter = { activeOnly: req.activeOnly };
      const after = decodePageToken(req.pageToken, filter);
      const rows = await store.listBranches(db, caller.tenantId, { after, limit, activeOnly: req.activeOnly });
      const p = page(rows, limit, (b) => b.code, filter);
      return create(ListBranchesResponseSchema, { branches: p.items.map(branchToProto), nextPageToken: p.nextPageToken });
    },

    async createDefinition(caller: Caller, req: CreateDefinitionRequest) {
      requireRole(caller, 'admin', 'manager');
      return mutate(caller, 'CreateDefinition', CreateDefinitionRequestSchema, req, CreateDefinitionResponseSchema, async (tx, at) => {
        const tenant = await tenantOf(tx, caller, true);
        const terms = await checkedTerms(tx, caller, tenant, req.terms);
        const record = await store
          .insertDefinition(tx, {
            tenantId: tenant.tenantId,
            definitionId: randomUUID(),
            code: terms.code,
            terms: termsToJson(terms),
            index: indexOf(terms),
            createTime: at,
          })
          .catch(rethrowUnique('definition code', terms.code));
        return create(CreateDefinitionResponseSchema, { definition: definitionToProto(record) });
      });
    },

    async updateDefinition(caller: Caller, req: UpdateDefinitionRequest) {
      requireRole(caller, 'admin', 'manager');
      return mutate(caller, 'UpdateDefinition', UpdateDefinitionRequestSchema, req, UpdateDefinitionResponseSchema, async (tx, at) => {
        const tenant = await tenantOf(tx, caller);
        const { head, latest, state } = await definitionHead(tx, caller, req.definitionId);
        const terms = await checkedTerms(tx, caller, tenant, req.terms, head.definitionId);
        const plan = planUpdate(state, head.definitionId, terms);
        const key = { tenantId: tenant.tenantId, definitionId: head.definitionId };
        switch (plan.kind) {
          case 'unchanged':
            return create(UpdateDefinitionResponseSchema, { definition: definitionToProto(latest) });
          case 'edit_draft': {
            const record = await store.replaceDraftTerms(tx, { ...key, version: plan.version }, termsToJson(terms), indexOf(terms), at);
            return create(UpdateDefinitionResponseSchema, { definition: definitionToProto(record) });
          }
          case 'new_version': {
            await store.setVersionStatus(tx, { ...key, version: plan.supersedes }, 'SUPERSEDED');
            const record = await store.insertVersion(tx, {
              ...key,
              version: plan.version,
              status: 'ACTIVE',
              terms: termsToJson(terms),
              index: indexOf(terms),
              createTime: at,
              publishTime: at,
            });
            const moved = await store.touchDefinition(tx, key, { latestVersion: plan.version, bumpRevision: true }, at);
            const definition = definitionToProto(record);
            await events.definitionPublished(tx, definition, moved.revision, at);
            return create(UpdateDefinitionResponseSchema, { definition });
          }
        }
      });
    },

    async getDefinition(caller: Caller, req: GetDefinitionRequest) {
      if (req.definitionId === '') throw invalidArgument('definition_id', 'required');
      if (req.version < 0) throw invalidArgument('version', 'must not be negative (0 = the latest)');
      const record = await store.getVersion(db, caller.tenantId, req.definitionId, req.version);
      if (!record) {
        const exists = req.version !== 0 && (await store.getDefinitionHead(db, caller.tenantId, req.definitionId));
        throw exists ? notFound(`version ${req.version} of definition`, req.definitionId) : notFound('definition', req.definitionId);
      }
      return create(GetDefinitionResponseSchema, { definition: definitionToProto(record) });
    },

    async listDefinitions(caller: Caller, req: ListDefinitionsRequest) {
      const limit = pageSize(req.pageSize);
      const status = req.status === DefinitionStatus.UNSPECIFIED ? undefined : enumName<DomainStatus>(DefinitionStatus, req.status, 'status');
      const filter = { status, branchId: req.branchId || undefined, serviceCode: req.serviceCode || undefined };
      const after = decodePageToken(req.pageToken, filter);
      const rows = await store.listDefinitions(db, caller.tenantId, filter, { after, limit });
      const p = page(rows, limit, (d) => d.code, filter);
      return create(ListDefinitionsResponseSchema, { definitions: p.items.map(definitionToProto), nextPageToken: p.nextPageToken });
    },

    async publishDefinition(caller: Caller, req: PublishDefinitionRequest) {
      requireRole(caller, 'admin', 'manager');
      return mutate(caller, 'PublishDefinition', PublishDefinitionRequestSchema, req, PublishDefinitionResponseSchema, async (tx, at) => {
        // The tenant row lock makes concurrent publishes of one tenant take turns, so BASIC's
        // one-active-package check cannot be raced.
        const tenant = await tenantOf(tx, caller, true);
        const { head, state } = await definitionHead(tx, caller, req.definitionId);
        assertCanPublish(state, head.definitionId);
        const tier = tenant.planTier as DomainPlanTier;
        // The plan may have changed since the draft was written.
        assertTermsInPlan(tier, state.terms);
        assertCanActivate(tier, await store.otherActiveCodes(tx, tenant.tenantId, head.definitionId));
        const key = { tenantId: tenant.tenantId, definitionId: head.definitionId };
        const record = await store.setVersionStatus(tx, { ...key, version: state.version }, 'ACTIVE', { publishTime: at });
        const moved = await store.touchDefinition(tx, key, { status: 'ACTIVE', bumpRevision: true }, at);
        const definition = definitionToProto(record);
        await events.definitionPublished(tx, definition, moved.revision, at);
        return create(PublishDefinitionResponseSchema, { definition });
      });
    },

    async retireDefinition(caller: Caller, req: RetireDefinitionRequest) {
      requireRole(caller, 'admin', 'manager');
      return mutate(caller, 'RetireDefinition', RetireDefinitionRequestSchema, req, RetireDefinitionResponseSchema, async (tx, at) => {
        const { head, state } = await definitionHead(tx, caller, req.definitionId);
        assertCanRetire(state, head.definitionId);
        const key = { tenantId: caller.tenantId, definitionId: head.definitionId };
        const record = await store.setVersionStatus(tx, { ...key, version: state.version }, 'RETIRED', { retireTime: at });
        const moved = await store.touchDefinition(tx, key, { status: 'RETIRED', bumpRevision: true }, at);
        const definition = definitionToProto(record);
        await events.definitionRetired(tx, definition, moved.revision, at);
        return create(RetireDefinitionResponseSchema, { definition });
      });
    },
  };
}

export type CatalogueHandlers = ReturnType<typeof catalogueHandlers>;

function indexOf(terms: NormalizedTerms): store.VersionIndex {
  return { allBranches: terms.branches.allBranches, branchIds: terms.branches.branchIds, serviceCodes: terms.serviceCodes };
}

function tenantInput(req: { name: string; planTier: PlanTier; defaultCurrency: string; earningRule: EarningRule }) {
  return {
    name: req.name,
    planTier: enumName<DomainPlanTier | 'UNSPECIFIED'>(PlanTier, req.planTier, 'plan_tier'),
    defaultCurrency: req.defaultCurrency,
    earningRule: enumName<DomainEarningRule | 'UNSPECIFIED'>(EarningRule, req.earningRule, 'earning_rule'),
  };
}

function tenantFields(t: store.TenantRecord): TenantFields {
  return { name: t.name, planTier: t.planTier as DomainPlanTier, defaultCurrency: t.defaultCurrency, earningRule: t.earningRule as DomainEarningRule };
}

function sameFields(a: TenantFields, b: TenantFields): boolean {
  return a.name === b.name && a.planTier === b.planTier && a.defaultCurrency === b.defaultCurrency && a.earningRule === b.earningRule;
}

/** A unique violation on create means the caller asked for something that already exists. */
function rethrowUnique(what: string, id: string) {
  return (err: unknown): never => {
    if (isUniqueViolation(err)) throw alreadyExists(what, id);
    throw err;
  };
}
