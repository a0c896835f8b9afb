import { randomUUID } from 'node:crypto';
import { fromBinary } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { jetstream } from '@nats-io/jetstream';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import { PaymentStatus, RefundPayoutStatus } from '@punchcard/contracts/punchcard/billing/v1/billing_pb';
import { DefinitionStatus, ExpiryAnchor, ExpiryMode, PlanTier, RefundMethod, TransferScope } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { RefundApprovedSchema } from '@punchcard/contracts/punchcard/events/v1/refund_events_pb';
import { EntitlementStatus, EntryKind, RefundState } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { Account, DeferredMovement, type JournalEntry } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeenEvent } from './support/events.js';
import { startSystem, type System } from './support/system.js';
import { waiting } from './support/waiting.js';

/**
 * Issue 7 across the services, each a separate process: the refund saga (ledger request and
 * approval → billing pays out → billing.refund_paid → the ledger's REFUND entry → revenue's refund
 * journal → billing's copy of it), with one effect per step even when every event of the saga is
 * delivered again; refunds of a transferred and of an upgraded package (the upgrade paid through a
 * billing checkout) paid back through the payments behind them; and the real ledger's transfer,
 * upgrade and top-up entries booked by revenue.
 */

const TENANT = 'e2e-packages';
const sgd = (major: number) => ({ currencyCode: 'SGD', amountMinor: BigInt(Math.round(major * 100)) });

let sys: System;
let token: string;
const opts = () => ({ token });
const ids = { branch: '', chiro: '', ten: '' };

const { eventually, whenKnown } = waiting(() => sys.recentLogs());

/** "Dr DEFERRED_REVENUE 225.00 [REFUND]": a journal entry's lines as an accountant reads them (one branch here). */
function show(entry: JournalEntry | undefined): string[] {
  return (entry?.lines ?? []).map((l) => {
    const debit = l.debit?.amountMinor ?? 0n;
    const value = debit + (l.credit?.amountMinor ?? 0n);
    const movement = l.movement === DeferredMovement.UNSPECIFIED ? '' : ` [${DeferredMovement[l.movement]}]`;
    return `${debit > 0n ? 'Dr' : 'Cr'} ${Account[l.account]} ${value / 100n}.${String(value % 100n).padStart(2, '0')}${movement}`;
  });
}

async function journalOf(entitlementId: string): Promise<JournalEntry[]> {
  return (await sys.clients.revenue.call('listJournalEntries', { entitlementId }, opts())).entries;
}

/** A package sold through a billing checkout (manual payment): the purchase saga creates the entitlement. */
async function sell(member: string): Promise<string> {
  const { billing } = sys.clients;
  const checkout = await billing.call('createCheckout', { idempotencyKey: `co-${member}`, memberId: member, definitionId: ids.chiro, branchId: ids.branch, provider: 'manual', amount: sgd(300) }, opts());
  await billing.call('confirmManualPayment', { idempotencyKey: `cf-${member}`, paymentId: checkout.payment!.paymentId, reference: `terminal-${member}` }, opts());
  const payment = await eventually(`${member}'s payment to be fulfilled`, async () => {
    const p = (await billing.call('getPayment', { paymentId: checkout.payment!.paymentId }, opts())).payment!;
    return p.status === PaymentStatus.FULFILLED ? p : undefined;
  });
  return payment.entitlementId;
}

/** Request → approve (ledger) → the manual payout billing waits for → staff confirm → settled at the ledger. */
async function refund(entitlementId: string, key: string): Promise<string> {
  const { ledger, billing } = sys.clients;
  const requested = await ledger.call('requestRefund', { idempotencyKey: `rq-${key}`, entitlementId, reason: 'moving away' }, opts());
  const refundId = requested.refund!.refundId;
  const approve = { idempotencyKey: `ap-${key}`, refundId, note: 'ok' };
  const approved = await ledger.call('approveRefund', approve, opts());
  expect(approved.refund!.state).toBe(RefundState.APPROVED);
  // The same request again answers the same; another approval is refused.
  expect((await ledger.call('approveRefund', approve, opts())).refund).toEqual(approved.refund);
  await expect(ledger.call('approveRefund', { ...approve, idempotencyKey: `ap2-${key}` }, opts())).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });

  await eventually('billing to wait for the manual payout', async () => {
    const payout = (await billing.call('getRefundPayout', { refundId }, opts()).catch(() => undefined))?.payout;
    return payout?.status === RefundPayoutStatus.AWAITING_MANUAL ? payout : undefined;
  });
  const confirm = { idempotencyKey: `pay-${key}`, refundId, reference: `bank-${key}` };
  await billing.call('confirmManualRefund', confirm, opts());
  await billing.call('confirmManualRefund', confirm, opts());
  await billing.call('confirmManualRefund', { ...confirm, idempotencyKey: `pay2-${key}` }, opts());
  await eventually('the ledger to settle the refund', async () => {
    const r = (await ledger.call('getRefund', { refundId }, opts())).refund!;
    return r.state === RefundState.COMPLETED ? r : undefined;
  });
  return refundId;
}

/** Event ids this test published itself, as copies of the services' events. */
const injected = new Set<string>();

/**
 * Publishes an event again: with its own event id (a relay that crashed before marking it, past the
 * stream's duplicate window), or under a new one (a producer that sent the same fact twice).
 */
async function deliverAgain(event: SeenEvent, o: { newId?: boolean } = {}): Promise<void> {
  const nc = await connect({ servers: sys.natsUrl, name: 'e2e-redelivery' });
  try {
    const h = natsHeaders();
    for (const [k, v] of Object.entries(event.headers)) if (k !== 'nats-msg-id') h.set(k, v);
    if (o.newId) {
      const id = randomUUID();
      injected.add(id);
      h.set('ce-id', id);
    }
    await jetstream(nc).publish(`${sys.namespace}.${event.subject}`, event.data, { headers: h, msgID: randomUUID() });
  } finally {
    await nc.drain();
  }
}

/** How many distinct events the services published on `subject` that match. */
const published = (subject: string, match: (e: SeenEvent) => boolean) =>
  new Set(sys.events.events.filter((e) => e.subject === subject && match(e) && !injected.has(e.headers['ce-id'] ?? '')).map((e) => e.headers['ce-id'])).size;

beforeAll(async () => {
  sys = await startSystem();
  token = await sys.token(TENANT);
  const { catalogue } = sys.clients;
  await catalogue.call('createTenant', { idempotencyKey: 't', name: 'E2E Packages', planTier: PlanTier.ENTERPRISE, defaultCurrency: 'SGD' }, opts());
  ids.branch = (await catalogue.call('createBranch', { idempotencyKey: 'b', code: 'SG', name: 'Orchard', timeZone: 'Asia/Singapore' }, opts())).branch!.branchId;
  const expiry = { anchor: ExpiryAnchor.PURCHASE, durationDays: 90, mode: ExpiryMode.HARD };
  const ten = await catalogue.call(
    'createDefinition',
    {
      idempotencyKey: 'd-ten',
      terms: {
        code: 'TEN',
        name: 'Ten-session pass',
        price: sgd(800),
        paidSessions: 10,
        serviceCodes: ['CHIRO'],
        expiry,
        branches: { allBranches: true },
        topUp: { enabled: true, pricePerSession: sgd(30) },
        refund: { method: RefundMethod.PRO_RATA, adminFee: sgd(20) },
      },
    },
    opts(),
  );
  ids.ten = ten.definition!.definitionId;
  const chiro = await catalogue.call(
    'createDefinition',
    {
      idempotencyKey: 'd-chiro',
      terms: {
        code: 'CHIRO-3P1',
        name: 'Chiro 3+1',
        price: sgd(300),
        paidSessions: 3,
        bonusSessions: 1,
        serviceCodes: ['CHIRO'],
        expiry,
        branches: { allBranches: true },
        transfer: { scope: TransferScope.ANYONE },
        topUp: { enabled: true, pricePerSession: sgd(30) },
        upgrade: { targetDefinitionIds: [ids.ten] },
        refund: { method: RefundMethod.PRO_RATA, adminFee: sgd(10) },
      },
    },
    opts(),
  );
  ids.chiro = chiro.definition!.definitionId;
  for (const [i, id] of [ids.ten, ids.chiro].entries()) {
    expect((await catalogue.call('publishDefinition', { idempotencyKey: `p${i}`, definitionId: id }, opts())).definition!.status).toBe(DefinitionStatus.ACTIVE);
  }
  await whenKnown('billing to learn the ENTERPRISE tenant', () =>
    sys.clients.billing.call('configureConnector', { idempotencyKey: 'json', config: { connector: 'json', enabled: true } }, opts()),
  );
  // The ledger has the definitions once a purchase of the last one is accepted (QuoteUpgrade would need an entitlement).
  await whenKnown('the ledger to learn the definitions', () =>
    sys.clients.ledger.call('purchase', { idempotencyKey: 'warm-up', memberId: 'warm-up', definitionId: ids.chiro, branchId: ids.branch, paymentReference: 'cash' }, opts()),
  );
}, 180_000);

afterAll(async () => {
  await sys?.stop();
}, 60_000);

describe('the refund saga across ledger, billing and revenue', () => {
  it('pays out once, closes the entitlement REFUNDED and books the refund journal once, even when every step is delivered again', async () => {
    const { ledger, revenue, billing } = sys.clients;
    const entitlementId = await sell('ava');
    await ledger.call('consume', { idempotencyKey: 'ava-1', entitlementId, memberId: 'ava', branchId: ids.branch }, opts());
    const quote = (await ledger.call('quoteRefund', { entitlementId }, opts())).quote!;
    expect([quote.unusedValue?.amountMinor, quote.adminFee?.amountMinor, quote.amount?.amountMinor]).toEqual([22500n, 1000n, 21500n]);

    const refundId = await refund(entitlementId, 'ava');
    const approved = await sys.events.waitFor('ledger.refund_approved', (e) => e.subject === `punchcard.ledger.refund_approved.${TENANT}` && e.headers['ce-subject'] === refundId);
    expect(fromBinary(RefundApprovedSchema, approved.data)).toMatchObject({ entitlementId, memberId: 'ava', amount: { currencyCode: 'SGD', amountMinor: 21500n } });
    const paid = await sys.events.waitFor('billing.refund_paid', (e) => e.subject === `punchcard.billing.refund_paid.${TENANT}` && e.headers['ce-subject'] === refundId);
    const refunded = await sys.events.waitFor('ledger.refunded', (e) => e.subject === `punchcard.ledger.refunded.${TENANT}` && e.headers['ce-subject'] === entitlementId);
    const e = (await ledger.call('getEntitlement', { entitlementId }, opts())).entitlement!;
    expect([e.status, e.remaining, e.pendingRefundId]).toEqual([EntitlementStatus.REFUNDED, 0, '']);

    const journal = await eventually('revenue to book the refund', async () => (await journalOf(entitlementId)).find((j) => j.cause === 'ledger.refunded'));
    expect(show(journal)).toEqual(['Dr DEFERRED_REVENUE 225.00 [REFUND]', 'Cr REFUNDS_PAYABLE 215.00', 'Cr REFUND_GAIN_OR_LOSS 10.00']);
    await eventually('billing to hold the refund journal', async () => {
      const exported = await billing.call('exportJournalEntries', { format: 'json' }, opts());
      return Buffer.from(exported.content).toString('utf8').includes(journal.journalEntryId) ? true : undefined;
    });

    // Every step twice more: under its own event id (the inboxes) and under a new one (one payout per
    // refund id at billing, one settlement per refund at the ledger, version order at revenue).
    for (const event of [approved, paid, refunded]) {
      await deliverAgain(event);
      await deliverAgain(event, { newId: true });
    }
    // A second saga after them: each consumer handles its stream in order, so once this one is through,
    // the repeated events have been handled too.
    const second = await sell('bea');
    await refund(second, 'bea');
    await eventually('revenue to book the second refund', async () => (await journalOf(second)).find((j) => j.cause === 'ledger.refunded'));

    expect((await billing.call('getRefundPayout', { refundId }, opts())).payout).toMatchObject({ status: RefundPayoutStatus.PAID, amount: { amountMinor: 21500n } });
    expect(published(`punchcard.billing.refund_paid.${TENANT}`, (x) => x.headers['ce-subject'] === refundId)).toBe(1);
    expect(published(`punchcard.billing.refund_failed.${TENANT}`, (x) => x.headers['ce-subject'] === refundId)).toBe(0);
    expect(published(`punchcard.ledger.refunded.${TENANT}`, (x) => x.headers['ce-subject'] === entitlementId)).toBe(1);
    expect(published(`punchcard.ledger.refund_payout_failed.${TENANT}`, (x) => x.headers['ce-subject'] === refundId)).toBe(0);
    const entries = (await ledger.call('listEntries', { entitlementId }, opts())).entries;
    expect(entries.filter((x) => x.kind === EntryKind.REFUND)).toHaveLength(1);
    expect((await ledger.call('getRefund', { refundId }, opts())).refund).toMatchObject({ state: RefundState.COMPLETED, providerReference: 'bank-ava' });
    expect((await journalOf(entitlementId)).filter((j) => j.cause === 'ledger.refunded')).toHaveLength(1);
    const contract = (await revenue.call('getContract', { entitlementId }, opts())).contract!;
    expect([contract.recognised?.amountMinor, contract.breakageRecognised?.amountMinor, contract.deferredBalance?.amountMinor]).toEqual([7500n, 0n, 0n]);
    const exported = Buffer.from((await billing.call('exportJournalEntries', { format: 'json' }, opts())).content).toString('utf8');
    expect(exported.split(journal.journalEntryId).length - 1).toBe(1);
  });
});

describe('refunds of packages that arrived by transfer or upgrade', () => {
  /** The payout's parts as [payment, provider, amount, status]. */
  const partsOf = async (refundId: string) =>
    (await sys.clients.billing.call('getRefundPayout', { refundId }, opts())).payout!.parts.map((p) => [p.paymentId, p.provider, p.amount?.amountMinor, RefundPayoutStatus[p.status]]);

  it("an upgraded package (the upgrade paid through billing) and a transferred one, refunded through the payments behind them: the upgrade's first, then the purchase's; one payout, one journal each, once", async () => {
    const { ledger, billing } = sys.clients;
    const ivy = await sell('ivy');
    const bought = (await ledger.call('getEntitlement', { entitlementId: ivy }, opts())).entitlement!;
    await ledger.call('consume', { idempotencyKey: 'ivy-1', entitlementId: ivy, memberId: 'ivy', branchId: ids.branch }, opts());

    // Billing asks the ledger what the upgrade costs: 800.00 less the 3 unused sessions' 225.00.
    const checkout = { idempotencyKey: 'up-ivy', provider: 'manual', upgrade: { entitlementId: ivy, targetDefinitionId: ids.ten } };
    const { payment: pending } = await billing.call('createCheckout', checkout, opts());
    expect(pending).toMatchObject({ amount: sgd(575), memberId: 'ivy', definitionId: ids.ten, branchId: ids.branch, status: PaymentStatus.PENDING });
    await billing.call('confirmManualPayment', { idempotencyKey: 'up-ivy-cf', paymentId: pending!.paymentId, reference: 'terminal-up-ivy' }, opts());
    const upgradePayment = await eventually('the upgrade to be made', async () => {
      const p = (await billing.call('getPayment', { paymentId: pending!.paymentId }, opts())).payment!;
      return p.status === PaymentStatus.FULFILLED ? p : undefined;
    });
    const ten = upgradePayment.entitlementId;
    expect((await ledger.call('getEntitlement', { entitlementId: ten }, opts())).entitlement).toMatchObject({
      status: EntitlementStatus.ACTIVE,
      originEntitlementId: ivy,
      paymentReference: pending!.paymentId,
      remaining: 10,
    });
    expect((await ledger.call('getEntitlement', { entitlementId: ivy }, opts())).entitlement!.status).toBe(EntitlementStatus.UPGRADED);
    const upgradeIn = (await ledger.call('listEntries', { entitlementId: ten }, opts())).entries;
    expect(upgradeIn.map((x) => [EntryKind[x.kind], x.amount?.amountMinor])).toEqual([['UPGRADE_IN', 57500n]]);
    // A repeated checkout replays the payment; a new one for the same upgrade is refused.
    expect((await billing.call('createCheckout', checkout, opts())).payment!.paymentId).toBe(pending!.paymentId);
    await expect(billing.call('createCheckout', { ...checkout, idempotencyKey: 'up-ivy-2' }, opts())).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });

    await ledger.call('consume', { idempotencyKey: 'ten-1', entitlementId: ten, memberId: 'ivy', branchId: ids.branch }, opts());
    const quote = (await ledger.call('quoteRefund', { entitlementId: ten }, opts())).quote!;
    // 225.00 credit + 575.00 paid over 10 sessions: 80.00 each; 9 unused, less the 20.00 fee.
    expect([quote.unusedValue?.amountMinor, quote.adminFee?.amountMinor, quote.amount?.amountMinor]).toEqual([72000n, 2000n, 70000n]);
    const refundId = await refund(ten, 'ivy');

    const payout = (await billing.call('getRefundPayout', { refundId }, opts())).payout!;
    expect(payout).toMatchObject({ status: RefundPayoutStatus.PAID, amount: sgd(700), paymentId: pending!.paymentId, providerReference: 'bank-ivy' });
    expect(await partsOf(refundId)).toEqual([
      [pending!.paymentId, 'manual', 57500n, 'PAID'],
      [bought.paymentReference, 'manual', 12500n, 'PAID'],
    ]);
    const journal = await eventually('revenue to book the refund', async () => (await journalOf(ten)).find((j) => j.cause === 'ledger.refunded'));
    expect(show(journal)).toEqual(['Dr DEFERRED_REVENUE 720.00 [REFUND]', 'Cr REFUNDS_PAYABLE 700.00', 'Cr REFUND_GAIN_OR_LOSS 20.00']);

    // The upgrade and the approval once more, under new ids: no second upgrade, payout or settlement.
    const upgradedIn = await sys.events.waitFor('ledger.upgraded_in', (e) => e.subject === `punchcard.ledger.upgraded_in.${TENANT}` && e.headers['ce-subject'] === ten);
    const approved = await sys.events.waitFor('ledger.refund_approved', (e) => e.subject === `punchcard.ledger.refund_approved.${TENANT}` && e.headers['ce-subject'] === refundId);
    for (const event of [upgradedIn, approved]) await deliverAgain(event, { newId: true });

    // A transferred package after them on the same consumers: once its refund is through, the repeats are too.
    const gia = await sell('gia');
    await ledger.call('consume', { idempotencyKey: 'gia-1', entitlementId: gia, memberId: 'gia', branchId: ids.branch }, opts());
    const giaPayment = (await ledger.call('getEntitlement', { entitlementId: gia }, opts())).entitlement!.paymentReference;
    const moved = await ledger.call('transfer', { idempotencyKey: 'gia-to-hal', entitlementId: gia, toMemberId: 'hal' }, opts());
    const hal = moved.target!.entitlementId;
    expect(moved.target).toMatchObject({ memberId: 'hal', originEntitlementId: gia, remaining: 3 });
    const halRefund = await refund(hal, 'hal');
    expect((await billing.call('getRefundPayout', { refundId: halRefund }, opts())).payout).toMatchObject({ status: RefundPayoutStatus.PAID, amount: sgd(215), paymentId: giaPayment, entitlementId: hal });
    expect(await partsOf(halRefund)).toEqual([[giaPayment, 'manual', 21500n, 'PAID']]);
    const halJournal = await eventually('revenue to book the transferred refund', async () => (await journalOf(hal)).find((j) => j.cause === 'ledger.refunded'));
    expect(show(halJournal)).toEqual(['Dr DEFERRED_REVENUE 225.00 [REFUND]', 'Cr REFUNDS_PAYABLE 215.00', 'Cr REFUND_GAIN_OR_LOSS 10.00']);

    for (const [id, entitlementId] of [
      [refundId, ten],
      [halRefund, hal],
    ] as const) {
      expect(published(`punchcard.billing.refund_paid.${TENANT}`, (x) => x.headers['ce-subject'] === id)).toBe(1);
      expect(published(`punchcard.billing.refund_failed.${TENANT}`, (x) => x.headers['ce-subject'] === id)).toBe(0);
      expect(published(`punchcard.ledger.refunded.${TENANT}`, (x) => x.headers['ce-subject'] === entitlementId)).toBe(1);
      expect((await ledger.call('listEntries', { entitlementId }, opts())).entries.filter((x) => x.kind === EntryKind.REFUND)).toHaveLength(1);
      expect((await ledger.call('getEntitlement', { entitlementId }, opts())).entitlement!.status).toBe(EntitlementStatus.REFUNDED);
      expect((await journalOf(entitlementId)).filter((j) => j.cause === 'ledger.refunded')).toHaveLength(1);
    }
    expect(published(`punchcard.ledger.upgraded_in.${TENANT}`, (x) => x.headers['ce-subject'] === ten)).toBe(1);
    expect(await partsOf(refundId)).toEqual([
      [pending!.paymentId, 'manual', 57500n, 'PAID'],
      [bought.paymentReference, 'manual', 12500n, 'PAID'],
    ]);
    const exported = Buffer.from((await billing.call('exportJournalEntries', { format: 'json' }, opts())).content).toString('utf8');
    for (const j of [journal, halJournal]) expect(exported.split(j.journalEntryId).length - 1).toBe(1);
  });
});

describe("the real ledger's transfer, upgrade and top-up entries, booked by revenue", () => {
  it('a transfer moves the liability at the sessions’ values; an upgrade credits them against the new price; a top-up is its own line', async () => {
    const { ledger, revenue } = sys.clients;
    const bought = await ledger.call('purchase', { idempotencyKey: 'cleo', memberId: 'cleo', definitionId: ids.chiro, branchId: ids.branch, paymentReference: 'cash' }, opts());
    const cleo = bought.entitlement!.entitlementId;
    await ledger.call('consume', { idempotencyKey: 'cleo-1', entitlementId: cleo, memberId: 'cleo', branchId: ids.branch }, opts());
    const moved = await ledger.call('transfer', { idempotencyKey: 'cleo-to-dan', entitlementId: cleo, toMemberId: 'dan' }, opts());
    const dan = moved.target!.entitlementId;
    const upgraded = await ledger.call('upgrade', { idempotencyKey: 'dan-up', entitlementId: dan, targetDefinitionId: ids.ten, paymentReference: 'card-575' }, opts());
    expect([upgraded.quote!.credit?.amountMinor, upgraded.quote!.amountDue?.amountMinor]).toEqual([22500n, 57500n]);
    const ten = upgraded.target!.entitlementId;
    const topped = await ledger.call('topUp', { idempotencyKey: 'ten-top', entitlementId: ten, sessions: 2, paymentReference: 'card-60' }, opts());
    expect(topped.entry!.amount?.amountMinor).toBe(6000n);

    const booked = await eventually('revenue to book the top-up', async () => {
      const entries = await journalOf(ten);
      return entries.some((j) => j.cause === 'ledger.topped_up') ? entries : undefined;
    });
    expect(show((await journalOf(cleo)).find((j) => j.cause === 'ledger.transferred_out'))).toEqual(['Dr DEFERRED_REVENUE 225.00 [TRANSFER]', 'Cr TRANSFER_CLEARING 225.00']);
    expect((await journalOf(dan)).map((j) => [j.cause, show(j)])).toEqual([
      ['ledger.transferred_in', ['Dr TRANSFER_CLEARING 225.00', 'Cr DEFERRED_REVENUE 225.00 [TRANSFER]']],
      ['ledger.upgraded_out', ['Dr DEFERRED_REVENUE 225.00 [TRANSFER]', 'Cr TRANSFER_CLEARING 225.00']],
    ]);
    expect(booked.map((j) => [j.cause, show(j)])).toEqual([
      ['ledger.upgraded_in', ['Dr TRANSFER_CLEARING 225.00', 'Cr DEFERRED_REVENUE 225.00 [TRANSFER]', 'Dr CASH 575.00', 'Cr DEFERRED_REVENUE 575.00 [SALE]']],
      ['ledger.topped_up', ['Dr CASH 60.00', 'Cr DEFERRED_REVENUE 60.00 [TOP_UP]']],
    ]);
    const contract = (await revenue.call('getContract', { entitlementId: ten }, opts())).contract!;
    expect(contract.sessions.map((s) => s.value?.amountMinor)).toEqual([...Array<bigint>(10).fill(8000n), 3000n, 3000n]);
    expect(contract.deferredBalance?.amountMinor).toBe(86000n);
    for (const id of [cleo, dan]) expect((await revenue.call('getContract', { entitlementId: id }, opts())).contract!.deferredBalance?.amountMinor).toBe(0n);
  });

  it('dead-lettered nothing along the way', () => {
    expect(sys.events.events.filter((e) => e.subject.startsWith('punchcard.deadletter.')).map((e) => `${e.subject}: ${e.headers['punchcard-deadletter-reason']}`)).toEqual([]);
  });
});
