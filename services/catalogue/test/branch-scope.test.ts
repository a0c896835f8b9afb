import { Code } from '@connectrpc/connect';
import { DefinitionStatus, PlanTier, type Branch } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import type { BranchChanged, DefinitionRetired } from '@punchcard/contracts/punchcard/events/v1/catalogue_events_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicTerms, key, setupTenant, type TermsInit } from './support/fixtures.js';
import { admin, branchManager, expectError, manager, newTenantId, startTestEnv, type TestEnv, type Who } from './support/harness.js';

let env: TestEnv;
let tenantId: string;
let orchard: Branch;
let tampines: Branch;
let jurong: Branch;
/** A manager of Orchard only; `scope` names it as the refusals do. */
let orchardManager: Who;
const scope = 'caller branch-manager is limited to branches';

beforeAll(async () => {
  env = await startTestEnv();
  tenantId = newTenantId('scope');
  ({ branch: orchard } = await setupTenant(env.client, tenantId, PlanTier.ENTERPRISE));
  const open = async (code: string) =>
    (await env.client.call('createBranch', { idempotencyKey: key(), code, name: code, timeZone: 'Asia/Singapore' }, admin(tenantId))).branch!;
  tampines = await open('TAMPINES');
  jurong = await open('JURONG');
  orchardManager = branchManager(tenantId, [orchard.branchId]);
});
afterAll(async () => {
  await env?.close();
});

const createDefinition = (terms: TermsInit, who: Who) => env.client.call('createDefinition', { idempotencyKey: key(), terms }, who);
const allBranches = (overrides: Partial<TermsInit> = {}) => basicTerms('', { branches: { allBranches: true }, ...overrides });

describe('a branch-scoped caller reads the whole tenant', () => {
  it('sees the tenant, every branch and every definition', async () => {
    const { definition } = await createDefinition(allBranches(), admin(tenantId));
    expect((await env.client.call('getTenant', {}, orchardManager)).tenant?.tenantId).toBe(tenantId);
    const branches = await env.client.call('listBranches', {}, orchardManager);
    expect(branches.branches.map((b) => b.code)).toEqual(['JURONG', 'ORCHARD', 'TAMPINES']);
    expect((await env.client.call('getBranch', { branchId: tampines.branchId }, orchardManager)).branch?.code).toBe('TAMPINES');
    expect((await env.client.call('getDefinition', { definitionId: definition!.definitionId }, orchardManager)).definition?.terms?.branches?.allBranches).toBe(true);
    const listed = await env.client.call('listDefinitions', {}, orchardManager);
    expect(listed.definitions.map((d) => d.definitionId)).toContain(definition!.definitionId);
  });
});

describe('a branch-scoped caller cannot change the tenant', () => {
  it('refuses CreateTenant and UpdateTenant even for an admin limited to branches', async () => {
    const scopedAdmin: Who = { ...admin(tenantId), subject: 'branch-manager', branchIds: [orchard.branchId] };
    await expectError(
      env.client.call('updateTenant', { idempotencyKey: key(), name: 'Renamed' }, scopedAdmin),
      Code.PermissionDenied,
      `UpdateTenant needs a caller for the whole tenant; ${scope} ${orchard.branchId}`,
    );
    expect((await env.client.call('getTenant', {}, admin(tenantId))).tenant).toMatchObject({ name: 'Spine & Joint', planTier: PlanTier.ENTERPRISE });

    const fresh = newTenantId('scoped');
    await expectError(
      env.client.call('createTenant', { idempotencyKey: key(), name: 'Branch Co', planTier: PlanTier.BASIC, defaultCurrency: 'SGD' }, { ...scopedAdmin, tenantId: fresh }),
      Code.PermissionDenied,
      'CreateTenant needs a caller for the whole tenant',
    );
    await expectError(env.client.call('getTenant', {}, admin(fresh)), Code.NotFound, 'tenant');
  });
});

describe('a branch-scoped caller changes only its own branches', () => {
  it('may not open a branch', async () => {
    await expectError(
      env.client.call('createBranch', { idempotencyKey: key(), code: 'BEDOK', name: 'Bedok', timeZone: 'Asia/Singapore' }, orchardManager),
      Code.PermissionDenied,
      `CreateBranch needs a caller for the whole tenant; ${scope} ${orchard.branchId}`,
    );
    const branches = await env.client.call('listBranches', {}, admin(tenantId));
    expect(branches.branches.map((b) => b.code)).not.toContain('BEDOK');
  });

  it('updates its own branch and is refused another, which stays as it was', async () => {
    const own = await env.client.call('updateBranch', { idempotencyKey: key(), branchId: orchard.branchId, name: 'Orchard Road' }, orchardManager);
    expect(own.branch).toMatchObject({ branchId: orchard.branchId, name: 'Orchard Road' });

    await expectError(
      env.client.call('updateBranch', { idempotencyKey: key(), branchId: tampines.branchId, name: 'Hijacked', active: false }, orchardManager),
      Code.PermissionDenied,
      `branch ${tampines.branchId} is outside the caller's branches; ${scope} ${orchard.branchId}`,
    );
    expect((await env.client.call('getBranch', { branchId: tampines.branchId }, admin(tenantId))).branch).toMatchObject({ name: 'TAMPINES', active: true });
    const tampinesEvents = (await env.events(tenantId)).filter(
      (e) => e.subject.includes('branch_changed') && (e.data as BranchChanged).branch?.branchId === tampines.branchId,
    );
    expect(tampinesEvents.map((e) => e.entityVersion)).toEqual(['1']);
  });

  it('an empty branch_ids limits the caller to no branches', async () => {
    await expectError(
      env.client.call('updateBranch', { idempotencyKey: key(), branchId: orchard.branchId, name: 'Nobody' }, branchManager(tenantId, [])),
      Code.PermissionDenied,
      'caller branch-manager is limited to no branches',
    );
  });
});

describe('a branch-scoped caller manages only definitions of its branches', () => {
  it('creates, edits, publishes and retires a definition listing only its branches', async () => {
    const twoBranches = branchManager(tenantId, [orchard.branchId, tampines.branchId]);
    const terms = basicTerms(orchard.branchId, { branches: { branchIds: [orchard.branchId, tampines.branchId] } });
    const { definition } = await createDefinition(terms, twoBranches);
    const id = definition!.definitionId;
    const edited = await env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: id, terms: { ...terms, name: 'Ten visits' } }, twoBranches);
    expect(edited.definition).toMatchObject({ version: 1, status: DefinitionStatus.DRAFT, terms: { name: 'Ten visits' } });
    const published = await env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: id }, twoBranches);
    expect(published.definition?.status).toBe(DefinitionStatus.ACTIVE);
    const retired = await env.client.call('retireDefinition', { idempotencyKey: key(), definitionId: id }, twoBranches);
    expect(retired.definition?.status).toBe(DefinitionStatus.RETIRED);
  });

  it('may not create a definition listing a branch outside its scope, naming those branches', async () => {
    const terms = basicTerms(orchard.branchId, { branches: { branchIds: [orchard.branchId, tampines.branchId, jurong.branchId] } });
    await expectError(
      createDefinition(terms, orchardManager),
      Code.PermissionDenied,
      `terms.branches lists branches ${tampines.branchId}, ${jurong.branchId} outside the caller's branches; ${scope} ${orchard.branchId}`,
    );
    const listed = await env.client.call('listDefinitions', {}, admin(tenantId));
    expect(listed.definitions.map((d) => d.terms?.code)).not.toContain(terms.code);
  });

  it('may not create an all-branches definition', async () => {
    await expectError(
      createDefinition(allBranches(), orchardManager),
      Code.PermissionDenied,
      `terms.branches is usable at all branches, which needs a caller for the whole tenant; ${scope} ${orchard.branchId}`,
    );
  });

  it('may not widen its own definition beyond its branches', async () => {
    const terms = basicTerms(orchard.branchId);
    const { definition } = await createDefinition(terms, orchardManager);
    await expectError(
      env.client.call(
        'updateDefinition',
        { idempotencyKey: key(), definitionId: definition!.definitionId, terms: { ...terms, branches: { branchIds: [orchard.branchId, jurong.branchId] } } },
        orchardManager,
      ),
      Code.PermissionDenied,
      `terms.branches lists branch ${jurong.branchId} outside the caller's branches`,
    );
    await expectError(
      env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: definition!.definitionId, terms: { ...terms, branches: { allBranches: true } } }, orchardManager),
      Code.PermissionDenied,
      'terms.branches is usable at all branches',
    );
    const stored = await env.client.call('getDefinition', { definitionId: definition!.definitionId }, admin(tenantId));
    expect(stored.definition?.terms?.branches?.branchIds).toEqual([orchard.branchId]);
  });

  it("may not update, publish or retire another branch's definition, nor take it over by moving it to its own branch", async () => {
    const terms = basicTerms(tampines.branchId);
    const { definition: draft } = await createDefinition(terms, admin(tenantId));
    const id = draft!.definitionId;
    const outside = `definition "${terms.code}" version 1 lists branch ${tampines.branchId} outside the caller's branches; ${scope} ${orchard.branchId}`;
    await expectError(
      env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: id, terms: basicTerms(orchard.branchId, { code: terms.code }) }, orchardManager),
      Code.PermissionDenied,
      outside,
    );
    await expectError(env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: id }, orchardManager), Code.PermissionDenied, outside);

    await env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: id }, manager(tenantId));
    await expectError(env.client.call('retireDefinition', { idempotencyKey: key(), definitionId: id }, orchardManager), Code.PermissionDenied, outside);

    const stored = await env.client.call('getDefinition', { definitionId: id }, admin(tenantId));
    expect(stored.definition).toMatchObject({ version: 1, status: DefinitionStatus.ACTIVE, terms: { branches: { branchIds: [tampines.branchId] } } });
    const retired = (await env.events(tenantId)).filter((e) => e.subject.includes('definition_retired'));
    expect(retired.map((e) => (e.data as DefinitionRetired).definition?.definitionId)).not.toContain(id);
  });

  it('may not change an all-branches definition', async () => {
    const { definition } = await createDefinition(allBranches(), admin(tenantId));
    const id = definition!.definitionId;
    const allRefused = `version 1 is usable at all branches, which needs a caller for the whole tenant; ${scope} ${orchard.branchId}`;
    await expectError(env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: id }, orchardManager), Code.PermissionDenied, allRefused);
    await env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: id }, admin(tenantId));
    await expectError(
      env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: id, terms: allBranches({ name: 'Cheaper', price: { currencyCode: 'SGD', amountMinor: 1n } }) }, orchardManager),
      Code.PermissionDenied,
      allRefused,
    );
    await expectError(env.client.call('retireDefinition', { idempotencyKey: key(), definitionId: id }, orchardManager), Code.PermissionDenied, allRefused);
    expect((await env.client.call('getDefinition', { definitionId: id }, admin(tenantId))).definition).toMatchObject({ version: 1, status: DefinitionStatus.ACTIVE });
  });

  it('an unscoped manager still manages every definition', async () => {
    const { definition } = await createDefinition(allBranches(), manager(tenantId));
    const published = await env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: definition!.definitionId }, manager(tenantId));
    expect(published.definition?.status).toBe(DefinitionStatus.ACTIVE);
  });
});
