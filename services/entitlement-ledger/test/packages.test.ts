import { randomUUID } from 'node:crypto';
import { Code, type Client } from '@connectrpc/connect';
import { ExpiryAnchor, ExpiryMode, Feature, RefundMethod, TransferScope } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { LedgerEntryRecordedSchema, RefundChangedSchema, SharingChangedSchema } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { RefundApprovedSchema } from '@punchcard/contracts/punchcard/events/v1/refund_events_pb';
import { EntitlementStatus, EntryKind, HouseholdKind, LedgerService, RefundState } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NON_ENTRY_EVENTS } from '../src/events/ledger-events.js';
import { waitFor } from './support/bus.js';
import { decode, publishPayout, readEvents } from './support/events.js';
import { ALL_FEATURES, definitionTerms } from './support/ledger-db.js';
import { failure, startLedger, type LedgerHarness, type Who } from './support/service.js';

const HOUR = 3_600_000;
let h: LedgerHarness;
const A = randomUUID();
const EXPERT = randomUUID();
const ADVANCED = randomUUID();
const staff: Who = { tenantId: A, roles: ['staff'], subject: 'desk-1' };
const manager: Who = { tenantId: A, roles: ['manager'], subject: 'manager-1' };
let a: Client<typeof LedgerService>;
let m: Client<typeof LedgerService>;

const ADVANCED_FEATURES = [
  Feature.MANUAL_DEDUCTION,
  Feature.HARD_EXPIRY,
  Feature.PACKAGE_HISTORY,
  Feature.MULTI_PACKAGE,
  Feature.AUTO_DEDUCTION,
  Feature.SOFT_EXPIRY,
  Feature.BONUS_SESSIONS,
];
const EXPERT_FEATURES = [...ADVANCED_FEATURES, Feature.TRANSFER, Feature.SHARING, Feature.REVENUE_DEFERRAL, Feature.TOP_UP, Feature.UPGRADE, Feature.PROFIT_REPORTING];

const sgd = (amountMinor: bigint) => ({ currencyCode: 'SGD', amountMinor });

/** 10 sessions for 1000.00: household transfers (undo 24 h, at most 2), pool cap 3, top-up 80.00 (+30 days), upgrade to gold, PRO_RATA refunds minus 25.00 within 30 days. */
const family = definitionTerms({
  code: 'FAMILY10',
  price: sgd(100000n),
  paidSessions: 10,
  standalonePricePerSession: sgd(12000n),
  expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 90, mode: ExpiryMode.HARD },
  transfer: { scope: TransferScope.HOUSEHOLD, maxTransfers: 2, undoWindowHours: 24 },
  sharing: { householdPool: true, perMemberSessionCap: 3 },
  topUp: { enabled: true, pricePerSession: sgd(8000n), extendExpiryDays: 30 },
  upgrade: { targetDefinitionIds: ['gold'] },
  refund: { method: RefundMethod.PRO_RATA, adminFee: sgd(2500n), refundWindowDays: 30 },
});
const gold = definitionTerms({ code: 'GOLD20', price: sgd(180000n), paidSessions: 20, bonusSessions: 2 });
/** Buy 3 Free 1 for 300.00, standalone 120.00, refunds reprice used sessions minus 10.00, transferable to anyone. */
const promo = definitionTerms({
  code: 'B3F1',
  price: sgd(30000n),
  paidSessions: 3,
  bonusSessions: 1,
  standalonePricePerSession: sgd(12000n),
  transfer: { scope: TransferScope.ANYONE },
  refund: { method: RefundMethod.USED_AT_STANDALONE_PRICE, adminFee: sgd(1000n) },
});
const final = definitionTerms({ code: 'FINAL', refund: { method: RefundMethod.NON_REFUNDABLE }, transfer: { scope: TransferScope.NONE } });

beforeAll(async () => {
  h = await startLedger('ledgerpkg');
  const ids: string[] = [];
  for (const [tenantId, features] of [
    [A, ALL_FEATURES],
    [EXPERT, EXPERT_FEATURES],
    [ADVANCED, ADVANCED_FEATURES],
  ] as const) {
    ids.push(await h.feed.tenant(tenantId, [...features]), await h.feed.branch(tenantId, 'b1'));
    for (const [id, terms] of Object.entries({ family, gold, promo, final })) ids.push(await h.feed.definition(tenantId, id, 1, terms));
  }
  await h.settled(...ids);
  a = await h.client(staff);
  m = await h.client(manager);
});
afterAll(async () => h?.close());

const key = () => randomUUID();

async function buy(client: Client<typeof LedgerService>, memberId: string, definitionId = 'family') {
  return (await client.purchase({ idempotencyKey: key(), memberId, definitionId, branchId: 'b1', paymentReference: `pay-${memberId}` })).entitlement!;
}

async function use(client: Client<typeof LedgerService>, entitlementId: string, n: number, memberId = '') {
  for (let i = 0; i < n; i++) await client.consume({ idempotencyKey: key(), entitlementId, memberId, branchId: 'b1' });
}

async function household(owner: string, ...members: string[]) {
  return (await a.createHousehold({ idempotencyKey: key(), name: `${owner}'s family`, kind: HouseholdKind.FAMILY, ownerMemberId: owner, memberIds: members })).household!;
}

describe('plan tiers', () => {
  it('transfer, sharing, top-up and upgrade need EXPERT; refunds need ENTERPRISE', async () => {
    const adv = await h.client({ tenantId: ADVANCED, roles: ['manager'] });
    const e = await buy(adv, 'adv-1');
    const expectGate = async (p: Promise<unknown>, feature: string, tier: string) => {
      const err = await failure(p);
      expect(err.code).toBe(Code.FailedPrecondition);
      expect(err.rawMessage).toContain(`needs FEATURE_${feature} (${tier} plan or higher)`);
    };
    await expectGate(adv.transfer({ idempotencyKey: key(), entitlementId: e.entitlementId, toMemberId: 'x' }), 'TRANSFER', 'EXPERT');
    await expectGate(adv.topUp({ idempotencyKey: key(), entitlementId: e.entitlementId, sessions: 1 }), 'TOP_UP', 'EXPERT');
    await expectGate(adv.quoteUpgrade({ entitlementId: e.entitlementId, targetDefinitionId: 'gold' }), 'UPGRADE', 'EXPERT');
    await expectGate(adv.shareEntitlement({ idempotencyKey: key(), entitlementId: e.entitlementId, householdId: randomUUID() }), 'SHARING', 'EXPERT');
    const households = await failure(adv.createHousehold({ idempotencyKey: key(), name: 'x', ownerMemberId: 'adv-1' }));
    expect(households.rawMessage).toMatch(/households need FEATURE_SHARING or FEATURE_TRANSFER \(EXPERT plan/);

    const exp = await h.client({ tenantId: EXPERT, roles: ['manager'] });
    const x = await buy(exp, 'exp-1');
    await expectGate(exp.quoteRefund({ entitlementId: x.entitlementId }), 'REFUNDS', 'ENTERPRISE');
    await expectGate(exp.requestRefund({ idempotencyKey: key(), entitlementId: x.entitlementId, reason: 'moving away' }), 'REFUNDS', 'ENTERPRISE');
    // EXPERT has top-up: 2 x 80.00.
    const t = await exp.topUp({ idempotencyKey: key(), entitlementId: x.entitlementId, sessions: 2 });
    expect(t.entry!.amount).toEqual(expect.objectContaining(sgd(16000n)));
  });
});

describe('transfer', () => {
  it('household only: moves the remaining sessions with their value, keeps terms and expiry; full audit on both sides; undo within the window', async () => {
    const mum = `mum-${randomUUID()}`;
    const kid = `kid-${randomUUID()}`;
    const e = await buy(a, mum);
    await use(a, e.entitlementId, 3);
    const outsider = await failure(a.transfer({ idempotencyKey: key(), entitlementId: e.entitlementId, toMemberId: 'stranger' }));
    expect(outsider.code).toBe(Code.FailedPrecondition);
    expect(outsider.rawMessage).toMatch(/within a household only; stranger shares no household/);

    await household(mum, kid);
    const request = { idempotencyKey: key(), entitlementId: e.entitlementId, toMemberId: kid, reason: 'for my son' };
    const r = await a.transfer(request);
    expect(await a.transfer(request)).toEqual(r);
    expect(r.source).toMatchObject({ status: EntitlementStatus.TRANSFERRED, remaining: 0, version: 5n });
    expect(r.target).toMatchObject({
      memberId: kid,
      status: EntitlementStatus.ACTIVE,
      remaining: 7,
      paidSessions: 7,
      version: 1n,
      transferCount: 1,
      originEntitlementId: e.entitlementId,
      expiryTime: e.expiryTime,
      purchaseTime: e.purchaseTime,
      price: sgd(70000n),
    });
    expect(r.target!.terms!.terms!.code).toBe('FAMILY10');
    expect(r.transferOut).toMatchObject({
      kind: EntryKind.TRANSFER_OUT,
      sessionsDelta: -7,
      amount: sgd(70000n),
      counterpartEntitlementId: r.target!.entitlementId,
      counterpartEntryId: r.transferIn!.entryId,
      reason: 'for my son',
      actor: { subject: 'desk-1', roles: ['staff'] },
    });
    expect(r.transferOut!.transfer).toMatchObject({ fromEntitlementId: e.entitlementId, toEntitlementId: r.target!.entitlementId, fromMemberId: mum, toMemberId: kid, paidSessions: 7, bonusSessions: 0, value: sgd(70000n) });
    expect(r.transferOut!.transfer!.sessions).toEqual(Array.from({ length: 7 }, () => expect.objectContaining({ bonus: false, valueMinor: 10000n })));
    expect(r.transferIn).toMatchObject({ kind: EntryKind.TRANSFER_IN, sessionsDelta: 7, balanceAfter: 7, entitlementVersion: 1n, memberId: kid, counterpartEntitlementId: e.entitlementId });

    // The old holder's package is closed; the kid can use the new one.
    expect((await failure(a.consume({ idempotencyKey: key(), entitlementId: e.entitlementId, branchId: 'b1' }))).rawMessage).toMatch(/was transferred/);

    // Undo within 24 h while untouched: the sessions go back to mum as a new package.
    h.clock.now = new Date(h.clock.now.getTime() + 23 * HOUR);
    const undo = await a.undoTransfer({ idempotencyKey: key(), transferId: r.transferOut!.entryId, reason: 'wrong kid' });
    expect(undo.source).toMatchObject({ entitlementId: r.target!.entitlementId, status: EntitlementStatus.TRANSFERRED });
    expect(undo.target).toMatchObject({ memberId: mum, remaining: 7, transferCount: 0, expiryTime: e.expiryTime, price: sgd(70000n) });
    expect(undo.transferOut!.transfer!.undoesTransferId).toBe(r.transferOut!.entryId);
    const again = await failure(a.undoTransfer({ idempotencyKey: key(), transferId: r.transferOut!.entryId, reason: 'again' }));
    expect(again.rawMessage).toMatch(/changed since transfer/);

    // A second transfer, then the undo window passes.
    const second = await a.transfer({ idempotencyKey: key(), entitlementId: undo.target!.entitlementId, toMemberId: kid });
    h.clock.now = new Date(h.clock.now.getTime() + 25 * HOUR);
    const late = await failure(a.undoTransfer({ idempotencyKey: key(), transferId: second.transferOut!.entryId, reason: 'late' }));
    expect(late.rawMessage).toMatch(/24-hour undo window ended/);
    // Max 2 transfers in the chain.
    const third = await a.transfer({ idempotencyKey: key(), entitlementId: second.target!.entitlementId, toMemberId: mum });
    expect(third.target!.transferCount).toBe(2);
    await household(kid, `cousin-${kid}`);
    const capped = await failure(a.transfer({ idempotencyKey: key(), entitlementId: third.target!.entitlementId, toMemberId: kid }));
    expect(capped.rawMessage).toMatch(/transferred 2 times; .* at most 2/);

    const events = await readEvents(h.bus, h.namespace, `punchcard.ledger.*.${A}`);
    const mine = events.filter((x) => x.aggregateId === e.entitlementId || x.aggregateId === r.target!.entitlementId);
    expect(mine.map((x) => `${x.type}@${x.entityVersion}`)).toEqual(
      expect.arrayContaining(['punchcard.ledger.transferred_out@5', 'punchcard.ledger.transferred_in@1', 'punchcard.ledger.transferred_out@2']),
    );
    const inEvent = decode(LedgerEntryRecordedSchema, mine.find((x) => x.type === 'punchcard.ledger.transferred_in')!);
    expect(inEvent.entry!.transfer!.value).toEqual(expect.objectContaining(sgd(70000n)));
  });

  it('NONE scope and an idempotency key reused with another request are refused precisely', async () => {
    const e = await buy(a, `final-${randomUUID()}`, 'final');
    const none = await failure(a.transfer({ idempotencyKey: key(), entitlementId: e.entitlementId, toMemberId: 'x' }));
    expect(none.rawMessage).toMatch(/definition final does not allow transfers/);
    const p = await buy(a, `promo-${randomUUID()}`, 'promo');
    const k = key();
    await a.transfer({ idempotencyKey: k, entitlementId: p.entitlementId, toMemberId: 'anyone' });
    const reused = await failure(a.transfer({ idempotencyKey: k, entitlementId: p.entitlementId, toMemberId: 'someone-else' }));
    expect(reused.code).toBe(Code.InvalidArgument);
    expect(reused.rawMessage).toMatch(/^idempotency_key/);
  });
});

describe('household sharing', () => {
  it('any member consumes within the per-member cap; history shows who used each session; pick mode finds the pool', async () => {
    const owner = `own-${randomUUID()}`;
    const kid = `kid-${randomUUID()}`;
    const hh = await household(owner, kid);
    expect(hh.members.map((x) => x.memberId)).toEqual([owner, kid]);
    const e = await buy(a, owner);
    const refused = await failure(a.consume({ idempotencyKey: key(), entitlementId: e.entitlementId, memberId: kid, branchId: 'b1' }));
    expect(refused.rawMessage).toMatch(/belongs to another member than/);
    const shared = await a.shareEntitlement({ idempotencyKey: key(), entitlementId: e.entitlementId, householdId: hh.householdId });
    expect(shared.entitlement).toMatchObject({ householdId: hh.householdId, version: 1n });

    await use(a, e.entitlementId, 2, kid);
    // Pick mode: the kid has no package of their own; the pool is found.
    const picked = await a.consume({ idempotencyKey: key(), memberId: kid, serviceCode: 'PHYSIO', branchId: 'b1' });
    expect(picked.entry).toMatchObject({ entitlementId: e.entitlementId, memberId: kid });
    const cap = await failure(a.consume({ idempotencyKey: key(), entitlementId: e.entitlementId, memberId: kid, branchId: 'b1' }));
    expect(cap.code).toBe(Code.ResourceExhausted);
    expect(cap.rawMessage).toMatch(/used 3 of the 3 sessions one member may take/);
    // A reversal gives the kid one back; the holder is not capped.
    await a.reverse({ idempotencyKey: key(), entryId: picked.entry!.entryId, reason: 'cancelled' });
    await use(a, e.entitlementId, 1, kid);
    await use(a, e.entitlementId, 4, owner);
    const outsider = await failure(a.consume({ idempotencyKey: key(), entitlementId: e.entitlementId, memberId: 'neighbour', branchId: 'b1' }));
    expect(outsider.rawMessage).toMatch(/neighbour is not in household/);

    const history = await a.listEntries({ entitlementId: e.entitlementId });
    expect(history.entries.filter((x) => x.kind === EntryKind.CONSUME).map((x) => x.memberId)).toEqual([kid, kid, kid, kid, owner, owner, owner, owner]);

    // Leaving the household ends it for them; unsharing ends it for everyone.
    await a.removeHouseholdMember({ idempotencyKey: key(), householdId: hh.householdId, memberId: kid });
    expect((await failure(a.consume({ idempotencyKey: key(), entitlementId: e.entitlementId, memberId: kid, branchId: 'b1' }))).rawMessage).toMatch(/not in household/);
    const unshared = await a.unshareEntitlement({ idempotencyKey: key(), entitlementId: e.entitlementId });
    expect(unshared.entitlement!.householdId).toBe('');
    const events = await readEvents(h.bus, h.namespace, `punchcard.ledger.entitlement_shared.${A}`);
    expect(events.map((x) => decode(SharingChangedSchema, x)).some((x) => x.entitlement?.entitlementId === e.entitlementId && x.householdId === hh.householdId)).toBe(true);
  });
});

describe('top-up and upgrade', () => {
  it('top-up: 3 x 80.00 = 240.00 as its own line, expiry +30 days', async () => {
    const e = await buy(a, `tu-${randomUUID()}`);
    const r = await a.topUp({ idempotencyKey: key(), entitlementId: e.entitlementId, sessions: 3, paymentReference: 'pay-tu' });
    expect(r.entitlement).toMatchObject({ remaining: 13, paidSessions: 13, version: 2n });
    expect(Number(r.entitlement!.expiryTime!.seconds - e.expiryTime!.seconds)).toBe(30 * 86_400);
    expect(r.entry).toMatchObject({ kind: EntryKind.TOP_UP, sessionsDelta: 3, amount: sgd(24000n) });
    expect(r.entry!.topUp).toMatchObject({ sessions: 3, pricePerSession: sgd(8000n), amountPaid: sgd(24000n), extendExpiryDays: 30, paymentReference: 'pay-tu' });
    const refusal = await failure(a.topUp({ idempotencyKey: key(), entitlementId: (await buy(a, 'x', 'promo')).entitlementId, sessions: 1 }));
    expect(refusal.rawMessage).toMatch(/does not allow top-ups/);
  });

  it('QuoteUpgrade shows the numbers without committing; Upgrade credits 600.00 against 1800.00, the member pays 1200.00', async () => {
    const e = await buy(a, `up-${randomUUID()}`);
    await use(a, e.entitlementId, 4);
    const { quote } = await a.quoteUpgrade({ entitlementId: e.entitlementId, targetDefinitionId: 'gold' });
    expect(quote).toMatchObject({ credit: sgd(60000n), newPrice: sgd(180000n), amountDue: sgd(120000n), newPaidSessions: 20, newBonusSessions: 2, toDefinitionId: 'gold', toDefinitionVersion: 1 });
    expect(quote!.remainingSessions).toHaveLength(6);
    expect((await a.getEntitlement({ entitlementId: e.entitlementId })).entitlement).toMatchObject({ version: 5n, status: EntitlementStatus.ACTIVE });

    // A payment taken for another amount does not buy it.
    const stale = await failure(a.upgrade({ idempotencyKey: key(), entitlementId: e.entitlementId, targetDefinitionId: 'gold', paymentReference: 'pay-old', expectedAmountDue: sgd(110000n) }));
    expect([stale.code, stale.rawMessage]).toEqual([Code.FailedPrecondition, expect.stringMatching(/^expected_amount_due: .* costs 120000 SGD now, not 110000 SGD/)]);

    const r = await a.upgrade({ idempotencyKey: key(), entitlementId: e.entitlementId, targetDefinitionId: 'gold', paymentReference: 'pay-diff', expectedAmountDue: sgd(120000n) });
    expect(r.quote).toEqual(quote);
    expect(r.source).toMatchObject({ status: EntitlementStatus.UPGRADED, remaining: 0, version: 6n });
    expect(r.target).toMatchObject({ status: EntitlementStatus.ACTIVE, remaining: 22, price: sgd(180000n), paymentReference: 'pay-diff', originEntitlementId: e.entitlementId, version: 1n });
    expect(r.target!.terms).toMatchObject({ definitionId: 'gold', definitionVersion: 1 });
    expect(r.upgradeOut).toMatchObject({ kind: EntryKind.UPGRADE_OUT, sessionsDelta: -6, amount: sgd(60000n), counterpartEntitlementId: r.target!.entitlementId });
    expect(r.upgradeIn).toMatchObject({ kind: EntryKind.UPGRADE_IN, sessionsDelta: 22, amount: sgd(120000n), counterpartEntitlementId: e.entitlementId, counterpartEntryId: r.upgradeOut!.entryId });
    expect(r.upgradeIn!.upgrade).toEqual(quote);
    const bad = await failure(a.quoteUpgrade({ entitlementId: r.target!.entitlementId, targetDefinitionId: 'family' }));
    expect(bad.rawMessage).toMatch(/cannot be upgraded to family/);
  });
});

describe('refund workflow', () => {
  async function approvedRefund(memberId: string) {
    const e = await buy(a, memberId);
    await use(a, e.entitlementId, 3);
    const { quote } = await a.quoteRefund({ entitlementId: e.entitlementId });
    const req = await a.requestRefund({ idempotencyKey: key(), entitlementId: e.entitlementId, reason: 'moving abroad' });
    const approved = await m.approveRefund({ idempotencyKey: key(), refundId: req.refund!.refundId, note: 'ok' });
    return { e, quote: quote!, refund: approved.refund! };
  }

  it('request -> approve (manager) -> billing.refund_paid -> REFUNDED with one REFUND entry, however often billing reports it', async () => {
    const member = `rf-${randomUUID()}`;
    const e = await buy(a, member);
    await use(a, e.entitlementId, 3);
    const { quote } = await a.quoteRefund({ entitlementId: e.entitlementId });
    // PRO_RATA: 7 unused x 100.00 - 25.00 admin fee.
    expect(quote).toMatchObject({ method: RefundMethod.PRO_RATA, refundable: true, unusedSessions: 7, usedSessions: 3, unusedValue: sgd(70000n), gross: sgd(70000n), adminFee: sgd(2500n), amount: sgd(67500n) });

    const req = await a.requestRefund({ idempotencyKey: key(), entitlementId: e.entitlementId, reason: 'moving abroad' });
    expect(req.refund).toMatchObject({ state: RefundState.REQUESTED, quote, memberId: member, requestedBy: { subject: 'desk-1' } });
    expect(req.entitlement!.pendingRefundId).toBe(req.refund!.refundId);
    const held = await failure(a.consume({ idempotencyKey: key(), entitlementId: e.entitlementId, branchId: 'b1' }));
    expect(held.rawMessage).toMatch(/on hold: refund .* is pending/);
    expect((await failure(a.requestRefund({ idempotencyKey: key(), entitlementId: e.entitlementId, reason: 'twice' }))).rawMessage).toMatch(/already pending/);

    const staffApproves = await failure(a.approveRefund({ idempotencyKey: key(), refundId: req.refund!.refundId }));
    expect(staffApproves.code).toBe(Code.PermissionDenied);
    const approval = { idempotencyKey: key(), refundId: req.refund!.refundId, note: 'approved per policy' };
    const approved = await m.approveRefund(approval);
    expect(await m.approveRefund(approval)).toEqual(approved);
    expect(approved.refund).toMatchObject({ state: RefundState.APPROVED, decidedBy: { subject: 'manager-1' }, decisionNote: 'approved per policy' });
    const events = await waitFor('ledger.refund_approved', async () => {
      const list = await readEvents(h.bus, h.namespace, `punchcard.ledger.refund_approved.${A}`);
      return list.find((x) => decode(RefundApprovedSchema, x).refundId === req.refund!.refundId);
    });
    const approvals = await readEvents(h.bus, h.namespace, `punchcard.ledger.refund_approved.${A}`);
    expect(approvals.filter((x) => x.aggregateId === req.refund!.refundId)).toHaveLength(1);
    expect(decode(RefundApprovedSchema, events)).toMatchObject({ tenantId: A, refundId: req.refund!.refundId, entitlementId: e.entitlementId, memberId: member, amount: sgd(67500n) });

    const payout = { tenantId: A, refundId: req.refund!.refundId, entitlementId: e.entitlementId, currency: 'SGD', amountMinor: 67500n, providerReference: 're_123' };
    const first = await publishPayout(h.bus, h.namespace, 'refund_paid', payout);
    await h.settled(first);
    // Billing reports it again under another event id: nothing more happens.
    const second = await publishPayout(h.bus, h.namespace, 'refund_paid', payout);
    await h.settled(second);

    const after = (await a.getEntitlement({ entitlementId: e.entitlementId })).entitlement!;
    expect(after).toMatchObject({ status: EntitlementStatus.REFUNDED, remaining: 0, pendingRefundId: '', version: 5n });
    const history = (await a.listEntries({ entitlementId: e.entitlementId })).entries;
    const refunds = history.filter((x) => x.kind === EntryKind.REFUND);
    expect(refunds).toHaveLength(1);
    expect(refunds[0]).toMatchObject({ sessionsDelta: -7, amount: sgd(67500n), refundId: req.refund!.refundId, balanceAfter: 0, refund: quote });
    expect(history.reduce((s, x) => s + x.sessionsDelta, 0)).toBe(0);
    const done = (await a.getRefund({ refundId: req.refund!.refundId })).refund!;
    expect(done).toMatchObject({ state: RefundState.COMPLETED, providerReference: 're_123', refundEntryId: refunds[0]!.entryId, version: 3n });
    const ledgerEvents = await readEvents(h.bus, h.namespace, `punchcard.ledger.refunded.${A}`);
    expect(ledgerEvents.filter((x) => x.aggregateId === e.entitlementId)).toHaveLength(1);
  });

  it('billing.refund_failed reopens: the refund records the failure, the entitlement is usable again', async () => {
    const { e, refund } = await approvedRefund(`rf-fail-${randomUUID()}`);
    const id = await publishPayout(h.bus, h.namespace, 'refund_failed', { tenantId: A, refundId: refund.refundId, entitlementId: e.entitlementId, currency: 'SGD', amountMinor: 67500n, failureReason: 'card expired' });
    await h.settled(id);
    const r = (await a.getRefund({ refundId: refund.refundId })).refund!;
    expect(r).toMatchObject({ state: RefundState.PAYOUT_FAILED, failureReason: 'card expired' });
    const ent = (await a.getEntitlement({ entitlementId: e.entitlementId })).entitlement!;
    expect(ent).toMatchObject({ status: EntitlementStatus.ACTIVE, remaining: 7, pendingRefundId: '' });
    await use(a, e.entitlementId, 1);
    const failed = await readEvents(h.bus, h.namespace, `punchcard.ledger.refund_payout_failed.${A}`);
    expect(failed.map((x) => decode(RefundChangedSchema, x).refund!.refundId)).toContain(refund.refundId);
    // A new request may follow.
    const again = await a.requestRefund({ idempotencyKey: key(), entitlementId: e.entitlementId, reason: 'retry' });
    expect(again.refund!.quote!.amount).toEqual(expect.objectContaining(sgd(57500n)));
  });

  it('reject releases the hold; non-refundable, and repricing at the standalone price, quote exactly', async () => {
    const e = await buy(a, `rj-${randomUUID()}`);
    const req = await a.requestRefund({ idempotencyKey: key(), entitlementId: e.entitlementId, reason: 'changed mind' });
    const rejected = await m.rejectRefund({ idempotencyKey: key(), refundId: req.refund!.refundId, reason: 'outside policy' });
    expect(rejected.refund).toMatchObject({ state: RefundState.REJECTED, decisionNote: 'outside policy' });
    expect(rejected.entitlement!.pendingRefundId).toBe('');
    expect((await failure(m.approveRefund({ idempotencyKey: key(), refundId: req.refund!.refundId }))).rawMessage).toMatch(/is rejected; only a requested refund can be approved/);
    await use(a, e.entitlementId, 1);

    const f = await buy(a, `nr-${randomUUID()}`, 'final');
    expect((await a.quoteRefund({ entitlementId: f.entitlementId })).quote).toMatchObject({ refundable: false, amount: sgd(0n), reason: expect.stringMatching(/non-refundable/) });
    const nr = await failure(a.requestRefund({ idempotencyKey: key(), entitlementId: f.entitlementId, reason: 'please' }));
    expect(nr.code).toBe(Code.FailedPrecondition);
    expect(nr.rawMessage).toMatch(/cannot be refunded: definition final is non-refundable/);

    const p = await buy(a, `pr-${randomUUID()}`, 'promo');
    await use(a, p.entitlementId, 2);
    // 300.00 - 2 x 120.00 - 10.00 = 50.00.
    expect((await a.quoteRefund({ entitlementId: p.entitlementId })).quote).toMatchObject({ usedAtStandalonePrice: sgd(24000n), gross: sgd(6000n), amount: sgd(5000n), unusedValue: sgd(15000n) });

    // The refund window (30 days) closes.
    const w = await buy(a, `win-${randomUUID()}`);
    h.clock.now = new Date(h.clock.now.getTime() + 31 * 24 * HOUR);
    expect((await a.quoteRefund({ entitlementId: w.entitlementId })).quote!.reason).toMatch(/refund window .* ended/);
    const list = await a.listRefunds({ entitlementId: e.entitlementId });
    expect(list.refunds.map((x) => x.state)).toEqual([RefundState.REJECTED]);

    // Tenants are sealed: another tenant sees none of it.
    const other = await h.client({ tenantId: EXPERT, roles: ['manager'] });
    expect((await failure(other.getRefund({ refundId: req.refund!.refundId }))).code).toBe(Code.NotFound);
    expect((await failure(other.transfer({ idempotencyKey: key(), entitlementId: e.entitlementId, toMemberId: 'x' }))).code).toBe(Code.NotFound);
    expect((await other.listRefunds({})).refunds).toEqual([]);
  });
});

describe('event contract', () => {
  it('entry events carry LedgerEntryRecorded with the entitlement version; the others carry their own payloads', async () => {
    const events = await readEvents(h.bus, h.namespace, `punchcard.ledger.*.${A}`);
    const names = new Set<string>();
    for (const x of events) {
      const name = x.type.replace('punchcard.ledger.', '');
      names.add(name);
      const own = NON_ENTRY_EVENTS[name as keyof typeof NON_ENTRY_EVENTS];
      expect(x.dataSchema).toBe(`proto:${own ?? LedgerEntryRecordedSchema.typeName}`);
      if (!own) expect(Number(x.entityVersion)).toBe(Number(decode(LedgerEntryRecordedSchema, x).entitlement!.version));
    }
    for (const name of Object.keys(NON_ENTRY_EVENTS)) expect(names).toContain(name);
  });
});
