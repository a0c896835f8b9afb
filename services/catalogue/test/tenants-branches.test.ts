import { Code } from '@connectrpc/connect';
import { EarningRule, Feature, PlanTier, type Branch } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { key } from './support/fixtures.js';
import { admin, expectError, manager, newTenantId, staff, startTestEnv, type TestEnv } from './support/harness.js';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

describe('tenants', () => {
  it('creates the caller’s tenant with its plan’s full feature list', async () => {
    const tenantId = newTenantId();
    const { tenant } = await env.client.call(
      'createTenant',
      { idempotencyKey: key(), name: 'Spine & Joint', planTier: PlanTier.ADVANCED, defaultCurrency: 'SGD' },
      admin(tenantId),
    );
    expect(tenant).toMatchObject({
      tenantId,
      name: 'Spine & Joint',
      planTier: PlanTier.ADVANCED,
      defaultCurrency: 'SGD',
      earningRule: EarningRule.DELIVERING_BRANCH,
      features: [
        Feature.MANUAL_DEDUCTION,
        Feature.HARD_EXPIRY,
        Feature.PACKAGE_HISTORY,
        Feature.MULTI_PACKAGE,
        Feature.AUTO_DEDUCTION,
        Feature.SOFT_EXPIRY,
        Feature.BONUS_SESSIONS,
      ],
    });
    expect(tenant?.createTime).toBeDefined();
    const got = await env.client.call('getTenant', {}, staff(tenantId));
    expect(got.tenant).toEqual(tenant);
  });

  it('refuses a second CreateTenant and unknown tenants', async () => {
    const tenantId = newTenantId();
    const req = { name: 'A', planTier: PlanTier.BASIC, defaultCurrency: 'SGD' };
    await env.client.call('createTenant', { ...req, idempotencyKey: key() }, admin(tenantId));
    await expectError(env.client.call('createTenant', { ...req, idempotencyKey: key() }, admin(tenantId)), Code.AlreadyExists, `tenant "${tenantId}" already exists`);
    await expectError(env.client.call('getTenant', {}, admin(newTenantId())), Code.NotFound, 'tenant');
  });

  it('validates tenant fields', async () => {
    const who = admin(newTenantId());
    await expectError(env.client.call('createTenant', { idempotencyKey: key(), name: '', planTier: PlanTier.BASIC, defaultCurrency: 'SGD' }, who), Code.InvalidArgument, 'name: required');
    await expectError(env.client.call('createTenant', { idempotencyKey: key(), name: 'A', defaultCurrency: 'SGD' }, who), Code.InvalidArgument, 'plan_tier: required');
    await expectError(
      env.client.call('createTenant', { idempotencyKey: key(), name: 'A', planTier: PlanTier.BASIC, defaultCurrency: 'ZZZ' }, who),
      Code.InvalidArgument,
      'default_currency: unknown ISO 4217 currency "ZZZ"',
    );
    await expectError(env.client.call('createTenant', { idempotencyKey: key(), name: 'A', planTier: 9 as PlanTier, defaultCurrency: 'SGD' }, who), Code.InvalidArgument, 'plan_tier: unknown value 9');
    await expectError(env.client.call('createTenant', { idempotencyKey: '', name: 'A', planTier: PlanTier.BASIC, defaultCurrency: 'SGD' }, who), Code.InvalidArgument, 'idempotency_key: required');
  });

  it('updates plan tier, name and earning rule; only admins may', async () => {
    const tenantId = newTenantId();
    await env.client.call('createTenant', { idempotencyKey: key(), name: 'A', planTier: PlanTier.BASIC, defaultCurrency: 'SGD' }, admin(tenantId));
    await expectError(env.client.call('updateTenant', { idempotencyKey: key(), planTier: PlanTier.EXPERT }, manager(tenantId)), Code.PermissionDenied, 'admin');
    const { tenant } = await env.client.call(
      'updateTenant',
      { idempotencyKey: key(), planTier: PlanTier.ENTERPRISE, name: 'A Chain', earningRule: EarningRule.PURCHASING_BRANCH },
      admin(tenantId),
    );
    expect(tenant).toMatchObject({ name: 'A Chain', planTier: PlanTier.ENTERPRISE, defaultCurrency: 'SGD', earningRule: EarningRule.PURCHASING_BRANCH });
    expect(tenant?.features).toHaveLength(17);
    await expectError(env.client.call('updateTenant', { idempotencyKey: key(), name: 'x' }, admin(newTenantId())), Code.NotFound, 'tenant');
  });

  it('needs a tenant id from the token that can name event subjects', async () => {
    await expectError(
      env.client.call('createTenant', { idempotencyKey: key(), name: 'A', planTier: PlanTier.BASIC, defaultCurrency: 'SGD' }, admin('acme.sg')),
      Code.InvalidArgument,
      `tenant_id: the token's tenant id "acme.sg" must be 1-64 letters, digits, "_" or "-"`,
    );
  });

  it('refuses calls without a valid token', async () => {
    const res = await fetch(`${env.apiUrl}/punchcard.catalogue.v1.CatalogueService/GetTenant`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: 'unauthenticated' });
  });

  it('speaks the Connect protocol with JSON too (what curl and browsers use)', async () => {
    const tenantId = newTenantId();
    await env.client.call('createTenant', { idempotencyKey: key(), name: 'Curl Clinic', planTier: PlanTier.BASIC, defaultCurrency: 'SGD' }, admin(tenantId));
    const res = await fetch(`${env.apiUrl}/punchcard.catalogue.v1.CatalogueService/GetTenant`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await env.token(staff(tenantId))}` },
      body: '{}',
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      tenant: { tenantId, planTier: 'PLAN_TIER_BASIC', features: ['FEATURE_MANUAL_DEDUCTION', 'FEATURE_HARD_EXPIRY', 'FEATURE_PACKAGE_HISTORY'] },
    });
  });

  it('only admins create tenants', async () => {
    await expectError(
      env.client.call('createTenant', { idempotencyKey: key(), name: 'A', planTier: PlanTier.BASIC, defaultCurrency: 'SGD' }, manager(newTenantId())),
      Code.PermissionDenied,
      'admin',
    );
  });
});

describe('branches', () => {
  async function tenant() {
    const tenantId = newTenantId();
    await env.client.call('createTenant', { idempotencyKey: key(), name: 'A', planTier: PlanTier.BASIC, defaultCurrency: 'SGD' }, admin(tenantId));
    return tenantId;
  }

  it('creates, reads and updates a branch with its IANA time zone', async () => {
    const tenantId = await tenant();
    const { branch } = await env.client.call(
      'createBranch',
      { idempotencyKey: key(), code: 'ORCHARD', name: 'Orchard', timeZone: 'asia/singapore' },
      manager(tenantId),
    );
    expect(branch).toMatchObject({ tenantId, code: 'ORCHARD', name: 'Orchard', timeZone: 'Asia/Singapore', active: true });
    expect((await env.client.call('getBranch', { branchId: branch!.branchId }, staff(tenantId))).branch).toEqual(branch);
    const { branch: updated } = await env.client.call(
      'updateBranch',
      { idempotencyKey: key(), branchId: branch!.branchId, timeZone: 'Asia/Kuala_Lumpur', active: false },
      manager(tenantId),
    );
    expect(updated).toMatchObject({ code: 'ORCHARD', name: 'Orchard', timeZone: 'Asia/Kuala_Lumpur', active: false });
  });

  it('names bad branch fields and duplicate codes', async () => {
    const tenantId = await tenant();
    const who = manager(tenantId);
    await expectError(
      env.client.call('createBranch', { idempotencyKey: key(), code: 'MARS', name: 'Mars', timeZone: 'Mars/Base' }, who),
      Code.InvalidArgument,
      'time_zone: unknown IANA time zone "Mars/Base"',
    );
    await expectError(env.client.call('createBranch', { idempotencyKey: key(), code: '', name: 'X', timeZone: 'UTC' }, who), Code.InvalidArgument, 'code: required');
    await env.client.call('createBranch', { idempotencyKey: key(), code: 'TAMPINES', name: 'Tampines', timeZone: 'Asia/Singapore' }, who);
    await expectError(
      env.client.call('createBranch', { idempotencyKey: key(), code: 'TAMPINES', name: 'Other', timeZone: 'Asia/Singapore' }, who),
      Code.AlreadyExists,
      'branch code "TAMPINES" already exists',
    );
    await expectError(env.client.call('getBranch', { branchId: '00000000-0000-4000-8000-000000000000' }, who), Code.NotFound, 'branch');
    await expectError(env.client.call('getBranch', { branchId: 'not-a-uuid' }, who), Code.NotFound, 'branch');
    await expectError(env.client.call('getBranch', { branchId: '' }, who), Code.InvalidArgument, 'branch_id: required');
    await expectError(
      env.client.call('updateBranch', { idempotencyKey: key(), branchId: '00000000-0000-4000-8000-000000000000', name: 'x' }, who),
      Code.NotFound,
      'branch',
    );
  });

  it('needs a tenant first, and a manager or admin', async () => {
    await expectError(
      env.client.call('createBranch', { idempotencyKey: key(), code: 'A', name: 'A', timeZone: 'UTC' }, admin(newTenantId())),
      Code.FailedPrecondition,
      'call CreateTenant first',
    );
    const tenantId = await tenant();
    await expectError(env.client.call('createBranch', { idempotencyKey: key(), code: 'A', name: 'A', timeZone: 'UTC' }, staff(tenantId)), Code.PermissionDenied, 'manager');
  });

  it('lists branches in pages, optionally only active ones', async () => {
    const tenantId = await tenant();
    const who = manager(tenantId);
    const made: Branch[] = [];
    for (let i = 0; i < 7; i++) {
      const { branch } = await env.client.call('createBranch', { idempotencyKey: key(), code: `B${i}`, name: `Branch ${i}`, timeZone: 'UTC' }, who);
      made.push(branch!);
    }
    await env.client.call('updateBranch', { idempotencyKey: key(), branchId: made[3]!.branchId, active: false }, who);

    const codes: string[] = [];
    let pageToken = '';
    do {
      const res = await env.client.call('listBranches', { pageSize: 3, pageToken }, who);
      expect(res.branches.length).toBeLessThanOrEqual(3);
      codes.push(...res.branches.map((b) => b.code));
      pageToken = res.nextPageToken;
    } while (pageToken);
    expect(codes).toEqual(['B0', 'B1', 'B2', 'B3', 'B4', 'B5', 'B6']);

    const active = await env.client.call('listBranches', { activeOnly: true }, who);
    expect(active.branches.map((b) => b.code)).toEqual(['B0', 'B1', 'B2', 'B4', 'B5', 'B6']);
    expect(active.nextPageToken).toBe('');

    const first = await env.client.call('listBranches', { pageSize: 2 }, who);
    await expectError(env.client.call('listBranches', { pageToken: first.nextPageToken, activeOnly: true }, who), Code.InvalidArgument, 'page_token');
    await expectError(env.client.call('listBranches', { pageSize: -1 }, who), Code.InvalidArgument, 'page_size: must not be negative');
  });
});
