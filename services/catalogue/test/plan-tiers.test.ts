import { Code } from '@connectrpc/connect';
import { DefinitionStatus, ExpiryAnchor, ExpiryMode, PlanTier, RefundMethod, TransferScope } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicTerms, key, setupTenant, sgd, type TermsInit } from './support/fixtures.js';
import { admin, expectError, manager, newTenantId, startTestEnv, type TestEnv } from './support/harness.js';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

const TIERS = [PlanTier.BASIC, PlanTier.ADVANCED, PlanTier.EXPERT, PlanTier.ENTERPRISE];
const tierName = (t: PlanTier) => PlanTier[t];

/** Each gated definition feature, the tier that first has it, and terms (for a branch) that use it. */
const GATES: Array<[string, keyof typeof PlanTier, (branchId: string, otherBranchId: string, targetId: string) => Partial<TermsInit>]> = [
  ['SOFT_EXPIRY', 'ADVANCED', () => ({ expiry: { anchor: ExpiryAnchor.PURCHASE, durationMonths: 6, mode: ExpiryMode.SOFT, graceDays: 14 } })],
  ['BONUS_SESSIONS', 'ADVANCED', () => ({ paidSessions: 3, bonusSessions: 1 })],
  ['TRANSFER', 'EXPERT', () => ({ transfer: { scope: TransferScope.ANYONE, maxTransfers: 1 } })],
  ['SHARING', 'EXPERT', () => ({ sharing: { householdPool: true, maxMembers: 4 } })],
  ['TOP_UP', 'EXPERT', () => ({ topUp: { enabled: true, pricePerSession: sgd(5_000n) } })],
  ['UPGRADE', 'EXPERT', (_b, _o, target) => ({ upgrade: { targetDefinitionIds: [target] } })],
  ['REVENUE_DEFERRAL', 'EXPERT', () => ({ expectedBreakageBps: 1_000 })],
  ['PROFIT_REPORTING', 'EXPERT', () => ({ deliveryCostPerSession: sgd(1_500n) })],
  ['MULTI_BRANCH', 'ENTERPRISE', () => ({ branches: { allBranches: true } })],
  ['MULTI_BRANCH', 'ENTERPRISE', (b, other) => ({ branches: { branchIds: [b, other] } })],
  [
    'CUSTOM_EXPIRY_RULES',
    'ENTERPRISE',
    () => ({
      expiry: {
        mode: ExpiryMode.HARD,
        customRule: { kind: { case: 'whicheverEarlier', value: { rules: [{ kind: { case: 'daysAfterLastUse', value: 30 } }, { kind: { case: 'daysAfterPurchase', value: 180 } }] } } },
      },
    }),
  ],
  ['REFUNDS', 'ENTERPRISE', () => ({ refund: { method: RefundMethod.PRO_RATA, refundWindowDays: 30 } })],
];

describe('plan tier gates', () => {
  it.each(GATES)('%s needs %s: refused below it on create and update, allowed from it', async (feature, lowestName, extra) => {
    const lowest = PlanTier[lowestName];
    for (const tier of TIERS) {
      const tenantId = newTenantId();
      const { branch } = await setupTenant(env.client, tenantId, tier);
      const who = manager(tenantId);
      const { branch: other } = await env.client.call('createBranch', { idempotencyKey: key(), code: 'OTHER', name: 'Other', timeZone: 'UTC' }, who);
      const { definition: target } = await env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(branch.branchId) }, who);
      const { definition: edited } = await env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(branch.branchId) }, who);
      const terms = basicTerms(branch.branchId, extra(branch.branchId, other!.branchId, target!.definitionId));
      const message = `feature ${feature} needs plan tier ${tierName(lowest)} (tenant is ${tierName(tier)})`;
      if (tier < lowest) {
        await expectError(env.client.call('createDefinition', { idempotencyKey: key(), terms }, who), Code.FailedPrecondition, message);
        await expectError(
          env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: edited!.definitionId, terms: { ...terms, code: edited!.terms!.code } }, who),
          Code.FailedPrecondition,
          message,
        );
      } else {
        const { definition } = await env.client.call('createDefinition', { idempotencyKey: key(), terms }, who);
        expect(definition?.status).toBe(DefinitionStatus.DRAFT);
      }
    }
  });

  it('BASIC sells one active package type; ADVANCED sells several', async () => {
    const tenantId = newTenantId();
    const { branch } = await setupTenant(env.client, tenantId, PlanTier.BASIC);
    const who = manager(tenantId);
    const create = async (code: string) =>
      (await env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(branch.branchId, { code }) }, who)).definition!;
    const first = await create('FIRST');
    const second = await create('SECOND');
    await env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: first.definitionId }, who);
    await expectError(
      env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: second.definitionId }, who),
      Code.FailedPrecondition,
      'feature MULTI_PACKAGE needs plan tier ADVANCED (tenant is BASIC): definition "FIRST" is already active',
    );
    // Editing the one active definition is not a second package type.
    const { definition: v2 } = await env.client.call(
      'updateDefinition',
      { idempotencyKey: key(), definitionId: first.definitionId, terms: basicTerms(branch.branchId, { code: 'FIRST', paidSessions: 12 }) },
      who,
    );
    expect(v2).toMatchObject({ version: 2, status: DefinitionStatus.ACTIVE });
    // After retiring the first, the second may go live.
    await env.client.call('retireDefinition', { idempotencyKey: key(), definitionId: first.definitionId }, who);
    await env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: second.definitionId }, who);

    await env.client.call('updateTenant', { idempotencyKey: key(), planTier: PlanTier.ADVANCED }, admin(tenantId));
    const third = await create('THIRD');
    const { definition } = await env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: third.definitionId }, who);
    expect(definition?.status).toBe(DefinitionStatus.ACTIVE);
  });

  it('concurrent publishes on BASIC leave exactly one active definition', async () => {
    const tenantId = newTenantId();
    const { branch } = await setupTenant(env.client, tenantId, PlanTier.BASIC);
    const who = manager(tenantId);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { definition } = await env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(branch.branchId, { code: `RACE-${i}` }) }, who);
      ids.push(definition!.definitionId);
    }
    const results = await Promise.allSettled(ids.map((definitionId) => env.client.call('publishDefinition', { idempotencyKey: key(), definitionId }, who)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const { definitions } = await env.client.call('listDefinitions', { status: DefinitionStatus.ACTIVE }, who);
    expect(definitions).toHaveLength(1);
  });

  it('publishing re-checks the plan: a draft written on a higher tier cannot go live after a downgrade', async () => {
    const tenantId = newTenantId();
    const { branch } = await setupTenant(env.client, tenantId, PlanTier.ADVANCED);
    const who = manager(tenantId);
    const { definition } = await env.client.call(
      'createDefinition',
      { idempotencyKey: key(), terms: basicTerms(branch.branchId, { paidSessions: 3, bonusSessions: 1 }) },
      who,
    );
    await env.client.call('updateTenant', { idempotencyKey: key(), planTier: PlanTier.BASIC }, admin(tenantId));
    await expectError(
      env.client.call('publishDefinition', { idempotencyKey: key(), definitionId: definition!.definitionId }, who),
      Code.FailedPrecondition,
      'feature BONUS_SESSIONS needs plan tier ADVANCED (tenant is BASIC): terms.bonus_sessions is 1',
    );
  });
});
