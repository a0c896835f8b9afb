import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import { Feature, PlanTier } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { TenantChangedSchema } from '@punchcard/contracts/punchcard/events/v1/catalogue_events_pb';
import { JournalPostedSchema } from '@punchcard/contracts/punchcard/events/v1/revenue_events_pb';
import { Account } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { JournalEntrySchema } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCsv } from '../src/domain/export.js';
import { startFakeQbo, startFakeXero } from './support/fake-accounting.js';
import { admin, expectError, newTenantId, startTestEnv, type TestEnv } from './support/harness.js';

const XERO = { token: `xero-access-${randomUUID()}`, tenantId: randomUUID() };
const QBO = { token: `qbo-access-${randomUUID()}`, realmId: '9130354871234567' };
const XERO_CODES = { ACCOUNT_CASH: '090', ACCOUNT_DEFERRED_REVENUE: '835', ACCOUNT_PACKAGE_REVENUE: '200' };
const QBO_CODES = { ACCOUNT_CASH: '35', ACCOUNT_DEFERRED_REVENUE: '92', ACCOUNT_PACKAGE_REVENUE: '79' };

let env: TestEnv;
let xero: Awaited<ReturnType<typeof startFakeXero>>;
let qbo: Awaited<ReturnType<typeof startFakeQbo>>;
let exportDir: string;

beforeAll(async () => {
  xero = await startFakeXero(XERO);
  qbo = await startFakeQbo(QBO);
  exportDir = mkdtempSync(join(tmpdir(), 'billing-export-'));
  env = await startTestEnv({ connectors: { xeroBaseUrl: `${xero.url}/api.xro/2.0`, qboBaseUrl: qbo.url, exportDir } });
});
afterAll(async () => {
  await env?.close();
  await xero?.close();
  await qbo?.close();
  rmSync(exportDir, { recursive: true, force: true });
});

async function enterpriseTenant(features: Feature[] = [Feature.ACCOUNTING_INTEGRATION]): Promise<string> {
  const tenantId = newTenantId('ent');
  const id = await env.publish({
    producer: 'catalogue',
    event: 'tenant_changed',
    tenantId,
    aggregateId: tenantId,
    schema: TenantChangedSchema,
    message: { tenant: { tenantId, name: 'Acme Physio', planTier: PlanTier.ENTERPRISE, defaultCurrency: 'SGD', features, updateTime: timestampFromDate(new Date()) } },
  });
  await env.outcomes.settled(id, 'billing_tenants');
  return tenantId;
}

async function configure(tenantId: string) {
  await env.call('configureConnector', { idempotencyKey: 'xero', accessToken: XERO.token, config: { connector: 'xero', enabled: true, externalTenantId: XERO.tenantId, accountCodes: XERO_CODES } }, admin(tenantId));
  await env.call('configureConnector', { idempotencyKey: 'qbo', accessToken: QBO.token, config: { connector: 'qbo', enabled: true, externalTenantId: QBO.realmId, accountCodes: QBO_CODES } }, admin(tenantId));
}

function saleEntry(tenantId: string, minor = 30000n): MessageInitShape<typeof JournalEntrySchema> {
  const journalEntryId = randomUUID();
  return {
    tenantId,
    journalEntryId,
    cause: 'ledger.entitlement_purchased',
    sourceId: randomUUID(),
    entitlementId: randomUUID(),
    definitionId: 'def-10pass',
    accountingDate: '2030-03-05',
    description: 'Sale: 10-session pass',
    lines: [
      { account: Account.CASH, branchId: 'orchard', debit: { currencyCode: 'SGD', amountMinor: minor } },
      { account: Account.DEFERRED_REVENUE, branchId: 'orchard', credit: { currencyCode: 'SGD', amountMinor: minor } },
    ],
  };
}

async function post(entry: MessageInitShape<typeof JournalEntrySchema>, eventId?: string) {
  const id = await env.publish({ producer: 'revenue', event: 'journal_posted', tenantId: entry.tenantId!, aggregateId: entry.journalEntryId!, schema: JournalPostedSchema, message: { entry }, ...(eventId ? { id: eventId } : {}) });
  await env.outcomes.settled(id, 'billing_journal');
}

const xeroRequestsFor = (id: string) => xero.requests.filter((r) => r.headers['idempotency-key'] === id);
const qboRequestsFor = (id: string) => qbo.requests.filter((r) => r.query.get('requestid') === id);

describe('accounting connectors', () => {
  it('pushes a journal entry to Xero and QuickBooks in their formats, exactly once across a 500 then success', async () => {
    const tenant = await enterpriseTenant();
    await configure(tenant);
    const entry = saleEntry(tenant);
    const id = entry.journalEntryId!;
    await post(entry);

    xero.state.failNext = 1;
    await env.app.workers.syncs.runOnce();
    expect(qbo.entries.get(id)).toBeDefined();
    expect(xero.journals.get(id)).toBeUndefined();
    const { failures } = await env.call('listSyncFailures', {}, admin(tenant));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ journalEntryId: id, connector: 'xero', attempts: 1, gaveUp: false });
    expect(failures[0]!.lastError).toContain('500');

    // Redelivery of the event, and the same entry under another event id, change nothing.
    await post(entry);
    await env.app.workers.syncs.runOnce();
    expect(xeroRequestsFor(id)).toHaveLength(1);

    env.clock.advance(60_000);
    await env.app.workers.syncs.runOnce();
    env.clock.advance(24 * 3_600_000);
    await env.app.workers.syncs.runOnce();

    expect(xeroRequestsFor(id)).toHaveLength(2);
    expect(xero.journals.size).toBeGreaterThanOrEqual(1);
    expect([...xero.journals.keys()].filter((k) => k === id)).toHaveLength(1);
    expect(qboRequestsFor(id)).toHaveLength(1);
    expect((await env.call('listSyncFailures', {}, admin(tenant))).failures).toHaveLength(0);

    const body = JSON.parse(xeroRequestsFor(id)[1]!.body);
    expect(body).toEqual({
      ManualJournals: [
        {
          Narration: `Sale: 10-session pass [punchcard journal ${id}]`,
          Date: '2030-03-05',
          Status: 'POSTED',
          LineAmountTypes: 'NoTax',
          ShowOnCashBasisReports: false,
          JournalLines: [
            { LineAmount: 300, AccountCode: '090', Description: 'cash @orchard: ledger.entitlement_purchased' },
            { LineAmount: -300, AccountCode: '835', Description: 'deferred_revenue @orchard: ledger.entitlement_purchased' },
          ],
        },
      ],
    });
    const qboBody = JSON.parse(qboRequestsFor(id)[0]!.body);
    expect(qboBody).toMatchObject({
      TxnDate: '2030-03-05',
      TotalAmt: 300,
      Line: [
        { Amount: 300, DetailType: 'JournalEntryLineDetail', JournalEntryLineDetail: { PostingType: 'Debit', AccountRef: { value: '35' } } },
        { Amount: 300, DetailType: 'JournalEntryLineDetail', JournalEntryLineDetail: { PostingType: 'Credit', AccountRef: { value: '92' } } },
      ],
    });
    expect(qboBody.DocNumber.length).toBeLessThanOrEqual(21);
    expect(qboBody.PrivateNote).toContain(id);
  });

  it('relies on the target idempotency key when Xero applied a request but the answer was lost', async () => {
    const tenant = await enterpriseTenant();
    await configure(tenant);
    const entry = saleEntry(tenant, 12345n);
    await post(entry);
    xero.state.failAfterApplyNext = 1;
    await env.app.workers.syncs.runOnce();
    env.clock.advance(3_600_000);
    await env.app.workers.syncs.runOnce();
    expect(xeroRequestsFor(entry.journalEntryId!)).toHaveLength(2);
    expect([...xero.journals.keys()].filter((k) => k === entry.journalEntryId)).toHaveLength(1);
    expect((await env.call('listSyncFailures', { connector: 'xero' }, admin(tenant))).failures).toHaveLength(0);
  });

  it('gives up on an unmapped account at once, alerts with billing.sync_failed, and RetrySync delivers after the mapping is fixed', async () => {
    const tenant = await enterpriseTenant();
    await configure(tenant);
    const entry = saleEntry(tenant);
    entry.lines![1]!.account = Account.BREAKAGE_REVENUE;
    await post(entry);
    await env.app.workers.syncs.runOnce();
    const { failures } = await env.call('listSyncFailures', { connector: 'xero' }, admin(tenant));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ gaveUp: true, attempts: 1 });
    expect(failures[0]!.lastError).toContain('ACCOUNT_BREAKAGE_REVENUE');
    expect(xeroRequestsFor(entry.journalEntryId!)).toHaveLength(0);

    const alerts = (await env.billingEvents()).filter((e) => e.subject === `punchcard.billing.sync_failed.${tenant}`);
    expect(alerts.map((a) => a.data)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ tenantId: tenant, journalEntryId: entry.journalEntryId, connector: 'xero' }),
        expect.objectContaining({ tenantId: tenant, journalEntryId: entry.journalEntryId, connector: 'qbo' }),
      ]),
    );

    // A gave-up sync is not retried on its own.
    env.clock.advance(24 * 3_600_000);
    await env.app.workers.syncs.runOnce();
    expect(xeroRequestsFor(entry.journalEntryId!)).toHaveLength(0);

    await env.call('configureConnector', { idempotencyKey: 'xero-2', config: { connector: 'xero', enabled: true, externalTenantId: XERO.tenantId, accountCodes: { ...XERO_CODES, ACCOUNT_BREAKAGE_REVENUE: '260' } } }, admin(tenant));
    const retried = await env.call('retrySync', { idempotencyKey: 'r1', journalEntryId: entry.journalEntryId!, connector: 'xero' }, admin(tenant));
    expect(retried).toMatchObject({ delivered: true });
    expect(xeroRequestsFor(entry.journalEntryId!)).toHaveLength(1);
    expect(JSON.parse(xeroRequestsFor(entry.journalEntryId!)[0]!.body).ManualJournals[0].JournalLines[1].AccountCode).toBe('260');
    // Retrying a delivered sync sends nothing.
    expect(await env.call('retrySync', { idempotencyKey: 'r2', journalEntryId: entry.journalEntryId!, connector: 'xero' }, admin(tenant))).toMatchObject({ delivered: true });
    expect(xeroRequestsFor(entry.journalEntryId!)).toHaveLength(1);
    const left = await env.call('listSyncFailures', {}, admin(tenant));
    expect(left.failures.map((f) => f.connector)).toEqual(['qbo']);
  });

  it('gives up after the attempt limit when the target keeps failing, and alerts', async () => {
    const tenant = await enterpriseTenant();
    await env.call('configureConnector', { idempotencyKey: 'qbo', accessToken: QBO.token, config: { connector: 'qbo', enabled: true, externalTenantId: QBO.realmId, accountCodes: QBO_CODES } }, admin(tenant));
    const entry = saleEntry(tenant);
    await post(entry);
    qbo.state.failNext = 100;
    for (let i = 0; i < 10; i++) {
      await env.app.workers.syncs.runOnce();
      env.clock.advance(2 * 3_600_000);
    }
    qbo.state.failNext = 0;
    expect(qboRequestsFor(entry.journalEntryId!).length).toBe(env.app.ctx.limits.syncMaxAttempts);
    const { failures } = await env.call('listSyncFailures', { connector: 'qbo' }, admin(tenant));
    expect(failures[0]).toMatchObject({ gaveUp: true, attempts: env.app.ctx.limits.syncMaxAttempts });
    const alerts = (await env.billingEvents()).filter((e) => e.subject === `punchcard.billing.sync_failed.${tenant}`);
    expect(alerts).toHaveLength(1);
  });

  it("syncs a transfer's journal with the clearing account mapped to the tenant's code", async () => {
    const tenant = await enterpriseTenant();
    await env.call(
      'configureConnector',
      { idempotencyKey: 'xero', accessToken: XERO.token, config: { connector: 'xero', enabled: true, externalTenantId: XERO.tenantId, accountCodes: { ...XERO_CODES, ACCOUNT_TRANSFER_CLEARING: '2190' } } },
      admin(tenant),
    );
    const entry = saleEntry(tenant);
    entry.cause = 'ledger.transferred_out';
    entry.lines = [
      { account: Account.DEFERRED_REVENUE, branchId: 'orchard', debit: { currencyCode: 'SGD', amountMinor: 22500n } },
      { account: Account.TRANSFER_CLEARING, branchId: 'orchard', credit: { currencyCode: 'SGD', amountMinor: 22500n } },
    ];
    await post(entry);
    await env.app.workers.syncs.runOnce();
    const journal = xero.journals.get(entry.journalEntryId!)?.body as { JournalLines: { AccountCode: string; LineAmount: number }[] } | undefined;
    expect(journal?.JournalLines.map((l) => [l.AccountCode, l.LineAmount])).toEqual([
      ['835', 225],
      ['2190', -225],
    ]);
  });

  it('writes CSV and JSON files, and exports journal entries for a period', async () => {
    const tenant = await enterpriseTenant();
    await env.call('configureConnector', { idempotencyKey: 'csv', config: { connector: 'csv', enabled: true } }, admin(tenant));
    await env.call('configureConnector', { idempotencyKey: 'json', config: { connector: 'json', enabled: true } }, admin(tenant));
    const entry = saleEntry(tenant, 7550n);
    entry.description = '=SUM(A1:A9)';
    await post(entry);
    await env.app.workers.syncs.runOnce();
    const files = readdirSync(join(exportDir, tenant)).sort();
    expect(files).toEqual([`2030-03-05_${entry.journalEntryId}.csv`, `2030-03-05_${entry.journalEntryId}.json`]);
    const rows = parseCsv(readFileSync(join(exportDir, tenant, files[0]!), 'utf8'));
    expect(rows[1]).toEqual(expect.arrayContaining([entry.journalEntryId, 'ACCOUNT_CASH', 'SGD', '75.50', '0.00', "'=SUM(A1:A9)"]));
    const json = JSON.parse(readFileSync(join(exportDir, tenant, files[1]!), 'utf8'));
    expect(json.journal_entries[0].lines[1]).toMatchObject({ account: 'ACCOUNT_DEFERRED_REVENUE', debit: 0, credit: 75.5 });

    const csv = await env.call('exportJournalEntries', { format: 'csv', startDate: '2030-03-01', endDate: '2030-04-01' }, admin(tenant));
    expect(csv.entries).toBe(1);
    expect(csv.contentType).toContain('text/csv');
    expect(parseCsv(Buffer.from(csv.content).toString('utf8'))).toHaveLength(3);
    expect((await env.call('exportJournalEntries', { format: 'json', startDate: '2030-04-01' }, admin(tenant))).entries).toBe(0);
    await expectError(env.call('exportJournalEntries', { format: 'xml' }, admin(tenant)), Code.InvalidArgument, 'format');
  });

  it('is ENTERPRISE only, keeps tokens write-only, and validates the mapping', async () => {
    const basic = await enterpriseTenant([]);
    await expectError(env.call('configureConnector', { idempotencyKey: 'k', config: { connector: 'csv', enabled: true } }, admin(basic)), Code.FailedPrecondition, 'FEATURE_ACCOUNTING_INTEGRATION');
    const unknownTenant = newTenantId();
    await expectError(env.call('configureConnector', { idempotencyKey: 'k', config: { connector: 'csv', enabled: true } }, admin(unknownTenant)), Code.FailedPrecondition, 'plan');
    // A journal entry of a tenant without the feature is not stored or pushed.
    await post(saleEntry(basic));
    expect(await env.db.selectFrom('journal_syncs').select('journal_entry_id').where('tenant_id', '=', basic).execute()).toHaveLength(0);

    const tenant = await enterpriseTenant();
    await expectError(env.call('configureConnector', { idempotencyKey: 'k1', config: { connector: 'sage', enabled: true } }, admin(tenant)), Code.InvalidArgument, 'config.connector');
    await expectError(env.call('configureConnector', { idempotencyKey: 'k2', config: { connector: 'xero', enabled: true, accountCodes: { CASH: '1' } } }, admin(tenant)), Code.InvalidArgument, 'config.account_codes[CASH]');
    await expectError(env.call('configureConnector', { idempotencyKey: 'k3', config: { connector: 'xero', enabled: true, externalTenantId: 'x' } }, admin(tenant)), Code.InvalidArgument, 'access_token');
    await configure(tenant);
    const { connectors } = await env.call('listConnectors', {}, admin(tenant));
    expect(connectors.map((c) => [c.connector, c.hasAccessToken])).toEqual([
      ['qbo', true],
      ['xero', true],
    ]);
    expect(JSON.stringify(connectors, (_k, v) => (typeof v === 'bigint' ? String(v) : v))).not.toContain(XERO.token);
    const stored = await env.db.selectFrom('connectors').select('access_token_enc').where('tenant_id', '=', tenant).execute();
    for (const row of stored) expect(Buffer.from(row.access_token_enc!).toString('latin1')).not.toContain('access-');
  });
});

