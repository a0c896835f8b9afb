import { Code } from '@connectrpc/connect';
import { DefinitionStatus, ExpiryMode, PlanTier, SessionOrder, TransferScope, RefundMethod } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicTerms, key, setupTenant, sgd } from './support/fixtures.js';
import { admin, expectError, manager, newTenantId, staff, startTestEnv, type TestEnv } from './support/harness.js';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

describe('definitions', () => {
  it('creates a DRAFT at version 1 with normalized terms', async () => {
    const tenantId = newTenantId();
    const { branch } = await setupTenant(env.client, tenantId);
    const { definition } = await env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(branch.branchId, { code: 'TEN' }) }, manager(tenantId));
    expect(definition).toMatchObject({ tenantId, version: 1, status: DefinitionStatus.DRAFT });
    expect(definition?.terms).toMatchObject({
      code: 'TEN',
      paidSessions: 10,
      price: { currencyCode: 'SGD', amountMinor: 50_000n },
      sessionOrder: SessionOrder.PAID_FIRST,
      transfer: { scope: TransferScope.NONE },
      refund: { method: RefundMethod.NON_REFUNDABLE },
      expiry: { mode: ExpiryMode.HARD, durationMonths: 6 },
    });
    expect(definition?.publishTime).toBeUndefined();
    const got = await env.client.call('getDefinition', { definitionId: definition!.definitionId }, staff(tenantId));
    expect(got.definition).toEqual(definition);
  });

  it('edits a draft in place, then versions every edit of the active definition; old versions stay readable', async () => {
    const tenantId = newTenantId();
    const { branch } = await setupTenant(env.client, tenantId);
    const who = manager(tenantId);
    const terms = basicTerms(branch.branchId);
    const { definition: v1 } = await env.client.call('createDefinition', { idempotencyKey: key(), terms }, who);
    const id = v1!.definitionId;

    const { definition: draft } = await env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: id, terms: { ...terms, name: 'Ten pack' } }, who);
    expect(draft).toMatchObject({ version: 1, status: DefinitionStatus.DRAFT, terms: { name: 'Ten pack' } });

    const { definition: published } = await env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: id }, who);
    expect(published).toMatchObject({ version: 1, status: DefinitionStatus.ACTIVE });
    expect(published?.publishTime).toBeDefined();

    // A member buys at version 1; then the price changes twice.
    const { definition: v2 } = await env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: id, terms: { ...terms, name: 'Ten pack', price: sgd(55_000n) } }, who);
    expect(v2).toMatchObject({ version: 2, status: DefinitionStatus.ACTIVE, terms: { price: { amountMinor: 55_000n } } });
    const { definition: v3 } = await env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: id, terms: { ...terms, name: 'Ten pack', price: sgd(60_000n) } }, who);
    expect(v3).toMatchObject({ version: 3, status: DefinitionStatus.ACTIVE });

    const read = async (version: number) => (await env.client.call('getDefinition', { definitionId: id, version }, staff(tenantId))).definition!;
    expect(await read(1)).toMatchObject({ version: 1, status: DefinitionStatus.SUPERSEDED, terms: { name: 'Ten pack', price: { amountMinor: 50_000n } } });
    expect(await read(2)).toMatchObject({ version: 2, status: DefinitionStatus.SUPERSEDED, terms: { price: { amountMinor: 55_000n } } });
    expect(await read(0)).toEqual(v3);
    expect(await read(3)).toEqual(v3);
    await expectError(env.client.call('getDefinition', { definitionId: id, version: 4 }, staff(tenantId)), Code.NotFound, `version 4 of definition "${id}" not found`);
    await expectError(env.client.call('getDefinition', { definitionId: id, version: -1 }, staff(tenantId)), Code.InvalidArgument, 'version: must not be negative');

    // An unchanged edit writes no version.
    const { definition: same } = await env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: id, terms: { ...terms, name: 'Ten pack', price: sgd(60_000n) } }, who);
    expect(same).toEqual(v3);

    // Retired: no more edits or publishes; every version still readable.
    const { definition: retired } = await env.client.call('retireDefinition', { idempotencyKey: key(), definitionId: id }, who);
    expect(retired).toMatchObject({ version: 3, status: DefinitionStatus.RETIRED });
    expect(retired?.retireTime).toBeDefined();
    await expectError(
      env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: id, terms }, who),
      Code.FailedPrecondition,
      `definition ${id} is RETIRED`,
    );
    await expectError(env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: id }, who), Code.FailedPrecondition, 'only a DRAFT can be published');
    await expectError(env.client.call('retireDefinition', { idempotencyKey: key(), definitionId: id }, who), Code.FailedPrecondition, 'only an ACTIVE definition can be retired');
    expect(await read(1)).toMatchObject({ version: 1, terms: { price: { amountMinor: 50_000n } } });
  });

  it('refuses publishing an active definition, retiring a draft, and changing the code', async () => {
    const tenantId = newTenantId();
    const { branch } = await setupTenant(env.client, tenantId);
    const who = manager(tenantId);
    const terms = basicTerms(branch.branchId, { code: 'KEEP' });
    const { definition } = await env.client.call('createDefinition', { idempotencyKey: key(), terms }, who);
    const id = definition!.definitionId;
    await expectError(env.client.call('retireDefinition', { idempotencyKey: key(), definitionId: id }, who), Code.FailedPrecondition, 'is DRAFT at version 1');
    await expectError(
      env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: id, terms: { ...terms, code: 'OTHER' } }, who),
      Code.InvalidArgument,
      'terms.code: cannot change',
    );
    await env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: id }, who);
    await expectError(env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: id }, who), Code.FailedPrecondition, 'is ACTIVE at version 1');
  });

  it('refuses a duplicate code, unknown ids and references, and callers without an editing role', async () => {
    const tenantId = newTenantId();
    const { branch } = await setupTenant(env.client, tenantId, PlanTier.ENTERPRISE);
    const who = manager(tenantId);
    await env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(branch.branchId, { code: 'DUP' }) }, who);
    await expectError(
      env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(branch.branchId, { code: 'DUP' }) }, who),
      Code.AlreadyExists,
      'definition code "DUP" already exists',
    );
    const missing = '00000000-0000-4000-8000-000000000000';
    await expectError(env.client.call('getDefinition', { definitionId: missing }, who), Code.NotFound, `definition "${missing}" not found`);
    await expectError(env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: missing }, who), Code.NotFound, 'definition');
    await expectError(env.client.call('retireDefinition', { idempotencyKey: key(), definitionId: missing }, who), Code.NotFound, 'definition');
    await expectError(env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: missing, terms: basicTerms(branch.branchId) }, who), Code.NotFound, 'definition');
    await expectError(env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: '' }, who), Code.InvalidArgument, 'definition_id: required');
    await expectError(
      env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(missing) }, who),
      Code.InvalidArgument,
      `terms.branches.branch_ids[0]: unknown branch "${missing}"`,
    );
    await expectError(
      env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(branch.branchId, { upgrade: { targetDefinitionIds: [missing] } }) }, who),
      Code.InvalidArgument,
      `terms.upgrade.target_definition_ids[0]: unknown definition "${missing}"`,
    );
    await expectError(
      env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(branch.branchId) }, staff(tenantId)),
      Code.PermissionDenied,
      'admin or manager',
    );
    await expectError(
      env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(branch.branchId) }, admin(newTenantId())),
      Code.FailedPrecondition,
      'call CreateTenant first',
    );
  });

  it('upgrade targets name other definitions of the tenant', async () => {
    const tenantId = newTenantId();
    const { branch } = await setupTenant(env.client, tenantId, PlanTier.EXPERT);
    const who = manager(tenantId);
    const { definition: gold } = await env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(branch.branchId, { code: 'GOLD' }) }, who);
    const { definition: silver } = await env.client.call(
      'createDefinition',
      { idempotencyKey: key(), terms: basicTerms(branch.branchId, { code: 'SILVER', upgrade: { targetDefinitionIds: [gold!.definitionId] } }) },
      who,
    );
    expect(silver?.terms?.upgrade?.targetDefinitionIds).toEqual([gold!.definitionId]);
    await expectError(
      env.client.call(
        'updateDefinition',
        { idempotencyKey: key(), definitionId: silver!.definitionId, terms: basicTerms(branch.branchId, { code: 'SILVER', upgrade: { targetDefinitionIds: [silver!.definitionId] } }) },
        who,
      ),
      Code.InvalidArgument,
      'terms.upgrade.target_definition_ids[0]: a definition cannot be its own upgrade target',
    );
  });

  it('lists the latest version of each definition, filtered by status, branch and service code, in pages', async () => {
    const tenantId = newTenantId();
    const { branch: orchard } = await setupTenant(env.client, tenantId, PlanTier.ENTERPRISE);
    const who = manager(tenantId);
    const { branch: tampines } = await env.client.call('createBranch', { idempotencyKey: key(), code: 'TAMPINES', name: 'Tampines', timeZone: 'Asia/Singapore' }, who);
    const make = async (code: string, extra: Parameters<typeof basicTerms>[1], publish: boolean) => {
      const { definition } = await env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(orchard.branchId, { code, ...extra }) }, who);
      if (publish) await env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: definition!.definitionId }, who);
      return definition!;
    };
    await make('A-ORCHARD-CHIRO', {}, true);
    await make('B-TAMPINES-PHYSIO', { branches: { branchIds: [tampines!.branchId] }, serviceCodes: ['PHYSIO'] }, true);
    await make('C-ALL-BOTH', { branches: { allBranches: true }, serviceCodes: ['CHIRO_ADJUST', 'PHYSIO'] }, false);
    const d = await make('D-BOTH-MASSAGE', { branches: { branchIds: [orchard.branchId, tampines!.branchId] }, serviceCodes: ['MASSAGE'] }, true);
    await env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: d.definitionId, terms: basicTerms(orchard.branchId, { code: 'D-BOTH-MASSAGE', serviceCodes: ['MASSAGE'], name: 'v2' }) }, who);
    await env.client.call('retireDefinition', { idempotencyKey: key(), definitionId: (await make('E-RETIRED', {}, true)).definitionId }, who);

    const list = async (req: Parameters<typeof env.client.call<'listDefinitions'>>[1]) =>
      (await env.client.call('listDefinitions', req, staff(tenantId))).definitions.map((x) => `${x.terms!.code}@${x.version}`);
    expect(await list({})).toEqual(['A-ORCHARD-CHIRO@1', 'B-TAMPINES-PHYSIO@1', 'C-ALL-BOTH@1', 'D-BOTH-MASSAGE@2', 'E-RETIRED@1']);
    expect(await list({ status: DefinitionStatus.ACTIVE })).toEqual(['A-ORCHARD-CHIRO@1', 'B-TAMPINES-PHYSIO@1', 'D-BOTH-MASSAGE@2']);
    expect(await list({ status: DefinitionStatus.DRAFT })).toEqual(['C-ALL-BOTH@1']);
    expect(await list({ status: DefinitionStatus.RETIRED })).toEqual(['E-RETIRED@1']);
    // Version 2 of D is usable at Orchard only.
    expect(await list({ branchId: tampines!.branchId })).toEqual(['B-TAMPINES-PHYSIO@1', 'C-ALL-BOTH@1']);
    expect(await list({ serviceCode: 'PHYSIO' })).toEqual(['B-TAMPINES-PHYSIO@1', 'C-ALL-BOTH@1']);
    expect(await list({ serviceCode: 'PHYSIO', branchId: orchard.branchId, status: DefinitionStatus.DRAFT })).toEqual(['C-ALL-BOTH@1']);
    expect(await list({ serviceCode: 'YOGA' })).toEqual([]);

    const pages: string[][] = [];
    let pageToken = '';
    do {
      const res = await env.client.call('listDefinitions', { pageSize: 2, pageToken }, staff(tenantId));
      pages.push(res.definitions.map((x) => x.terms!.code));
      pageToken = res.nextPageToken;
    } while (pageToken);
    expect(pages).toEqual([['A-ORCHARD-CHIRO', 'B-TAMPINES-PHYSIO'], ['C-ALL-BOTH', 'D-BOTH-MASSAGE'], ['E-RETIRED']]);
    await expectError(env.client.call('listDefinitions', { pageToken: 'garbage!' }, staff(tenantId)), Code.InvalidArgument, 'page_token: malformed');
  });
});
