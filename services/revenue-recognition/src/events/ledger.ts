import { fromBinary } from '@bufbuild/protobuf';
import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { trace, type Context } from '@opentelemetry/api';
import { RetryLater, type ConsumedEvent, type Deferral } from '@punchcard/bus';
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
import type { JournalDraft } from '../domain/types.js';
import { statusFromProto } from '../mapping.js';
import { definitionKey, definitionTermsOf, tenantsWithZones, type DefinitionRef, type TenantRow } from '../store/catalogue.js';
import { contractsWrites, entitlementKey, lockEntitlements, progressWrites } from '../store/contracts.js';
import type { RevenueDb } from '../store/schema.js';
import { knownTenant, postingContextFrom, requireCurrency, type HandlerDeps } from './context.js';
import { postEntries } from './publish.js';

export const LEDGER_DURABLE = 'revenue_ledger';

/** Status changes that move no money by themselves, and the journal cause their true-up would carry. */
const STATUS_CAUSES: Partial<Record<EntryKind, string>> = {
  [EntryKind.EXTEND]: 'ledger.entitlement_extended',
  [EntryKind.FREEZE]: 'ledger.entitlement_frozen',
  [EntryKind.UNFREEZE]: 'ledger.entitlement_unfrozen',
  [EntryKind.GRACE]: 'ledger.grace_started',
  [EntryKind.EXPIRE]: 'ledger.entitlement_expired',
};

/** A ledger event, checked, with the entitlement version it brings. */
interface Incoming {
  event: ConsumedEvent<LedgerEntryRecorded>;
  ent: Entitlement;
  entry: LedgerEntry;
  version: number;
}

/** What a batch's events need from the catalogue, read once per batch. */
interface Catalogue {
  tenants: ReadonlyMap<string, TenantRow>;
  /** tenant id → branch id → time zone. */
  zones: ReadonlyMap<string, ReadonlyMap<string, string>>;
  /** Terms of the definition versions that entitlements without a terms snapshot were sold on. */
  definitions: ReadonlyMap<string, Uint8Array>;
}

/**
 * Applies ledger events in one inbox transaction, each entitlement's in version order: an event at or
 * below the applied version changes nothing; one beyond the next, or one waiting for the catalogue,
 * is deferred with the entitlement's later events. Progress and contracts are read and locked once
 * for the batch, catalogue rows read once, and the contracts, journal entries, their outbox events and
 * the new versions written in one statement. The journal is the one the events would give one at
 * a time; its entries are in version order per entitlement, and each entry's events carry the trace
 * of the ledger event that caused it.
 */
export async function onLedgerEvents(tx: Kysely<RevenueDb>, events: readonly ConsumedEvent<LedgerEntryRecorded>[], deps: HandlerDeps): Promise<Deferral[]> {
  const byEntitlement = new Map<string, Incoming[]>();
  for (const event of events) {
    const x = incoming(event);
    const key = entitlementKey({ tenantId: event.tenantId, entitlementId: x.ent.entitlementId });
    byEntitlement.set(key, [...(byEntitlement.get(key) ?? []), x]);
  }
  // Stable: two events of one version (a republish under another id) keep their stream order.
  for (const group of byEntitlement.values()) group.sort((a, b) => a.version - b.version);
  const refs = [...byEntitlement.values()].map(([x]) => ({ tenantId: x!.event.tenantId, entitlementId: x!.ent.entitlementId }));
  const states = await lockEntitlements(tx, refs);
  const catalogue: Catalogue = {
    ...(await tenantsWithZones(tx, refs.map((r) => r.tenantId))),
    definitions: await definitionTermsOf(
      tx,
      events.flatMap((e) => {
        const { entitlement: ent, entry } = e.data;
        return ent && entry && OPENING_KINDS.has(entry.kind) && !ent.terms?.terms ? [definitionOf(ent)] : [];
      }),
    ),
  };

  const deferrals: Deferral[] = [];
  const contracts: Contract[] = [];
  const progress: { tenantId: string; entitlementId: string; version: number }[] = [];
  const drafts: { draft: JournalDraft; cause: Context }[] = [];
  for (const [key, group] of byEntitlement) {
    const state = states.get(key);
    if (!state) throw new Error(`entitlement ${key} was not locked`);
    let { applied, contract } = state;
    // Once one event of the entitlement waits, every later one waits with it.
    let waiting: string | undefined;
    for (const x of group) {
      const decision = orderDecision(applied, x.version);
      if (decision === 'duplicate') continue;
      if (decision === 'apply' && waiting === undefined) {
        try {
          const posting = post(x, contract, catalogue, deps);
          contract = posting.contract;
          applied = x.version;
          if (posting.draft) drafts.push({ draft: posting.draft, cause: x.event.traceContext });
          continue;
        } catch (err) {
          if (!(err instanceof RetryLater)) throw err;
          waiting = err.reason;
        }
      }
      const reason = decision === 'gap' ? `entitlement ${x.ent.entitlementId} is at version ${applied}; version ${x.version} must wait for ${applied + 1}` : waiting!;
      deferrals.push({ eventId: x.event.id, reason, delayMs: deps.retryDelayMs });
    }
    if (applied !== state.applied && contract) {
      contracts.push(contract);
      progress.push({ tenantId: contract.tenantId, entitlementId: contract.entitlementId, version: applied });
    }
  }

  const now = deps.now();
  const alongside = [...contractsWrites(contracts, now), ...progressWrites(progress)];
  await postEntries(tx, drafts.map((d) => d.draft), now, { causes: drafts.map((d) => d.cause), alongside });
  return deferrals;
}

/** Checks an event's payload against its envelope, and marks its process span with what it is about. */
function incoming(event: ConsumedEvent<LedgerEntryRecorded>): Incoming {
  const { entitlement: ent, entry } = event.data;
  if (!ent || !entry) throw new RevenueRuleError('entitlement', `${event.type} ${event.id} carries no entitlement or entry`);
  if (ent.tenantId !== event.tenantId || entry.tenantId !== event.tenantId) {
    throw new RevenueRuleError('tenant_id', `${event.type} ${event.id} is about tenant ${ent.tenantId || entry.tenantId} but arrived on tenant ${event.tenantId}'s subject`);
  }
  if (!ent.entitlementId || entry.entitlementId !== ent.entitlementId) {
    throw new RevenueRuleError('entry.entitlement_id', `entry ${entry.entryId} does not belong to entitlement ${ent.entitlementId || '(none)'}`);
  }
  trace.getSpan(event.traceContext)?.setAttributes({
    'tenant.id': event.tenantId,
    'entitlement.id': ent.entitlementId,
    'branch.id': entry.branchId || ent.purchaseBranchId,
  });
  const version = Number(ent.version || entry.entitlementVersion || BigInt(event.aggregateVersion ?? 0));
  if (!Number.isSafeInteger(version) || version < 1) throw new RevenueRuleError('entitlement.version', `must be a positive integer, got ${ent.version}`);
  return { event, ent, entry, version };
}

/** The contract and journal draft after one event; throws RetryLater when the catalogue lacks what it needs. */
function post({ ent, entry }: Incoming, existing: Contract | undefined, catalogue: Catalogue, deps: HandlerDeps): Posting {
  const tenant = knownTenant(catalogue.tenants.get(ent.tenantId), ent.tenantId, deps);
  const zones = catalogue.zones.get(ent.tenantId) ?? new Map<string, string>();
  const at = instant(entry.occurredTime) ?? instant(entry.recordTime);
  if (!at) throw new RevenueRuleError('entry.occurred_time', `entry ${entry.entryId} has no occurred or record time`);
  const purchaseZone = ent.terms?.timeZone ? { [ent.purchaseBranchId]: ent.terms.timeZone } : {};

  if (OPENING_KINDS.has(entry.kind)) {
    if (existing) throw new RevenueRuleError('entry.kind', `entitlement ${ent.entitlementId} already has a contract; a ${EntryKind[entry.kind]} entry cannot open another`);
    const terms = contractTerms(tenant, ent, catalogue, deps);
    const ctx = postingContextFrom(zones, ent.tenantId, tenant.earningRule, [ent.purchaseBranchId], purchaseZone, deps);
    return open(terms, ent, entry, at, ctx);
  }

  if (!existing) {
    throw new RevenueRuleError('entry.kind', `entitlement ${ent.entitlementId} has no contract: its first event must be its purchase, transfer in or upgrade in, not ${EntryKind[entry.kind]}`);
  }
  const base = { entryId: entry.entryId, at, branchId: entry.branchId, status: statusFromProto(ent.status, existing.status) };
  const event = contractEvent(entry, existing, base);
  const reversed = event.kind === 'REVERSAL' ? existing.sessions.find((s) => s.consumedBy?.entryId === event.reversesEntryId)?.consumedBy?.deliveringBranchId : undefined;
  const branches = [existing.liabilityBranchId, entry.branchId, ...(reversed ? [reversed] : [])];
  const ctx = postingContextFrom(zones, ent.tenantId, tenant.earningRule, branches, purchaseZone, deps);
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
function contractTerms(tenant: TenantRow, ent: Entitlement, catalogue: Catalogue, deps: HandlerDeps): ContractTerms {
  const currency = ent.price?.currencyCode ?? '';
  if (!isKnownCurrency(currency)) throw new RevenueRuleError('entitlement.price', `entitlement ${ent.entitlementId} has no price in a known currency`);
  requireCurrency(tenant, currency, 'entitlement.price.currency_code');
  const terms = definitionTerms(ent, catalogue, deps);
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

/**
 * A movement of an open contract, with the ledger's own figures for what leaves it. `base` (keys of
 * its own) is spread last: on Node 20's V8 the keys after a leading spread give every object a hidden
 * class of its own, made in the old generation.
 */
function contractEvent(entry: LedgerEntry, c: Contract, base: Base): ContractEvent {
  switch (entry.kind) {
    case EntryKind.CONSUME:
      return { kind: 'CONSUME', bonus: entry.bonusDelta < 0 ? true : entry.paidDelta < 0 ? false : null, ...base };
    case EntryKind.REVERSAL:
      if (!entry.reversesEntryId) throw new RevenueRuleError('entry.reverses_entry_id', `reversal ${entry.entryId} names no entry`);
      return { kind: 'REVERSAL', reversesEntryId: entry.reversesEntryId, ...base };
    case EntryKind.TOP_UP:
      return { kind: 'TOP_UP', paid: Math.max(0, entry.paidDelta), bonus: Math.max(0, entry.bonusDelta), amount: moneyIn(c.currency, entry.amount, 'entry.amount'), ...base };
    case EntryKind.REFUND: {
      const quote = entry.refund;
      if (!quote) throw new RevenueRuleError('entry.refund', `refund ${entry.entryId} carries no refund quote`);
      return { kind: 'REFUND', amount: moneyIn(c.currency, entry.amount, 'entry.amount'), ledgerValue: moneyIn(c.currency, quote.unusedValue, 'entry.refund.unused_value'), ...base };
    }
    case EntryKind.TRANSFER_OUT:
      return {
        kind: 'TRANSFER_OUT',
        paid: Math.max(0, -entry.paidDelta),
        bonus: Math.max(0, -entry.bonusDelta),
        either: 0,
        ledgerValue: moneyIn(c.currency, entry.amount, 'entry.amount'),
        ...base,
      };
    case EntryKind.UPGRADE_OUT:
      return { kind: 'UPGRADE_OUT', ledgerValue: moneyIn(c.currency, entry.amount, 'entry.amount'), ...base };
    default: {
      const cause = STATUS_CAUSES[entry.kind];
      if (!cause) throw new RevenueRuleError('entry.kind', `unknown ledger entry kind ${entry.kind}`);
      return { kind: 'STATUS', cause, ...base };
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
function definitionTerms(ent: Entitlement, catalogue: Catalogue, deps: HandlerDeps): DefinitionTerms {
  if (ent.terms?.terms) return ent.terms.terms;
  const definition = definitionOf(ent);
  const bytes = catalogue.definitions.get(definitionKey(definition));
  if (!bytes) throw new RetryLater(`definition ${definition.definitionId} version ${definition.version} is not known yet (waiting for catalogue.definition_published)`, deps.retryDelayMs);
  return fromBinary(DefinitionTermsSchema, bytes);
}

function definitionOf(ent: Entitlement): DefinitionRef {
  return { tenantId: ent.tenantId, definitionId: ent.terms?.definitionId ?? '', version: ent.terms?.definitionVersion ?? 0 };
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
