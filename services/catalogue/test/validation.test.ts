import { Code } from '@connectrpc/connect';
import { ExpiryAnchor, ExpiryMode, PlanTier, RefundMethod } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { basicTerms, key, setupTenant, sgd, type TermsInit } from './support/fixtures.js';
import { admin, expectError, manager, newTenantId, startTestEnv, type TestEnv } from './support/harness.js';

let env: TestEnv;
let tenantId: string;
let branchId: string;
beforeAll(async () => {
  env = await startTestEnv();
  tenantId = newTenantId();
  // ENTERPRISE, so only validation (never a plan gate) can refuse these.
  branchId = (await setupTenant(env.client, tenantId, PlanTier.ENTERPRISE)).branch.branchId;
});
afterAll(async () => {
  await env?.close();
});

const CASES: Array<[string, (b: string) => Partial<TermsInit>, string]> = [
  ['negative price', () => ({ price: sgd(-1n) }), 'terms.price.amount_minor: must not be negative'],
  ['no price', () => ({ price: undefined }), 'terms.price: required'],
  ['zero sessions', () => ({ paidSessions: 0 }), 'terms.paid_sessions: must be at least 1'],
  ['currency mismatch', () => ({ price: { currencyCode: 'MYR', amountMinor: 100n } }), 'terms.price.currency_code: must equal the tenant currency SGD'],
  ['grace on HARD', () => ({ expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 90, mode: ExpiryMode.HARD, graceDays: 7 } }), 'terms.expiry.grace_days: grace needs SOFT expiry mode'],
  ['days and months', () => ({ expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 90, durationMonths: 3 } }), 'terms.expiry.duration_months: set duration_days or duration_months, not both'],
  ['no duration', () => ({ expiry: { anchor: ExpiryAnchor.FIRST_USE } }), 'terms.expiry.duration_days: set duration_days or duration_months for anchor FIRST_USE'],
  ['bad fixed date', () => ({ expiry: { anchor: ExpiryAnchor.FIXED_DATE, fixedDate: '31/12/2026' } }), 'terms.expiry.fixed_date: must be a calendar date YYYY-MM-DD'],
  [
    'custom rule list of one',
    () => ({ expiry: { customRule: { kind: { case: 'whicheverLater', value: { rules: [{ kind: { case: 'daysAfterPurchase', value: 30 } }] } } } } }),
    'terms.expiry.custom_rule.whichever_later.rules: must combine at least 2 rules',
  ],
  [
    'custom rule part',
    () => ({
      expiry: {
        customRule: { kind: { case: 'whicheverEarlier', value: { rules: [{ kind: { case: 'daysAfterLastUse', value: 0 } }, { kind: { case: 'daysAfterPurchase', value: 180 } }] } } },
      },
    }),
    'terms.expiry.custom_rule.whichever_earlier.rules[0].days_after_last_use: must be at least 1',
  ],
  ['empty custom rule', () => ({ expiry: { customRule: {} } }), 'terms.expiry.custom_rule: choose a rule kind'],
  ['no service code', () => ({ serviceCodes: [] }), 'terms.service_codes: list at least one service code'],
  ['no branch policy', () => ({ branches: undefined }), 'terms.branches: set all_branches or list at least one branch_id'],
  ['standalone price missing', () => ({ refund: { method: RefundMethod.USED_AT_STANDALONE_PRICE } }), 'terms.standalone_price_per_session: required for refund method USED_AT_STANDALONE_PRICE'],
  ['unknown enum', () => ({ refund: { method: 77 as RefundMethod } }), 'terms.refund.method: unknown value 77'],
  ['breakage above 100%', () => ({ expectedBreakageBps: 10_001 }), 'terms.expected_breakage_bps: must be at most 10000'],
  ['unknown delivery branch', () => ({ deliveryCostByBranch: [{ branchId: 'nope', costPerSession: sgd(100n) }] }), 'terms.delivery_cost_by_branch[0].branch_id: unknown branch "nope"'],
];

describe('definition validation names the field', () => {
  it.each(CASES)('%s', async (_name, extra, message) => {
    const terms = basicTerms(branchId, extra(branchId));
    await expectError(env.client.call('createDefinition', { idempotencyKey: key(), terms }, manager(tenantId)), Code.InvalidArgument, message);
  });

  it('on update too', async () => {
    const { definition } = await env.client.call('createDefinition', { idempotencyKey: key(), terms: basicTerms(branchId, { code: 'VALID' }) }, manager(tenantId));
    await expectError(
      env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: definition!.definitionId, terms: basicTerms(branchId, { code: 'VALID', paidSessions: -3 }) }, manager(tenantId)),
      Code.InvalidArgument,
      'terms.paid_sessions: must be at least 1',
    );
    await expectError(
      env.client.call('updateDefinition', { idempotencyKey: key(), definitionId: definition!.definitionId }, manager(tenantId)),
      Code.InvalidArgument,
      'terms: required',
    );
  });

  it('the currency is fixed once the tenant has definitions', async () => {
    await expectError(
      env.client.call('updateTenant', { idempotencyKey: key(), defaultCurrency: 'MYR' }, admin(tenantId)),
      Code.FailedPrecondition,
      'default_currency cannot change from SGD to MYR',
    );
  });
});
