import { DefinitionStatus, Feature, PlanTier } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import type { BranchChanged, DefinitionPublished, DefinitionRetired, TenantChanged } from '@punchcard/contracts/punchcard/events/v1/catalogue_events_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicTerms, key, setupTenant } from './support/fixtures.js';
import { admin, manager, newTenantId, startTestEnv, type TestEnv } from './support/harness.js';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

describe('catalogue events on JetStream', () => {
  it('publishes tenant, branch, publish, new-version and retire events, decodable with the contract', async () => {
    const tenantId = newTenantId();
    const { branch } = await setupTenant(env.client, tenantId, PlanTier.BASIC);
    await env.client.call('updateTenant', { idempotencyKey: key(), planTier: PlanTier.ADVANCED }, admin(tenantId));
    await env.client.call('updateBranch', { idempotencyKey: key(), branchId: branch.branchId, name: 'Orchard Road' }, manager(tenantId));

    const terms = basicTerms(branch.branchId, { code: 'EVT' });
    const { definition } = await env.client.call('createDefinition', { idempotencyKey: key(), terms }, manager(tenantId));
    const id = definition!.definitionId;
    // Drafts are not announced.
    await env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: id, terms: { ...terms, name: 'Draft edit' } }, manager(tenantId));
    await env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: id }, manager(tenantId));
    await env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: id, terms: { ...terms, name: 'Draft edit', paidSessions: 12 } }, manager(tenantId));
    await env.client.call('retireDefinition', { idempotencyKey: key(), definitionId: id }, manager(tenantId));

    const events = await env.events(tenantId);
    expect(events.map((e) => [e.subject, e.entityVersion])).toEqual([
      [`punchcard.catalogue.tenant_changed.${tenantId}`, '1'],
      [`punchcard.catalogue.branch_changed.${tenantId}`, '1'],
      [`punchcard.catalogue.tenant_changed.${tenantId}`, '2'],
      [`punchcard.catalogue.branch_changed.${tenantId}`, '2'],
      [`punchcard.catalogue.definition_published.${tenantId}`, '1'],
      [`punchcard.catalogue.definition_published.${tenantId}`, '2'],
      [`punchcard.catalogue.definition_retired.${tenantId}`, '3'],
    ]);
    for (const e of events) {
      expect(e.tenantId).toBe(tenantId);
      expect(e.contentType).toBe('application/protobuf');
      expect(e.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(e.type).toBe(`punchcard.catalogue.${e.subject.split('.')[2]}`);
    }
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);

    const [created, , upgraded, renamed, published, v2, retired] = events.map((e) => e.data);
    expect((created as TenantChanged).tenant).toMatchObject({ tenantId, planTier: PlanTier.BASIC, features: [Feature.MANUAL_DEDUCTION, Feature.HARD_EXPIRY, Feature.PACKAGE_HISTORY] });
    expect((upgraded as TenantChanged).tenant?.features).toContain(Feature.BONUS_SESSIONS);
    expect((renamed as BranchChanged).branch).toMatchObject({ branchId: branch.branchId, name: 'Orchard Road', timeZone: 'Asia/Singapore' });
    expect((published as DefinitionPublished).definition).toMatchObject({
      definitionId: id,
      version: 1,
      status: DefinitionStatus.ACTIVE,
      terms: { code: 'EVT', name: 'Draft edit', paidSessions: 10 },
    });
    expect((v2 as DefinitionPublished).definition).toMatchObject({ definitionId: id, version: 2, status: DefinitionStatus.ACTIVE, terms: { paidSessions: 12 } });
    expect((retired as DefinitionRetired).definition).toMatchObject({ definitionId: id, version: 2, status: DefinitionStatus.RETIRED });
  });

  it('a refused change publishes nothing', async () => {
    const tenantId = newTenantId();
    const { branch } = await setupTenant(env.client, tenantId, PlanTier.BASIC);
    const { definition: a } = await env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(branch.branchId) }, manager(tenantId));
    const { definition: b } = await env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(branch.branchId) }, manager(tenantId));
    await env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: a!.definitionId }, manager(tenantId));
    await expect(env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: b!.definitionId }, manager(tenantId))).rejects.toThrow();
    const events = await env.events(tenantId);
    expect(events.filter((e) => e.subject.includes('definition_published'))).toHaveLength(1);
  });
});

describe('housekeeping', () => {
  it('deletes idempotency keys past their retention, and keeps fresh ones', async () => {
    expect(await env.housekeepingLeaves()).toEqual({ idempotency_keys: ['fresh'] });
  });
});
