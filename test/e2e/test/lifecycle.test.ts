import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { jetstream } from '@nats-io/jetstream';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import { PaymentStatus } from '@punchcard/contracts/punchcard/billing/v1/billing_pb';
import { DefinitionStatus, ExpiryAnchor, ExpiryMode, PlanTier, TransferScope } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { LedgerEntryRecordedSchema } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { JournalPostedSchema } from '@punchcard/contracts/punchcard/events/v1/revenue_events_pb';
import { VisitCompletedSchema } from '@punchcard/contracts/punchcard/events/v1/visit_events_pb';
import { TimerKind, TimerState } from '@punchcard/contracts/punchcard/expiry/v1/expiry_pb';
import { EntitlementStatus, EntryKind, VisitState } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { Account, type JournalEntry } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SPAN_KIND, type ReceivedSpan } from './support/otlp.js';
import { startSystem, type System } from './support/system.js';
import { waiting } from './support/waiting.js';

/**
 * The life of a package across the five services, each a separate process (the launcher of
 * `pnpm start`), over gRPC (@grpc/grpc-js), the VISITS stream and a plain JetStream observer:
 * catalogue → billing checkout → ledger purchase → a visit event consumes → revenue recognises →
 * billing receives the journal → a reversal → expiry by the scheduler → breakage → roll-forward.
 * The visit's trace is followed from the booking system's traceparent through ledger, revenue and
 * billing, in the spans the services export over OTLP.
 */

const TENANT = 'e2e-clinic';
const DAY = 86_400_000;
const sgd = (major: number) => ({ currencyCode: 'SGD', amountMinor: BigInt(Math.round(major * 100)) });

let sys: System;
let token: string;
let exportDir: string;
const opts = () => ({ token });

const { eventually, whenKnown } = waiting(() => sys.recentLogs());

const amount = (m: { amountMinor: bigint } | undefined) => m?.amountMinor ?? 0n;
const lineOf = (entry: JournalEntry, account: Account, branchId: string) => entry.lines.find((l) => l.account === account && l.branchId === branchId);

beforeAll(async () => {
  exportDir = mkdtempSync(path.join(tmpdir(), 'punchcard-e2e-exports-'));
  sys = await startSystem({ dataDir: exportDir });
  token = await sys.token(TENANT);
}, 180_000);

afterAll(async () => {
  await sys?.stop();
  if (exportDir) rmSync(exportDir, { recursive: true, force: true });
}, 60_000);

// Each step waits on effects that cross processes and NATS; its own waits time out first, with the services' logs.
describe('the life of a package across the five services', { timeout: 60_000 }, () => {
  const ids = { singapore: '', sydney: '', chiro: '', physio: '', entitlement: '', paymentId: '', consumeEntry: '', journalOfVisit: '' };

  it('sets up a tenant with branches in two time zones and publishes package definitions', async () => {
    const { catalogue } = sys.clients;
    await catalogue.call('createTenant', { idempotencyKey: 't', name: 'E2E Clinics', planTier: PlanTier.ENTERPRISE, defaultCurrency: 'SGD' }, opts());
    ids.singapore = (await catalogue.call('createBranch', { idempotencyKey: 'b1', code: 'SG', name: 'Orchard', timeZone: 'Asia/Singapore' }, opts())).branch!.branchId;
    ids.sydney = (await catalogue.call('createBranch', { idempotencyKey: 'b2', code: 'SYD', name: 'Sydney', timeZone: 'Australia/Sydney' }, opts())).branch!.branchId;
    const chiro = await catalogue.call(
      'createDefinition',
      {
        idempotencyKey: 'd1',
        terms: {
          code: 'CHIRO-3P1',
          name: 'Chiro 3+1',
          price: sgd(300),
          paidSessions: 3,
          bonusSessions: 1,
          serviceCodes: ['CHIRO'],
          expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 90, mode: ExpiryMode.HARD },
          transfer: { scope: TransferScope.ANYONE },
          branches: { allBranches: true },
        },
      },
      opts(),
    );
    const physio = await catalogue.call(
      'createDefinition',
      {
        idempotencyKey: 'd2',
        terms: {
          code: 'PHYSIO-5',
          name: 'Physio 5-pass',
          price: sgd(500),
          paidSessions: 5,
          serviceCodes: ['PHYSIO'],
          expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 30, mode: ExpiryMode.HARD },
          branches: { allBranches: true },
        },
      },
      opts(),
    );
    ids.chiro = chiro.definition!.definitionId;
    ids.physio = physio.definition!.definitionId;
    for (const [i, id] of [ids.chiro, ids.physio].entries()) {
      const published = await catalogue.call('publishDefinition', { idempotencyKey: `p${i}`, definitionId: id }, opts());
      expect(published.definition!.status).toBe(DefinitionStatus.ACTIVE);
    }
    for (const id of [ids.chiro, ids.physio]) {
      await sys.events.waitFor('catalogue.definition_published', (e) => e.subject === `punchcard.catalogue.definition_published.${TENANT}` && e.headers['ce-subject'] === id);
    }
  });

  it('sells a Chiro 3+1 through a billing checkout; the purchase saga creates the entitlement at the ledger', async () => {
    const { billing, ledger, revenue } = sys.clients;
    await whenKnown('billing to learn the ENTERPRISE tenant', () =>
      billing.call('configureConnector', { idempotencyKey: 'c1', config: { connector: 'json', enabled: true, accountCodes: { ACCOUNT_CASH: '1000' } } }, opts()),
    );
    const checkout = await billing.call(
      'createCheckout',
      { idempotencyKey: 'co1', memberId: 'ava', definitionId: ids.chiro, branchId: ids.singapore, provider: 'manual', amount: sgd(300) },
      opts(),
    );
    ids.paymentId = checkout.payment!.paymentId;
    expect(checkout.payment!.status).toBe(PaymentStatus.PENDING);
    await billing.call('confirmManualPayment', { idempotencyKey: 'cf1', paymentId: ids.paymentId, reference: 'terminal-1' }, opts());
    const payment = await eventually('the payment to be fulfilled', async () => {
      const p = (await billing.call('getPayment', { paymentId: ids.paymentId }, opts())).payment!;
      return p.status === PaymentStatus.FULFILLED ? p : undefined;
    });
    ids.entitlement = payment.entitlementId;

    const e = (await ledger.call('getEntitlement', { entitlementId: ids.entitlement }, opts())).entitlement!;
    expect(e).toMatchObject({ memberId: 'ava', status: EntitlementStatus.ACTIVE, paidRemaining: 3, bonusRemaining: 1, paymentReference: ids.paymentId, purchaseBranchId: ids.singapore });

    const captured = await sys.events.waitFor('billing.payment_captured', (ev) => ev.subject === `punchcard.billing.payment_captured.${TENANT}`);
    expect(captured.headers['ce-tenantid']).toBe(TENANT);
    const purchased = await sys.events.waitFor('ledger.entitlement_purchased', (ev) => ev.subject.startsWith('punchcard.ledger.entitlement_purchased.') && ev.headers['ce-subject'] === ids.entitlement);
    expect(purchased.headers['ce-entityversion']).toBe('1');

    // The price is allocated over all four sessions, the free one included: 4 × 75.00, all deferred.
    const contract = await eventually('revenue to open the contract', async () => (await revenue.call('getContract', { entitlementId: ids.entitlement }, opts())).contract);
    expect(contract.sessions.map((s) => amount(s.value))).toEqual([7500n, 7500n, 7500n, 7500n]);
    expect(amount(contract.deferredBalance)).toBe(30000n);
  });

  it('a visit at the Sydney branch, published on VISITS, is consumed by the ledger, recognised by revenue and reaches billing in one trace', async () => {
    const { ledger, revenue, billing } = sys.clients;
    const traceId = randomBytes(16).toString('hex');
    const rootSpanId = randomBytes(8).toString('hex');
    await publishVisit({ visitId: 'visit-1', memberId: 'ava', branchId: ids.sydney, traceparent: `00-${traceId}-${rootSpanId}-01` });

    const visit = await eventually('the ledger to consume the visit', async () => {
      const v = (await ledger.call('getVisit', { visitId: 'visit-1' }, opts()).catch(() => undefined))?.visit;
      return v && v.state !== VisitState.UNSPECIFIED ? v : undefined;
    });
    expect(visit).toMatchObject({ state: VisitState.CONSUMED, entitlementId: ids.entitlement, branchId: ids.sydney });
    ids.consumeEntry = visit.entryId;

    const consumed = await sys.events.waitFor('ledger.session_consumed', (e) => e.headers['ce-id'] === visit.entryId);
    expect(consumed.subject).toBe(`punchcard.ledger.session_consumed.${TENANT}`);
    expect(consumed.headers.traceparent).toContain(traceId);
    const recorded = fromBinary(LedgerEntryRecordedSchema, consumed.data);
    expect(recorded.entry).toMatchObject({ kind: EntryKind.CONSUME, branchId: ids.sydney, paidDelta: -1, balanceAfter: 3 });

    // Sold in Singapore, delivered in Sydney: Sydney earns 75.00, Singapore owes it to Sydney.
    const journal = await eventually('revenue to journal the consume', async () =>
      (await revenue.call('listJournalEntries', { entitlementId: ids.entitlement }, opts())).entries.find((j) => j.sourceId === visit.entryId),
    );
    ids.journalOfVisit = journal.journalEntryId;
    expect(journal.cause).toBe('ledger.session_consumed');
    expect(amount(lineOf(journal, Account.DEFERRED_REVENUE, ids.singapore)?.debit)).toBe(7500n);
    expect(amount(lineOf(journal, Account.PACKAGE_REVENUE, ids.sydney)?.credit)).toBe(7500n);
    expect(amount(lineOf(journal, Account.DUE_TO_BRANCH, ids.singapore)?.credit)).toBe(7500n);
    expect(amount(lineOf(journal, Account.DUE_FROM_BRANCH, ids.sydney)?.debit)).toBe(7500n);
    const posted = await sys.events.waitFor('revenue.journal_posted', (e) => e.subject === `punchcard.revenue.journal_posted.${TENANT}` && fromBinary(JournalPostedSchema, e.data).entry?.journalEntryId === journal.journalEntryId);
    expect(posted.headers.traceparent).toContain(traceId);

    await eventually('billing to hold the journal entry', async () => {
      const exported = await billing.call('exportJournalEntries', { format: 'json' }, opts());
      return Buffer.from(exported.content).toString('utf8').includes(journal.journalEntryId) ? true : undefined;
    });
    await eventually('the json connector to write the entry', async () =>
      existsSync(path.join(exportDir, 'exports', TENANT)) && readdirSync(path.join(exportDir, 'exports', TENANT)).some((f) => f.includes(journal.journalEntryId)) ? true : undefined,
    );

    // The trace: booking system (our root) → ledger consumer → ledger publish → revenue consumer →
    // revenue publish → billing consumer, each span carrying tenant, branch and entitlement.
    const billingSpan = await eventually('billing to export its span of the visit trace', async () =>
      sys.otlp.spans.find(
        (s) => s.traceId === traceId && s.service === 'billing-integration' && s.kind === SPAN_KIND.consumer && s.attributes['messaging.consumer.group.name'] === 'billing_journal',
      ),
    );
    // Each service exports in its own batches: wait until every span up to our root has arrived.
    const chain = await eventually('every service to export its span of the visit trace', async () => {
      const byId = new Map(sys.otlp.spans.filter((s) => s.traceId === traceId).map((s) => [s.spanId, s]));
      const found: ReceivedSpan[] = [];
      for (let s: ReceivedSpan | undefined = billingSpan; s; s = byId.get(s.parentSpanId)) found.unshift(s);
      return found[0]!.parentSpanId === rootSpanId ? found : undefined;
    });
    expect(chain.map((s) => [s.service, s.kind, s.name.replace(`.${TENANT}`, '').replace(`${sys.namespace}.`, '')])).toEqual([
      ['entitlement-ledger', SPAN_KIND.consumer, 'punchcard.visits.visit_completed process'],
      ['entitlement-ledger', SPAN_KIND.producer, 'punchcard.ledger.session_consumed publish'],
      ['revenue-recognition', SPAN_KIND.consumer, 'punchcard.ledger.session_consumed process'],
      ['revenue-recognition', SPAN_KIND.producer, 'punchcard.revenue.journal_posted publish'],
      ['billing-integration', SPAN_KIND.consumer, 'punchcard.revenue.journal_posted process'],
    ]);
    for (const s of [chain[0]!, chain[2]!, chain[4]!]) {
      expect(s.attributes['tenant.id'], s.name).toBe(TENANT);
      expect(s.attributes['entitlement.id'], s.name).toBe(ids.entitlement);
      expect([s.attributes['branch.id']].flat(), s.name).toContain(ids.sydney);
    }
    // The expiry scheduler follows the same ledger event in the same trace.
    const scheduler = await eventually('the scheduler to export its span of the visit trace', async () =>
      sys.otlp.spans.find((s) => s.traceId === traceId && s.service === 'expiry-scheduler' && s.kind === SPAN_KIND.consumer && s.parentSpanId === chain[1]!.spanId),
    );
    expect(scheduler.attributes).toMatchObject({ 'tenant.id': TENANT, 'entitlement.id': ids.entitlement, 'branch.id': ids.sydney });
  });

  it('a reversal undoes exactly that recognition, and billing receives the mirror entry', async () => {
    const { ledger, revenue, billing } = sys.clients;
    const reversed = await ledger.call('reverse', { idempotencyKey: 'r1', entryId: ids.consumeEntry, reason: 'visit entered on the wrong member' }, opts());
    expect(reversed.entitlement!.remaining).toBe(4);
    const mirror = await eventually('revenue to journal the reversal', async () =>
      (await revenue.call('listJournalEntries', { entitlementId: ids.entitlement }, opts())).entries.find((j) => j.sourceId === reversed.entry!.entryId),
    );
    expect(mirror.cause).toBe('ledger.consume_reversed');
    expect(amount(lineOf(mirror, Account.PACKAGE_REVENUE, ids.sydney)?.debit)).toBe(7500n);
    expect(amount(lineOf(mirror, Account.DEFERRED_REVENUE, ids.singapore)?.credit)).toBe(7500n);
    const contract = (await revenue.call('getContract', { entitlementId: ids.entitlement }, opts())).contract!;
    expect(amount(contract.recognised)).toBe(0n);
    expect(amount(contract.deferredBalance)).toBe(30000n);
    await eventually('billing to hold the reversal entry', async () => {
      const exported = await billing.call('exportJournalEntries', { format: 'json' }, opts());
      return Buffer.from(exported.content).toString('utf8').includes(mirror.journalEntryId) ? true : undefined;
    });
  });

  it('the expiry scheduler expires a package whose time is up; revenue books the unused value as breakage; billing receives it', async () => {
    const { ledger, expiry, revenue, billing } = sys.clients;
    // Bought 40 days ago, valid 30 days, used twice while valid.
    const bought = await whenKnown('the ledger to learn the definition', () =>
      ledger.call(
        'purchase',
        { idempotencyKey: 'x1', memberId: 'ben', definitionId: ids.physio, branchId: ids.singapore, paymentReference: 'cash', purchaseTime: timestampFromDate(new Date(Date.now() - 40 * DAY)) },
        opts(),
      ),
    );
    const entitlementId = bought.entitlement!.entitlementId;
    for (const [i, [branchId, daysAgo]] of ([[ids.singapore, 35], [ids.sydney, 33]] as const).entries()) {
      await ledger.call(
        'consume',
        { idempotencyKey: `x-use-${i}`, entitlementId, memberId: 'ben', branchId, occurredTime: timestampFromDate(new Date(Date.now() - daysAgo * DAY)) },
        opts(),
      );
    }
    // The scheduler learns the expiry from the ledger's events; its sweep runs only on RunDue here.
    const schedule = await eventually('the scheduler to plan the expiry', async () => {
      const s = await expiry.call('getSchedule', { entitlementId }, opts());
      return s.entitlementVersion === 3n && s.timers.some((t) => t.kind === TimerKind.EXPIRE && t.state === TimerState.PENDING) ? s : undefined;
    });
    expect(schedule.timeZone).toBe('Asia/Singapore');
    expect((await ledger.call('getEntitlement', { entitlementId }, opts())).entitlement!.status).toBe(EntitlementStatus.ACTIVE);

    const ran = await expiry.call('runDue', { idempotencyKey: 'run-1' }, opts());
    expect(ran.fired).toBeGreaterThanOrEqual(1);
    const expired = await eventually('the ledger to expire it', async () => {
      const e = (await ledger.call('getEntitlement', { entitlementId }, opts())).entitlement!;
      return e.status === EntitlementStatus.EXPIRED ? e : undefined;
    });
    expect(expired.remaining).toBe(0);
    const entries = (await ledger.call('listEntries', { entitlementId }, opts())).entries;
    const expire = entries.at(-1)!;
    expect(expire).toMatchObject({ kind: EntryKind.EXPIRE, sessionsDelta: -3 });
    expect(expire.actor?.subject).toBe('expiry-scheduler');
    await sys.events.waitFor('expiry.expired', (e) => e.subject === `punchcard.expiry.expired.${TENANT}` && e.headers['ce-subject'] === entitlementId);

    // The scheduler's call carries its trace: the ledger's ExpireBatch is a child of the scheduler's client span.
    const expireCall = await eventually('the ledger to export its ExpireBatch span', async () =>
      sys.otlp.spans.find((s) => s.service === 'entitlement-ledger' && s.kind === SPAN_KIND.server && s.name === 'punchcard.ledger.v1.LedgerService/ExpireBatch'),
    );
    const caller = await eventually('the scheduler to export its client span', async () => sys.otlp.spans.find((s) => s.spanId === expireCall.parentSpanId));
    expect(caller).toMatchObject({ service: 'expiry-scheduler', kind: SPAN_KIND.client, traceId: expireCall.traceId });

    const breakage = await eventually('revenue to book breakage', async () =>
      (await revenue.call('listJournalEntries', { entitlementId }, opts())).entries.find((j) => j.sourceId === expire.entryId),
    );
    expect(breakage.cause).toBe('ledger.entitlement_expired');
    expect(amount(lineOf(breakage, Account.BREAKAGE_REVENUE, ids.singapore)?.credit)).toBe(30000n);
    expect(amount(lineOf(breakage, Account.DEFERRED_REVENUE, ids.singapore)?.debit)).toBe(30000n);
    await eventually('billing to hold the breakage entry', async () => {
      const exported = await billing.call('exportJournalEntries', { format: 'json' }, opts());
      return Buffer.from(exported.content).toString('utf8').includes(breakage.journalEntryId) ? true : undefined;
    });
  });

  it('the deferred revenue rolls forward: opening + sales − recognised − breakage = closing', async () => {
    const period = { startDate: new Date(Date.now() - 60 * DAY).toISOString().slice(0, 10), endDate: new Date(Date.now() + 2 * DAY).toISOString().slice(0, 10) };
    const roll = await sys.clients.revenue.call('getLiabilityRollForward', { period }, opts());
    const t = roll.total!;
    expect({
      opening: amount(t.opening),
      sales: amount(t.sales),
      recognised: amount(t.recognised),
      breakage: amount(t.breakage),
      closing: amount(t.closing),
    }).toEqual({ opening: 0n, sales: 80000n, recognised: 20000n, breakage: 30000n, closing: 30000n });
    expect(amount(t.opening) + amount(t.sales) + amount(t.topUps) - amount(t.recognised) - amount(t.breakage) - amount(t.refunds) + amount(t.transfers)).toBe(amount(t.closing));
  });

  it('dead-lettered nothing along the way', () => {
    expect(sys.events.events.filter((e) => e.subject.startsWith('punchcard.deadletter.')).map((e) => `${e.subject}: ${e.headers['punchcard-deadletter-reason'] ?? JSON.stringify(e.headers)}`)).toEqual([]);
  });
});

/** Publishes visits.visit_completed as a booking system does (the ledger README's contract), with plain NATS. */
async function publishVisit(v: { visitId: string; memberId: string; branchId: string; traceparent: string }): Promise<void> {
  const nc = await connect({ servers: sys.natsUrl, name: 'e2e-booking-system' });
  try {
    const h = natsHeaders();
    h.set('Nats-Msg-Id', v.visitId);
    h.set('ce-specversion', '1.0');
    h.set('ce-id', v.visitId);
    h.set('ce-type', 'punchcard.visits.visit_completed');
    h.set('ce-source', '/booking/e2e');
    h.set('ce-tenantid', TENANT);
    h.set('ce-time', new Date().toISOString());
    h.set('content-type', 'application/protobuf');
    h.set('ce-dataschema', 'proto:punchcard.events.v1.VisitCompleted');
    h.set('traceparent', v.traceparent);
    const payload = toBinary(
      VisitCompletedSchema,
      create(VisitCompletedSchema, { tenantId: TENANT, visitId: v.visitId, memberId: v.memberId, serviceCode: 'CHIRO', branchId: v.branchId, occurredTime: timestampFromDate(new Date()) }),
    );
    await jetstream(nc).publish(`${sys.namespace}.punchcard.visits.visit_completed.${TENANT}`, payload, { headers: h, msgID: v.visitId });
  } finally {
    await nc.drain();
  }
}
