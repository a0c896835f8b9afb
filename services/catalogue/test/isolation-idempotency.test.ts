import { Code } from '@connectrpc/connect';
import { DefinitionStatus, PlanTier } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicTerms, key, setupTenant, type Setup } from './support/fixtures.js';
import { admin, expectError, manager, newTenantId, staff, startTestEnv, type TestEnv } from './support/harness.js';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

describe('tenant isolation', () => {
  let a: Setup;
  let b: Setup;
  let bDefinitionId: string;
  beforeAll(async () => {
    a = await setupTenant(env.client, newTenantId('a'), PlanTier.ENTERPRISE);
    b = await setupTenant(env.client, newTenantId('b'), PlanTier.ENTERPRISE);
    const { definition } = await env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(b.branch.branchId, { code: 'B-ONLY' }) }, manager(b.tenant.tenantId));
    bDefinitionId = definition!.definitionId;
  });

  it("tenant A's caller cannot read tenant B's branches or definitions", async () => {
    const asA = admin(a.tenant.tenantId);
    await expectError(env.client.call('getBranch', { branchId: b.branch.branchId }, asA), Code.NotFound, 'branch');
    await expectError(env.client.call('getDefinition', { definitionId: bDefinitionId }, asA), Code.NotFound, 'definition');
    await expectError(env.client.call('getDefinition', { definitionId: bDefinitionId, version: 1 }, asA), Code.NotFound, 'definition');
    const branches = await env.client.call('listBranches', {}, asA);
    expect(branches.branches.map((x) => x.branchId)).toEqual([a.branch.branchId]);
    const definitions = await env.client.call('listDefinitions', {}, asA);
    expect(definitions.definitions).toEqual([]);
    expect(await env.client.call('listDefinitions', { branchId: b.branch.branchId }, asA)).toMatchObject({ definitions: [] });
    expect((await env.client.call('getTenant', {}, asA)).tenant?.tenantId).toBe(a.tenant.tenantId);
  });

  it("tenant A's caller cannot change tenant B", async () => {
    const asA = admin(a.tenant.tenantId);
    await expectError(env.client.call('updateBranch', { idempotencyKey: key(), branchId: b.branch.branchId, name: 'Hijacked' }, asA), Code.NotFound, 'branch');
    await expectError(
      env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: bDefinitionId, terms: basicTerms(a.branch.branchId, { code: 'B-ONLY' }) }, asA),
      Code.NotFound,
      'definition',
    );
    await expectError(env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: bDefinitionId }, asA), Code.NotFound, 'definition');
    await expectError(env.client.call('retireDefinition', { idempotencyKey: key(), definitionId: bDefinitionId }, asA), Code.NotFound, 'definition');
    // Nor reference B's branches or definitions from A's own definitions.
    await expectError(
      env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(b.branch.branchId) }, asA),
      Code.InvalidArgument,
      `unknown branch "${b.branch.branchId}"`,
    );
    await expectError(
      env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(a.branch.branchId, { upgrade: { targetDefinitionIds: [bDefinitionId] } }) }, asA),
      Code.InvalidArgument,
      `unknown definition "${bDefinitionId}"`,
    );
    // The same code is free in another tenant.
    await env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(a.branch.branchId, { code: 'B-ONLY' }) }, asA);

    const asB = staff(b.tenant.tenantId);
    expect((await env.client.call('getBranch', { branchId: b.branch.branchId }, asB)).branch?.name).toBe('Orchard');
    expect((await env.client.call('getDefinition', { definitionId: bDefinitionId }, asB)).definition).toMatchObject({ version: 1, status: DefinitionStatus.DRAFT });
  });

  it('idempotency keys are per tenant', async () => {
    const shared = key('shared');
    const one = await env.client.call('createBranch', { idempotencyKey: shared, code: 'SHARED', name: 'A', timeZone: 'UTC' }, manager(a.tenant.tenantId));
    const two = await env.client.call('createBranch', { idempotencyKey: shared, code: 'SHARED', name: 'B', timeZone: 'UTC' }, manager(b.tenant.tenantId));
    expect(one.branch?.tenantId).toBe(a.tenant.tenantId);
    expect(two.branch?.tenantId).toBe(b.tenant.tenantId);
    expect(two.branch?.branchId).not.toBe(one.branch?.branchId);
  });
});

describe('idempotent replay', () => {
  it('a repeated mutation returns the first response and changes nothing', async () => {
    const tenantId = newTenantId();
    const tenantReq = { idempotencyKey: key(), name: 'Replay', planTier: PlanTier.ADVANCED, defaultCurrency: 'SGD' };
    const t1 = await env.client.call('createTenant', tenantReq, admin(tenantId));
    expect(await env.client.call('createTenant', tenantReq, admin(tenantId))).toEqual(t1);

    const branchReq = { idempotencyKey: key(), code: 'ONE', name: 'One', timeZone: 'UTC' };
    const b1 = await env.client.call('createBranch', branchReq, manager(tenantId));
    expect(await env.client.call('createBranch', branchReq, manager(tenantId))).toEqual(b1);
    expect((await env.client.call('listBranches', {}, manager(tenantId))).branches).toHaveLength(1);

    const createReq = { idempotencyKey: key(), terms: basicTerms(b1.branch!.branchId, { code: 'IDEM' }) };
    const d1 = await env.client.call('createDefinition', createReq, manager(tenantId));
    expect(await env.client.call('createDefinition', createReq, manager(tenantId))).toEqual(d1);
    const id = d1.definition!.definitionId;

    const publishReq = { idempotencyKey: key(), definitionId: id };
    const p1 = await env.client.call('publishDefinition', publishReq, manager(tenantId));
    // A plain second publish would fail (already ACTIVE); the replay returns the first answer.
    expect(await env.client.call('publishDefinition', publishReq, manager(tenantId))).toEqual(p1);

    const updateReq = { idempotencyKey: key(), definitionId: id, terms: basicTerms(b1.branch!.branchId, { code: 'IDEM', paidSessions: 20 }) };
    const u1 = await env.client.call('updateDefinition', updateReq, manager(tenantId));
    expect(u1.definition?.version).toBe(2);
    expect(await env.client.call('updateDefinition', updateReq, manager(tenantId))).toEqual(u1);
    expect((await env.client.call('getDefinition', { definitionId: id }, manager(tenantId))).definition?.version).toBe(2);

    const retireReq = { idempotencyKey: key(), definitionId: id };
    const r1 = await env.client.call('retireDefinition', retireReq, manager(tenantId));
    expect(await env.client.call('retireDefinition', retireReq, manager(tenantId))).toEqual(r1);

    const tenantUpdate = { idempotencyKey: key(), planTier: PlanTier.EXPERT };
    const tu1 = await env.client.call('updateTenant', tenantUpdate, admin(tenantId));
    expect(await env.client.call('updateTenant', tenantUpdate, admin(tenantId))).toEqual(tu1);

    const branchUpdate = { idempotencyKey: key(), branchId: b1.branch!.branchId, name: 'Uno' };
    const bu1 = await env.client.call('updateBranch', branchUpdate, manager(tenantId));
    expect(await env.client.call('updateBranch', branchUpdate, manager(tenantId))).toEqual(bu1);

    // Each change produced exactly one event, replays none.
    const events = await env.events(tenantId);
    expect(events.map((e) => e.type)).toEqual([
      'punchcard.catalogue.tenant_changed',
      'punchcard.catalogue.branch_changed',
      'punchcard.catalogue.definition_published',
      'punchcard.catalogue.definition_published',
      'punchcard.catalogue.definition_retired',
      'punchcard.catalogue.tenant_changed',
      'punchcard.catalogue.branch_changed',
    ]);
  });

  it('concurrent repeats of one request apply it once and all get the same answer', async () => {
    const tenantId = newTenantId();
    const { branch } = await setupTenant(env.client, tenantId);
    const req = { idempotencyKey: key(), terms: basicTerms(branch.branchId, { code: 'ONCE' }) };
    const results = await Promise.all(Array.from({ length: 5 }, () => env.client.call('createDefinition', req, manager(tenantId))));
    for (const r of results) expect(r).toEqual(results[0]);
    expect((await env.client.call('listDefinitions', {}, manager(tenantId))).definitions).toHaveLength(1);
  });

  it('the same key with a different request is refused, naming idempotency_key', async () => {
    const tenantId = newTenantId();
    const { branch } = await setupTenant(env.client, tenantId);
    const k = key();
    await env.client.call('createDefinition', { idempotencyKey: k, terms: basicTerms(branch.branchId, { code: 'FIRST' }) }, manager(tenantId));
    await expectError(
      env.client.call('createDefinition', { idempotencyKey: k, terms: basicTerms(branch.branchId, { code: 'SECOND' }) }, manager(tenantId)),
      Code.InvalidArgument,
      'idempotency_key',
    );
  });

  it('a failed request stores nothing, so a retry with the same key runs again', async () => {
    const tenantId = newTenantId();
    const { branch } = await setupTenant(env.client, tenantId);
    const k = key();
    const req = { idempotencyKey: k, code: 'X', name: 'X', timeZone: 'UTC' };
    await expectError(env.client.call('createBranch', { ...req, code: 'ORCHARD' }, manager(tenantId)), Code.AlreadyExists, 'ORCHARD');
    const { branch: created } = await env.client.call('createBranch', req, manager(tenantId));
    expect(created?.code).toBe('X');
    expect(branch.code).toBe('ORCHARD');
  });

  it('every mutation needs a key', async () => {
    const tenantId = newTenantId();
    const { branch } = await setupTenant(env.client, tenantId);
    const who = admin(tenantId);
    const calls = [
      () => env.client.call('updateTenant', { name: 'x' }, who),
      () => env.client.call('createBranch', { code: 'Y', name: 'Y', timeZone: 'UTC' }, who),
      () => env.client.call('updateBranch', { branchId: branch.branchId, name: 'x' }, who),
      () => env.client.call('createDefinition', { terms: basicTerms(branch.branchId) }, who),
      () => env.client.call('updateDefinition', { definitionId: branch.branchId, terms: basicTerms(branch.branchId) }, who),
      () => env.client.call('publishDefinition', { definitionId: branch.branchId }, who),
      () => env.client.call('retireDefinition', { definitionId: branch.branchId }, who),
    ];
    for (const call of calls) await expectError(call(), Code.InvalidArgument, 'idempotency_key: required');
  });
});
