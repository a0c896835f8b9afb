import { fromBinary } from '@bufbuild/protobuf';
import { DefinitionTermsSchema } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import type { Kysely } from 'kysely';
import { invalid, notFound, precondition } from '../domain/errors.js';
import { requireFeature, type Policies } from '../domain/policies.js';
import { checkShare } from '../domain/sharing.js';
import { isValidTimeZone } from '../domain/time.js';
import { topUp } from '../domain/topup.js';
import { checkTransfer, checkUndo, moveSessions, type TransferResult } from '../domain/transfer.js';
import type { Feature, TenantFacts, UpgradeQuote } from '../domain/types.js';
import { assertAmountDue, quoteUpgrade, upgrade, type UpgradeTarget } from '../domain/upgrade.js';
import { openSlots, replay, type Slot } from '../domain/valuation.js';
import { enqueueSharingChanged } from '../events/ledger-events.js';
import { rulesFromDefinition } from '../proto/terms.js';
import { definitionVersions, getBranch, getTenant } from '../store/catalogue.js';
import { allEntries, getEntitlement, getEntry, saveSharingAndHold, type EntitlementRecord } from '../store/entitlements.js';
import { getHousehold, shareAHousehold } from '../store/households.js';
import type { LedgerDb } from '../store/schema.js';
import { locked, newId, policiesOf, record, recordNew, requireText, requireUuid, tenantFacts, type Caller, type OperationContext, type Recorded } from './ledger.js';

type Tx = Kysely<LedgerDb>;

const FEATURE_ACTIONS: Partial<Record<Feature, string>> = {
  TRANSFER: 'transferring an entitlement',
  SHARING: 'sharing an entitlement with a household',
  TOP_UP: 'topping up an entitlement',
  UPGRADE: 'upgrading an entitlement',
  REFUNDS: 'refunds',
};

/** The tenant's plan must include `feature`; an unknown tenant has none. */
export async function requireTenantFeature(tx: Tx, tenantId: string, feature: Feature): Promise<TenantFacts> {
  const tenant = await tenantFacts(tx, tenantId);
  if (!tenant) throw precondition(`tenant ${tenantId} is not known to the ledger yet (no catalogue.tenant_changed received)`);
  requireFeature(tenant, feature, FEATURE_ACTIONS[feature] ?? feature.toLowerCase());
  return tenant;
}

function optionalText(field: string, value: string, max: number): string {
  if (value.length > max) throw invalid(field, `must be at most ${max} characters`);
  return value;
}

/**
 * The entitlement's sessions and their values, replayed from its entries by revenue's allocation
 * rule; checked against the balances the ledger holds.
 */
export async function slotsOf(tx: Tx, e: EntitlementRecord, p: Policies = policiesOf(e)): Promise<Slot[]> {
  const entries = await allEntries(tx, e.tenantId, e.entitlementId);
  const slots = replay({ priceMinor: e.priceMinor, standalone: p.standalonePrice, sessionOrder: e.terms.sessionOrder }, entries);
  const open = openSlots(slots);
  const paid = open.filter((s) => !s.bonus).length;
  if (e.status !== 'EXPIRED' && (paid !== e.paidRemaining || open.length - paid !== e.bonusRemaining)) {
    throw new Error(`entitlement ${e.entitlementId}: ${open.length} unused sessions in its entries, ${e.paidRemaining}+${e.bonusRemaining} on the row`);
  }
  return slots;
}

export interface Moved {
  source: Recorded;
  target: Recorded;
}

async function saveMove(tx: Tx, ctx: OperationContext, caller: Caller, requestId: string, e: EntitlementRecord, r: TransferResult, ids: { outEntryId: string; inEntryId: string }, now: Date): Promise<Moved> {
  const source = await record(tx, ctx, caller, requestId, e, r.source, now, ids.outEntryId);
  const target = await recordNew(
    tx,
    ctx,
    caller,
    requestId,
    // The receiver's price is the value it took over; its terms are the giver's.
    { ...r.target.next, termsBytes: e.termsBytes, priceCurrency: e.priceCurrency, priceMinor: r.detail.value, paymentReference: '' },
    r.target,
    now,
    ids.inEntryId,
  );
  return { source, target };
}

export async function transferEntitlement(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  req: { entitlementId: string; toMemberId: string; reason: string },
  requestId: string,
): Promise<Moved> {
  const now = ctx.clock();
  const to = requireText('to_member_id', req.toMemberId);
  const reason = optionalText('reason', req.reason, 500) || 'transfer';
  await requireTenantFeature(tx, caller.tenantId, 'TRANSFER');
  const e = await locked(tx, caller, req.entitlementId);
  const p = policiesOf(e);
  const sameHousehold = p.transfer.scope === 'HOUSEHOLD' && (await shareAHousehold(tx, caller.tenantId, e.memberId, to));
  checkTransfer(e, p, { toMemberId: to, sameHousehold });
  const ids = { targetEntitlementId: newId(ctx), outEntryId: newId(ctx), inEntryId: newId(ctx) };
  const r = moveSessions(e, await slotsOf(tx, e, p), { toMemberId: to, ...ids, reason, now, transferCount: e.transferCount + 1 });
  return saveMove(tx, ctx, caller, requestId, e, r, ids, now);
}

/** Sends a transfer's sessions back to the original holder, within the undo window, if untouched. */
export async function undoTransfer(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  req: { transferId: string; reason: string },
  requestId: string,
): Promise<Moved> {
  const now = ctx.clock();
  const transferId = requireUuid('transfer_id', req.transferId);
  const reason = optionalText('reason', req.reason, 500) || `undo transfer ${transferId}`;
  await requireTenantFeature(tx, caller.tenantId, 'TRANSFER');
  const out = await getEntry(tx, caller.tenantId, transferId);
  if (!out) throw notFound('transfer', transferId);
  if (out.kind !== 'TRANSFER_OUT' || !out.counterpartEntitlementId) {
    throw invalid('transfer_id', `entry ${transferId} is a ${out.kind} entry, not a transfer`);
  }
  const received = await locked(tx, caller, out.counterpartEntitlementId);
  const p = policiesOf(received);
  const undone = out.detail?.kind === 'transfer' ? out.detail.undoesTransferId : undefined;
  checkUndo(received, p, { transferId, kind: out.kind, recordTime: out.recordTime, ...(undone ? { undoesTransferId: undone } : {}) }, now);
  const ids = { targetEntitlementId: newId(ctx), outEntryId: newId(ctx), inEntryId: newId(ctx) };
  const r = moveSessions(received, await slotsOf(tx, received, p), {
    toMemberId: out.memberId,
    ...ids,
    reason,
    now,
    transferCount: Math.max(0, received.transferCount - 1),
    undoesTransferId: transferId,
  });
  return saveMove(tx, ctx, caller, requestId, received, r, ids, now);
}

async function saleBranch(tx: Tx, tenantId: string, branchId: string): Promise<{ branchId: string; timeZone: string }> {
  const branch = await getBranch(tx, tenantId, branchId);
  if (!branch) throw precondition(`branch ${branchId} is not known to the ledger yet (no catalogue.branch_changed received)`);
  if (!branch.active) throw precondition(`branch ${branchId} is inactive`);
  if (!isValidTimeZone(branch.timeZone)) throw precondition(`branch ${branchId} has an unknown time zone ${branch.timeZone}`);
  return { branchId, timeZone: branch.timeZone };
}

export async function topUpEntitlement(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  req: { entitlementId: string; sessions: number; paymentReference: string; branchId: string; reason: string },
  requestId: string,
): Promise<Recorded> {
  const now = ctx.clock();
  const paymentReference = optionalText('payment_reference', req.paymentReference, 200);
  const reason = optionalText('reason', req.reason, 500) || 'top-up';
  await requireTenantFeature(tx, caller.tenantId, 'TOP_UP');
  const e = await locked(tx, caller, req.entitlementId);
  const branchId = req.branchId === '' ? e.purchaseBranchId : (await saleBranch(tx, caller.tenantId, req.branchId)).branchId;
  const t = topUp(e, policiesOf(e), { sessions: req.sessions, branchId, paymentReference, reason, now });
  return record(tx, ctx, caller, requestId, e, t, now);
}

/** The current, unretired version of the definition an entitlement would be upgraded to. */
async function upgradeTarget(tx: Tx, tenantId: string, definitionId: string): Promise<UpgradeTarget & { termsBytes: Uint8Array }> {
  const versions = await definitionVersions(tx, tenantId, definitionId);
  const latest = versions[0];
  if (!latest) throw precondition(`definition ${definitionId} is not known to the ledger yet (no catalogue.definition_published received)`);
  if (latest.retired) throw precondition(`definition ${definitionId} is retired; it can no longer be sold`);
  const terms = fromBinary(DefinitionTermsSchema, latest.terms);
  const tenant = await getTenant(tx, tenantId);
  return {
    definitionId,
    version: latest.version,
    terms: rulesFromDefinition(terms),
    paidSessions: terms.paidSessions,
    bonusSessions: terms.bonusSessions,
    currency: terms.price?.currencyCode || tenant?.defaultCurrency || '',
    price: terms.price?.amountMinor ?? 0n,
    termsBytes: latest.terms,
  };
}

/** The upgrade's numbers, committing nothing (read without locks). */
export async function quoteUpgradeFor(db: Tx, ctx: OperationContext, caller: Caller, req: { entitlementId: string; targetDefinitionId: string }): Promise<UpgradeQuote> {
  const id = requireUuid('entitlement_id', req.entitlementId);
  const targetId = requireText('target_definition_id', req.targetDefinitionId);
  await requireTenantFeature(db, caller.tenantId, 'UPGRADE');
  const e = await getEntitlement(db, caller.tenantId, id);
  if (!e) throw notFound('entitlement', id);
  const p = policiesOf(e);
  return quoteUpgrade(e, p, await slotsOf(db, e, p), await upgradeTarget(db, caller.tenantId, targetId), ctx.clock());
}

export async function upgradeEntitlement(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  req: {
    entitlementId: string;
    targetDefinitionId: string;
    paymentReference: string;
    branchId: string;
    reason: string;
    expectedAmountDue?: { currency: string; amountMinor: bigint } | undefined;
  },
  requestId: string,
): Promise<Moved & { quote: UpgradeQuote }> {
  const now = ctx.clock();
  const targetId = requireText('target_definition_id', req.targetDefinitionId);
  const paymentReference = optionalText('payment_reference', req.paymentReference, 200);
  const reason = optionalText('reason', req.reason, 500) || `upgrade to ${targetId}`;
  await requireTenantFeature(tx, caller.tenantId, 'UPGRADE');
  const e = await locked(tx, caller, req.entitlementId);
  const p = policiesOf(e);
  const target = await upgradeTarget(tx, caller.tenantId, targetId);
  const quote = quoteUpgrade(e, p, await slotsOf(tx, e, p), target, now);
  if (req.expectedAmountDue) assertAmountDue(quote, req.expectedAmountDue);
  const branch = await saleBranch(tx, caller.tenantId, req.branchId || e.purchaseBranchId);
  const ids = { newEntitlementId: newId(ctx), outEntryId: newId(ctx), inEntryId: newId(ctx) };
  const r = upgrade(e, quote, target, { ...ids, branchId: branch.branchId, timeZone: branch.timeZone, reason, now });
  const source = await record(tx, ctx, caller, requestId, e, r.source, now, ids.outEntryId);
  const created = await recordNew(
    tx,
    ctx,
    caller,
    requestId,
    { ...r.target.next, termsBytes: target.termsBytes, priceCurrency: quote.currency, priceMinor: quote.newPrice, paymentReference },
    r.target,
    now,
    ids.inEntryId,
  );
  return { source, target: created, quote };
}

export async function shareEntitlement(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  req: { entitlementId: string; householdId: string },
): Promise<EntitlementRecord> {
  const now = ctx.clock();
  const householdId = requireUuid('household_id', req.householdId);
  await requireTenantFeature(tx, caller.tenantId, 'SHARING');
  const e = await locked(tx, caller, req.entitlementId);
  const household = await getHousehold(tx, caller.tenantId, householdId);
  if (!household) throw notFound('household', householdId);
  checkShare(e, policiesOf(e), householdId, household.members.some((m) => m.memberId === e.memberId));
  const next: EntitlementRecord = { ...e, householdId };
  await saveSharingAndHold(tx, e, next, now);
  await enqueueSharingChanged(tx, next, caller, now);
  return next;
}

/** Not gated by plan: a tenant that lost sharing can still take its pools apart. */
export async function unshareEntitlement(tx: Tx, ctx: OperationContext, caller: Caller, req: { entitlementId: string }): Promise<EntitlementRecord> {
  const now = ctx.clock();
  const e = await locked(tx, caller, req.entitlementId);
  if (e.householdId === null) throw precondition(`entitlement ${e.entitlementId} is not shared`);
  const next: EntitlementRecord = { ...e, householdId: null };
  await saveSharingAndHold(tx, e, next, now);
  await enqueueSharingChanged(tx, next, caller, now);
  return next;
}
