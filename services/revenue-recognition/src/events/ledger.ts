import { fromBinary } from '@bufbuild/protobuf';
import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { trace } from '@opentelemetry/api';
import { RetryLater, type ConsumedEvent } from '@punchcard/bus';
import { DefinitionTermsSchema, SessionOrder, type DefinitionTerms } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import type { Money } from '@punchcard/contracts/punchcard/common/v1/common_pb';
import type { LedgerEntryRecorded } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { EntryKind, type Entitlement, type LedgerEntry } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { isKnownCurrency } from '@punchcard/money';
import type { Kysely } from 'kysely';
import {
  apply,
  purchase,
  transferIn,
  upgradeIn,
  type Contract,
  type ContractEvent,
  type ContractTerms,
  type DeliveryCosts,
  type Posting,
  type PostingContext,
} from '../domain/contract.js';
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
  const at = instant(entry.occurredTime) ?? instant(entry.recordTime);
  if (!at) throw new RevenueRuleError('entry.occurred_time', `entry ${entry.entryId} has no occurred or record time`);
  const purchaseZone = ent.terms?.timeZone ? { [ent.purchaseBranchId]: ent.terms.timeZone } : {};

  if (OPENING_KINDS.has(entry.kind)) {
    if (existing) throw new RevenueRuleError('entry.kind', `entitlement ${ent.entitlementId} already has a contract; a ${EntryKind[entry.kind]} entry cannot open another`);
    const terms = await contractTerms(tx, tenant, ent, deps);
    const ctx = await postingContext(tx, ent.tenantId, tenant.earningRule, [ent.purchaseBranchId], purchaseZone, deps);
    return open(terms, ent, entry, at, ctx);
  }

  if (!existing) {
    throw new RevenueRuleError('entry.kind', `entitlement ${ent.entitlementId} has no contract: its first event must be its purchase, transfer in or upgrade in, not ${EntryKind[entry.kind]}`);
  }
  const base = { entryId: entry.entryId, at, branchId: entry.branchId, status: statusFromProto(ent.status, existing.status) };
  const event = contractEvent(entry, existing, base);
  const reversed = event.kind === 'REVERSAL' ? existing.sessions.find((s) => s.consumedBy?.entryId === event.reversesEntryId)?.consumedBy?.deliveringBranchId : undefined;
  const branches = [existing.liabilityBranchId, entry.branchId, ...(reversed ? [reversed] : [])];
  const ctx = await postingContext(tx, ent.tenantId, tenant.earningRule, branches, purchaseZone, deps);
  return apply(existing, event, ctx);
}

/** Entries that start an entitlement (version 1), and so its contract. */
const OPENING_KINDS: ReadonlySet<EntryKind> = new Set([EntryKind.PURCHASE, EntryKind.TRANSFER_IN, EntryKind.UPGRADE_IN]);

/** A new contract: a sale, the sessions a transfer brought with their values, or an upgrade's credit + cash. */
function open(terms: ContractTerms, ent: Entitlement, entry: LedgerEntry, at: Date, ctx: PostingContext): Posting {
  const common = { ...terms, entryId: entry.entryId, at, status: statusFromProto(ent.status, 'ACTIVE') };
  const currency = terms.currency;
  switch (entry.kind) {
    case EntryKind.TRANSFER_IN: {
      const detail = entry.transfer;
      if (!detail) throw new RevenueRuleError('entry.transfer', `transfer in ${entry.entryId} carries no transfer detail`);
      const value = moneyIn(currency, detail.value, 'entry.transfer.value');
      const sessions = detail.sessions.map((s) => ({ bonus: s.bonus, value: s.valueMinor }));
      const sum = sessions.reduce((total, x) => total + x.value, 0n);
      if (sessions.some((x) => x.value < 0n) || sum !== value || moneyIn(currency, entry.amount, 'entry.amount') !== value) {
        throw new RevenueRuleError('entry.transfer.sessions', `transfer in ${entry.entryId}: sessions worth ${sum}, value ${value}, amount ${entry.amount?.amountMinor ?? '(none)'} must agree`);
      }
      if (sessions.length !== entry.paidDelta + entry.bonusDelta || sessions.filter((x) => x.bonus).length !== entry.bonusDelta) {
        throw new RevenueRuleError('entry.transfer.sessions', `transfer in ${entry.entryId} lists ${sessions.length} sessions for ${entry.paidDelta} paid + ${entry.bonusDelta} bonus`);
      }
      return transferIn({ ...common, sessions }, ctx);
    }
    case EntryKind.UPGRADE_IN: {
      const quote = entry.upgrade;
      if (!quote) throw new RevenueRuleError('entry.upgrade', `upgrade in ${entry.entryId} carries no upgrade quote`);
      const credit = moneyIn(currency, quote.credit, 'entry.upgrade.credit');
      const cash = moneyIn(currency, entry.amount, 'entry.amount');
      const price = moneyIn(currency, ent.price, 'entitlement.price');
      if (credit + cash !== price) {
        throw new RevenueRuleError('entry.amount', `upgrade in ${entry.entryId}: credit ${credit} + amount paid ${cash} is not the new price ${price}`);
      }
      return upgradeIn({ ...common, credit, cash, paidSessions: ent.paidSessions, bonusSessions: ent.bonusSessions }, ctx);
    }
    default:
      return purchase({ ...common, price: moneyIn(currency, ent.price, 'entitlement.price'), paidSessions: ent.paidSessions, bonusSessions: ent.bonusSessions }, ctx);
  }
}

/** What a contract is sold on: the entitlement's terms snapshot (or the catalogue's version) and its currency. */
async function contractTerms(tx: Kysely<RevenueDb>, tenant: TenantRow, ent: Entitlement, deps: HandlerDeps): Promise<ContractTerms> {
  const currency = ent.price?.currencyCode ?? '';
  if (!isKnownCurrency(currency)) throw new RevenueRuleError('entitlement.price', `entitlement ${ent.entitlementId} has no price in a known currency`);
  requireCurrency(tenant, currency, 'entitlement.price.currency_code');
  const terms = await definitionTerms(tx, ent, deps);
  return {
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
  };
}

type Base = Pick<ContractEvent, 'entryId' | 'at' | 'branchId' | 'status'>;

/** A movement of an open contract, with the ledger's own figures for what leaves it. */
function contractEvent(entry: LedgerEntry, c: Contract, base: Base): ContractEvent {
  switch (entry.kind) {
    case EntryKind.CONSUME:
      return { ...base, kind: 'CONSUME', bonus: entry.bonusDelta < 0 ? true : entry.paidDelta < 0 ? false : null };
    case EntryKind.REVERSAL:
      if (!entry.reversesEntryId) throw new RevenueRuleError('entry.reverses_entry_id', `reversal ${entry.entryId} names no entry`);
      return { ...base, kind: 'REVERSAL', reversesEntryId: entry.reversesEntryId };
    case EntryKind.TOP_UP:
      return { ...base, kind: 'TOP_UP', paid: Math.max(0, entry.paidDelta), bonus: Math.max(0, entry.bonusDelta), amount: moneyIn(c.currency, entry.amount, 'entry.amount') };
    case EntryKind.REFUND: {
      const quote = entry.refund;
      if (!quote) throw new RevenueRuleError('entry.refund', `refund ${entry.entryId} carries no refund quote`);
      return { ...base, kind: 'REFUND', amount: moneyIn(c.currency, entry.amount, 'entry.amount'), ledgerValue: moneyIn(c.currency, quote.unusedValue, 'entry.refund.unused_value') };
    }
    case EntryKind.TRANSFER_OUT:
      return {
        ...base,
        kind: 'TRANSFER_OUT',
        paid: Math.max(0, -entry.paidDelta),
        bonus: Math.max(0, -entry.bonusDelta),
        either: 0,
        ledgerValue: moneyIn(c.currency, entry.amount, 'entry.amount'),
      };
    case EntryKind.UPGRADE_OUT:
      return { ...base, kind: 'UPGRADE_OUT', ledgerValue: moneyIn(c.currency, entry.amount, 'entry.amount') };
    default: {
      const cause = STATUS_CAUSES[entry.kind];
      if (!cause) throw new RevenueRuleError('entry.kind', `unknown ledger entry kind ${entry.kind}`);
      return { ...base, kind: 'STATUS', cause };
    }
  }
}

/** An amount the entry must carry, in the contract's currency and not negative. */
function moneyIn(currency: string, m: Money | undefined, field: string): bigint {
  if (!m) throw new RevenueRuleError(field, 'is required');
  if (m.currencyCode !== currency) throw new RevenueRuleError(`${field}.currency_code`, `${m.currencyCode || '(none)'} is not the contract's currency ${currency}`);
  if (m.amountMinor < 0n) throw new RevenueRuleError(field, `must not be negative, got ${m.amountMinor}`);
  return m.amountMinor;
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
