import { fromBinary } from '@bufbuild/protobuf';
import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { trace } from '@opentelemetry/api';
import { RetryLater, type ConsumedEvent } from '@punchcard/bus';
import { DefinitionTermsSchema, SessionOrder, type DefinitionTerms } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import type { LedgerEntryRecorded } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { EntryKind, type Entitlement, type LedgerEntry } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { isKnownCurrency } from '@punchcard/money';
import type { Kysely } from 'kysely';
import { apply, purchase, type Contract, type ContractEvent, type DeliveryCosts, type Posting } from '../domain/contract.js';
import { RevenueRuleError } from '../domain/errors.js';
import { orderDecision } from '../domain/ordering.js';
import { statusFromProto } from '../mapping.js';
import { getDefinitionTerms, type TenantRow } from '../store/catalogue.js';
import { loadContract, lockProgress, saveContract, setProgress } from '../store/contracts.js';
import { insertJournalEntry } from '../store/journal.js';
import type { RevenueDb } from '../store/schema.js';
import { postingContext, requireCurrency, requireTenant, type HandlerDeps } from './context.js';
import { enqueueEntryEvents } from './publish.js';

export const LEDGER_DURABLE = 'revenue_ledger';

/**
 * The ledger's entry events (`LedgerEntryRecorded`, each the entitlement's next version; a missing one
 * would hold the later ones back). The refund, household and sharing events on the LEDGER stream carry
 * other payloads and move no money: the REFUND entry (`ledger.refunded`) is what revenue books.
 */
export const LEDGER_SUBJECTS = [
  'punchcard.ledger.entitlement_purchased.*',
  'punchcard.ledger.session_consumed.*',
  'punchcard.ledger.consume_reversed.*',
  'punchcard.ledger.entitlement_extended.*',
  'punchcard.ledger.entitlement_frozen.*',
  'punchcard.ledger.entitlement_unfrozen.*',
  'punchcard.ledger.grace_started.*',
  'punchcard.ledger.entitlement_expired.*',
  'punchcard.ledger.transferred_out.*',
  'punchcard.ledger.transferred_in.*',
  'punchcard.ledger.topped_up.*',
  'punchcard.ledger.upgraded_out.*',
  'punchcard.ledger.upgraded_in.*',
  'punchcard.ledger.refunded.*',
];

/** Status changes that move no money by themselves, and the journal cause their true-up would carry. */
const STATUS_CAUSES: Partial<Record<EntryKind, string>> = {
  [EntryKind.EXTEND]: 'ledger.entitlement_extended',
  [EntryKind.FREEZE]: 'ledger.entitlement_frozen',
  [EntryKind.UNFREEZE]: 'ledger.entitlement_unfrozen',
  [EntryKind.GRACE]: 'ledger.grace_started',
  [EntryKind.EXPIRE]: 'ledger.entitlement_expired',
};

/**
 * Applies one ledger event in the inbox transaction, in per-entitlement version order: an event at or
 * below the applied version changes nothing, one beyond the next waits (RetryLater). The contract, the
 * journal entry, its outbox events and the new version commit together.
 */
export async function onLedgerEvent(tx: Kysely<RevenueDb>, event: ConsumedEvent<LedgerEntryRecorded>, deps: HandlerDeps): Promise<void> {
  const { entitlement: ent, entry } = event.data;
  if (!ent || !entry) throw new RevenueRuleError('entitlement', `${event.type} ${event.id} carries no entitlement or entry`);
  if (ent.tenantId !== event.tenantId || entry.tenantId !== event.tenantId) {
    throw new RevenueRuleError('tenant_id', `${event.type} ${event.id} is about tenant ${ent.tenantId || entry.tenantId} but arrived on tenant ${event.tenantId}'s subject`);
  }
  if (!ent.entitlementId || entry.entitlementId !== ent.entitlementId) {
    throw new RevenueRuleError('entry.entitlement_id', `entry ${entry.entryId} does not belong to entitlement ${ent.entitlementId || '(none)'}`);
  }
  trace.getActiveSpan()?.setAttributes({
    'tenant.id': event.tenantId,
    'entitlement.id': ent.entitlementId,
    'branch.id': entry.branchId || ent.purchaseBranchId,
  });
  const version = Number(ent.version || entry.entitlementVersion || BigInt(event.aggregateVersion ?? 0));
  if (!Number.isSafeInteger(version) || version < 1) throw new RevenueRuleError('entitlement.version', `must be a positive integer, got ${ent.version}`);

  const applied = await lockProgress(tx, event.tenantId, ent.entitlementId);
  switch (orderDecision(applied, version)) {
    case 'duplicate':
      return;
    case 'gap':
      throw new RetryLater(`entitlement ${ent.entitlementId} is at version ${applied}; version ${version} must wait for ${applied + 1}`, deps.retryDelayMs);
    case 'apply':
      break;
  }

  const tenant = await requireTenant(tx, event.tenantId, deps);
  const existing = await loadContract(tx, event.tenantId, ent.entitlementId);
  const posting = await post(tx, tenant, ent, entry, existing, deps);
  const now = deps.now();
  await saveContract(tx, posting.contract, now);
  if (posting.draft) {
    const posted = await insertJournalEntry(tx, posting.draft, now);
    await enqueueEntryEvents(tx, posted, now);
  }
  await setProgress(tx, event.tenantId, ent.entitlementId, version);
}

async function post(tx: Kysely<RevenueDb>, tenant: TenantRow, ent: Entitlement, entry: LedgerEntry, existing: Contract | undefined, deps: HandlerDeps): Promise<Posting> {
  const { earningRule } = tenant;
  const at = instant(entry.occurredTime) ?? instant(entry.recordTime);
  if (!at) throw new RevenueRuleError('entry.occurred_time', `entry ${entry.entryId} has no occurred or record time`);
  const purchaseZone = ent.terms?.timeZone ? { [ent.purchaseBranchId]: ent.terms.timeZone } : {};

  if (entry.kind === EntryKind.PURCHASE) {
    if (existing) throw new RevenueRuleError('entry.kind', `entitlement ${ent.entitlementId} already has a contract; a second purchase entry cannot open another`);
    const price = ent.price;
    if (!price || !isKnownCurrency(price.currencyCode)) throw new RevenueRuleError('entitlement.price', `entitlement ${ent.entitlementId} has no price in a known currency`);
    requireCurrency(tenant, price.currencyCode, 'entitlement.price.currency_code');
    const terms = await definitionTerms(tx, ent, deps);
    const currency = price.currencyCode;
    const ctx = await postingContext(tx, ent.tenantId, earningRule, [ent.purchaseBranchId], purchaseZone, deps);
    return purchase(
      {
        tenantId: ent.tenantId,
        entitlementId: ent.entitlementId,
        definitionId: ent.terms?.definitionId ?? '',
        definitionVersion: ent.terms?.definitionVersion ?? 0,
        memberId: ent.memberId,
        currency,
        liabilityBranchId: ent.purchaseBranchId,
        breakageBps: Math.max(0, Math.min(10_000, terms.expectedBreakageBps)),
        sessionOrder: terms.sessionOrder === SessionOrder.BONUS_FIRST ? 'BONUS_FIRST' : 'PAID_FIRST',
        standalonePrice: amountIn(currency, terms.standalonePricePerSession),
        costs: deliveryCosts(currency, terms),
        entryId: entry.entryId,
        at,
        status: statusFromProto(ent.status, 'ACTIVE'),
        price: price.amountMinor,
        paidSessions: ent.paidSessions,
        bonusSessions: ent.bonusSessions,
      },
      ctx,
    );
  }

  if (!existing) {
    throw new RevenueRuleError('entry.kind', `entitlement ${ent.entitlementId} has no contract: its first event must be its purchase, not ${EntryKind[entry.kind]}`);
  }
  const base = { entryId: entry.entryId, at, branchId: entry.branchId, status: statusFromProto(ent.status, existing.status) };
  const event = await contractEvent(tx, ent, entry, existing, base, deps);
  const reversed = event.kind === 'REVERSAL' ? existing.sessions.find((s) => s.consumedBy?.entryId === event.reversesEntryId)?.consumedBy?.deliveringBranchId : undefined;
  const branches = [existing.liabilityBranchId, entry.branchId, ...(reversed ? [reversed] : [])];
  const ctx = await postingContext(tx, ent.tenantId, earningRule, branches, purchaseZone, deps);
  return apply(existing, event, ctx);
}

type Base = Pick<ContractEvent, 'entryId' | 'at' | 'branchId' | 'status'>;

async function contractEvent(tx: Kysely<RevenueDb>, ent: Entitlement, entry: LedgerEntry, c: Contract, base: Base, deps: HandlerDeps): Promise<ContractEvent> {
  switch (entry.kind) {
    case EntryKind.CONSUME:
      return { ...base, kind: 'CONSUME', bonus: entry.bonusDelta < 0 ? true : entry.paidDelta < 0 ? false : null };
    case EntryKind.REVERSAL:
      if (!entry.reversesEntryId) throw new RevenueRuleError('entry.reverses_entry_id', `reversal ${entry.entryId} names no entry`);
      return { ...base, kind: 'REVERSAL', reversesEntryId: entry.reversesEntryId };
    case EntryKind.TOP_UP: {
      const terms = await definitionTerms(tx, ent, deps);
      const perSession = terms.topUp?.pricePerSession;
      if (!perSession || perSession.currencyCode !== c.currency) {
        throw new RevenueRuleError('terms.top_up.price_per_session', `definition ${c.definitionId} has no top-up price in ${c.currency}`);
      }
      const paid = Math.max(0, entry.paidDelta);
      return { ...base, kind: 'TOP_UP', paid, bonus: Math.max(0, entry.bonusDelta), amount: perSession.amountMinor * BigInt(paid) };
    }
    case EntryKind.REFUND:
    case EntryKind.TRANSFER_OUT:
    case EntryKind.TRANSFER_IN:
    case EntryKind.UPGRADE_OUT:
    case EntryKind.UPGRADE_IN:
      // The domain has these postings; the ledger event does not yet carry the refund amount or the
      // counterpart entitlement they need, and guessing would put a wrong number in the books.
      throw new RevenueRuleError('entry.kind', `${EntryKind[entry.kind]} entries cannot be posted until ledger events carry their amount and counterpart`);
    default: {
      const cause = STATUS_CAUSES[entry.kind];
      if (!cause) throw new RevenueRuleError('entry.kind', `unknown ledger entry kind ${entry.kind}`);
      return { ...base, kind: 'STATUS', cause };
    }
  }
}

/** The terms the entitlement was sold on: the ledger's snapshot, else the catalogue's version. */
async function definitionTerms(tx: Kysely<RevenueDb>, ent: Entitlement, deps: HandlerDeps): Promise<DefinitionTerms> {
  if (ent.terms?.terms) return ent.terms.terms;
  const definitionId = ent.terms?.definitionId ?? '';
  const version = ent.terms?.definitionVersion ?? 0;
  const bytes = await getDefinitionTerms(tx, ent.tenantId, definitionId, version);
  if (!bytes) throw new RetryLater(`definition ${definitionId} version ${version} is not known yet (waiting for catalogue.definition_published)`, deps.retryDelayMs);
  return fromBinary(DefinitionTermsSchema, bytes);
}

function amountIn(currency: string, m: { currencyCode: string; amountMinor: bigint } | undefined): bigint {
  return m && m.currencyCode === currency && m.amountMinor > 0n ? m.amountMinor : 0n;
}

function deliveryCosts(currency: string, terms: DefinitionTerms): DeliveryCosts {
  const byBranch: Record<string, bigint> = {};
  for (const c of terms.deliveryCostByBranch) {
    if (c.branchId && c.costPerSession?.currencyCode === currency) byBranch[c.branchId] = c.costPerSession.amountMinor;
  }
  return { perSession: amountIn(currency, terms.deliveryCostPerSession), byBranch };
}

function instant(t: Timestamp | undefined): Date | undefined {
  return t ? timestampDate(t) : undefined;
}
