import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { RefundMethod, SessionOrder, type DefinitionTermsSchema } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { LedgerEntryRecordedSchema, type LedgerEntryRecorded } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { EntitlementStatus, EntryKind, type LedgerEntrySchema } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { allocate } from '@punchcard/money';
import { randomUUID } from 'node:crypto';

export type Terms = MessageInitShape<typeof DefinitionTermsSchema>;
/** The optional fields of an entry (amount, counterparts, details) as a plain init object. */
type EntryExtra = Partial<Omit<Exclude<MessageInitShape<typeof LedgerEntrySchema>, { $typeName: string }>, '$typeName'>>;

/** One ledger event as the ledger publishes it: subject event name, event id = entry id, version. */
export interface LedgerEvent {
  event: string;
  tenantId: string;
  entitlementId: string;
  version: number;
  id: string;
  message: LedgerEntryRecorded;
}

const EVENT_BY_KIND: Record<Exclude<EntryKind, EntryKind.UNSPECIFIED>, string> = {
  [EntryKind.PURCHASE]: 'entitlement_purchased',
  [EntryKind.CONSUME]: 'session_consumed',
  [EntryKind.REVERSAL]: 'consume_reversed',
  [EntryKind.EXTEND]: 'entitlement_extended',
  [EntryKind.FREEZE]: 'entitlement_frozen',
  [EntryKind.UNFREEZE]: 'entitlement_unfrozen',
  [EntryKind.GRACE]: 'grace_started',
  [EntryKind.EXPIRE]: 'entitlement_expired',
  [EntryKind.TRANSFER_OUT]: 'transferred_out',
  [EntryKind.TRANSFER_IN]: 'transferred_in',
  [EntryKind.TOP_UP]: 'topped_up',
  [EntryKind.UPGRADE_OUT]: 'upgraded_out',
  [EntryKind.UPGRADE_IN]: 'upgraded_in',
  [EntryKind.REFUND]: 'refunded',
};

export interface PurchaseSpec {
  tenantId: string;
  definitionId: string;
  definitionVersion?: number;
  terms: Terms;
  branchId: string;
  timeZone: string;
  at: Date;
  memberId?: string;
}

/** A session with its allocated value, numbered in consumption order (the ledger's valuation). */
interface Slot {
  bonus: boolean;
  value: bigint;
  removed: boolean;
  consumedBy: string | null;
}

/** How an entitlement starts: bought, or arrived by transfer or upgrade with its sessions valued. */
interface Start {
  slots: Slot[];
  price: bigint;
  originEntitlementId?: string;
}

/** Allocates a contract line over its sessions in consumption order (largest remainder, earliest first). */
function line(amount: bigint, paid: number, bonus: number, order: SessionOrder | undefined): Slot[] {
  const kinds = order === SessionOrder.BONUS_FIRST ? [...Array<boolean>(bonus).fill(true), ...Array<boolean>(paid).fill(false)] : [...Array<boolean>(paid).fill(false), ...Array<boolean>(bonus).fill(true)];
  if (kinds.length === 0) return [];
  const values = allocate(amount, kinds.length);
  return kinds.map((b, i) => ({ bonus: b, value: values[i]!, removed: false, consumedBy: null }));
}

/**
 * A stand-in for the entitlement ledger in tests: keeps an entitlement's sessions with their allocated
 * values (the rule both services book by), its status and version, and builds the
 * `LedgerEntryRecorded` each movement publishes exactly as the ledger's contract says (amounts,
 * counterparts and the transfer / top-up / upgrade / refund details included). Tests decide when (and
 * in which order, how often) to publish them.
 */
export class SimEntitlement {
  readonly entitlementId = randomUUID();
  private version = 0;
  private status = EntitlementStatus.ACTIVE;
  private slots: Slot[];
  private price: bigint;
  private paidSessions: number;
  private bonusSessions: number;
  private readonly originEntitlementId: string;

  constructor(
    private readonly spec: PurchaseSpec,
    start?: Start,
  ) {
    this.price = start?.price ?? spec.terms.price?.amountMinor ?? 0n;
    this.slots = start?.slots ?? line(this.price, spec.terms.paidSessions ?? 0, spec.terms.bonusSessions ?? 0, spec.terms.sessionOrder);
    this.paidSessions = this.slots.filter((s) => !s.bonus).length;
    this.bonusSessions = this.slots.length - this.paidSessions;
    this.originEntitlementId = start?.originEntitlementId ?? '';
  }

  private get currency(): string {
    return this.spec.terms.price?.currencyCode ?? 'SGD';
  }

  private money(amountMinor: bigint) {
    return { currencyCode: this.currency, amountMinor };
  }

  private get open(): Slot[] {
    return this.slots.filter((s) => !s.removed && s.consumedBy === null);
  }

  get remaining(): number {
    return this.open.length;
  }

  get memberId(): string {
    return this.spec.memberId ?? 'member-1';
  }

  /** Unused sessions' allocated value: what revenue still defers for them. */
  get unusedValue(): bigint {
    return this.open.reduce((sum, s) => sum + s.value, 0n);
  }

  get consumeIds(): string[] {
    return this.slots.flatMap((s) => (s.consumedBy && !s.removed ? [s.consumedBy] : []));
  }

  purchase(): LedgerEvent {
    return this.record(EntryKind.PURCHASE, { at: this.spec.at, branchId: this.spec.branchId, delta: [this.paidSessions, this.bonusSessions] });
  }

  /** Consumes like the ledger: paid first unless the definition says bonus first; the lowest-numbered session of that kind. */
  consume(branchId: string, at: Date): LedgerEvent {
    const open = this.open;
    if (open.length === 0) throw new Error('no sessions left');
    const bonusFirst = this.spec.terms.sessionOrder === SessionOrder.BONUS_FIRST;
    const bonus = bonusFirst ? open.some((s) => s.bonus) : !open.some((s) => !s.bonus);
    const slot = open.find((s) => s.bonus === bonus)!;
    const entryId = randomUUID();
    slot.consumedBy = entryId;
    if (this.remaining === 0) this.status = EntitlementStatus.EXHAUSTED;
    return this.record(EntryKind.CONSUME, { at, branchId, delta: bonus ? [0, -1] : [-1, 0], entryId });
  }

  reverse(consumeEntryId: string, at: Date): LedgerEvent {
    const slot = this.slots.find((s) => s.consumedBy === consumeEntryId);
    if (!slot) throw new Error(`no consume ${consumeEntryId}`);
    slot.consumedBy = null;
    if (this.status === EntitlementStatus.EXHAUSTED) this.status = EntitlementStatus.ACTIVE;
    return this.record(EntryKind.REVERSAL, { at, branchId: '', delta: slot.bonus ? [0, 1] : [1, 0], extra: { reversesEntryId: consumeEntryId } });
  }

  freeze(at: Date): LedgerEvent {
    this.status = EntitlementStatus.FROZEN;
    return this.record(EntryKind.FREEZE, { at, branchId: '', delta: [0, 0] });
  }

  unfreeze(at: Date): LedgerEvent {
    this.status = EntitlementStatus.ACTIVE;
    return this.record(EntryKind.UNFREEZE, { at, branchId: '', delta: [0, 0] });
  }

  /** The remaining sessions are forfeited (the ledger's EXPIRE entry takes the balance to zero). */
  expire(at: Date): LedgerEvent {
    const delta = this.openDelta();
    // Forfeited: gone for the ledger (revenue books them as breakage).
    for (const s of this.open) s.removed = true;
    this.status = EntitlementStatus.EXPIRED;
    return this.record(EntryKind.EXPIRE, { at, branchId: '', delta });
  }

  /** `paid` sessions at the definition's top-up price: a contract line of its own. */
  topUp(paid: number, branchId: string, at: Date): LedgerEvent {
    const perSession = this.spec.terms.topUp?.pricePerSession?.amountMinor ?? 0n;
    const amount = perSession * BigInt(paid);
    this.slots = [...this.slots, ...line(amount, paid, 0, this.spec.terms.sessionOrder)];
    this.paidSessions += paid;
    this.status = EntitlementStatus.ACTIVE;
    return this.record(EntryKind.TOP_UP, {
      at,
      branchId,
      delta: [paid, 0],
      extra: {
        amount: this.money(amount),
        topUp: { sessions: paid, pricePerSession: this.money(perSession), amountPaid: this.money(amount), paymentReference: `pay-${paid}` },
      },
    });
  }

  /**
   * Every remaining session moves to `toMemberId` on a new entitlement (version 1) that keeps the terms,
   * the purchase branch and the sessions' values; this one ends TRANSFERRED. Returns both events
   * (published in one ledger transaction) and the receiver.
   */
  transfer(toMemberId: string, at: Date, o: { undoesTransferId?: string } = {}): { out: LedgerEvent; into: LedgerEvent; receiver: SimEntitlement } {
    // The ledger moves the highest-numbered unused sessions of each kind: here all of them.
    const moved = this.open;
    const value = moved.reduce((sum, s) => sum + s.value, 0n);
    const receiver = new SimEntitlement(
      { ...this.spec, memberId: toMemberId, at },
      { slots: moved.map((s) => ({ bonus: s.bonus, value: s.value, removed: false, consumedBy: null })), price: value, originEntitlementId: this.entitlementId },
    );
    const outId = randomUUID();
    const inId = randomUUID();
    const detail = {
      fromEntitlementId: this.entitlementId,
      toEntitlementId: receiver.entitlementId,
      fromMemberId: this.memberId,
      toMemberId,
      paidSessions: moved.filter((s) => !s.bonus).length,
      bonusSessions: moved.filter((s) => s.bonus).length,
      sessions: moved.map((s) => ({ bonus: s.bonus, valueMinor: s.value })),
      value: this.money(value),
      undoesTransferId: o.undoesTransferId ?? '',
    };
    const common = { amount: this.money(value), transfer: detail };
    const delta = this.openDelta();
    for (const s of moved) s.removed = true;
    this.status = EntitlementStatus.TRANSFERRED;
    const out = this.record(EntryKind.TRANSFER_OUT, {
      at,
      branchId: this.spec.branchId,
      delta,
      entryId: outId,
      extra: { ...common, counterpartEntitlementId: receiver.entitlementId, counterpartEntryId: inId },
    });
    const into = receiver.record(EntryKind.TRANSFER_IN, {
      at,
      branchId: this.spec.branchId,
      delta: [-delta[0], -delta[1]],
      entryId: inId,
      extra: { ...common, counterpartEntitlementId: this.entitlementId, counterpartEntryId: outId },
    });
    return { out, into, receiver };
  }

  /**
   * Upgrades to another definition sold at `branchId`: the unused sessions' value is the credit, the
   * member pays the new price minus it, a new entitlement starts (version 1) and this one ends UPGRADED.
   */
  upgrade(to: { definitionId: string; terms: Terms; branchId: string; timeZone: string }, at: Date): { out: LedgerEvent; into: LedgerEvent; upgraded: SimEntitlement } {
    const unused = this.open;
    const credit = unused.reduce((sum, s) => sum + s.value, 0n);
    const newPrice = to.terms.price?.amountMinor ?? 0n;
    const upgraded = new SimEntitlement(
      { tenantId: this.spec.tenantId, definitionId: to.definitionId, terms: to.terms, branchId: to.branchId, timeZone: to.timeZone, at, memberId: this.memberId },
      { slots: line(newPrice, to.terms.paidSessions ?? 0, to.terms.bonusSessions ?? 0, to.terms.sessionOrder), price: newPrice, originEntitlementId: this.entitlementId },
    );
    const quote = {
      entitlementId: this.entitlementId,
      fromDefinitionId: this.spec.definitionId,
      fromDefinitionVersion: this.spec.definitionVersion ?? 1,
      toDefinitionId: to.definitionId,
      toDefinitionVersion: 1,
      remainingSessions: unused.map((s) => ({ bonus: s.bonus, valueMinor: s.value })),
      credit: this.money(credit),
      newPrice: this.money(newPrice),
      amountDue: this.money(newPrice - credit),
      newPaidSessions: to.terms.paidSessions ?? 0,
      newBonusSessions: to.terms.bonusSessions ?? 0,
    };
    const outId = randomUUID();
    const inId = randomUUID();
    const delta = this.openDelta();
    for (const s of unused) s.removed = true;
    this.status = EntitlementStatus.UPGRADED;
    const out = this.record(EntryKind.UPGRADE_OUT, {
      at,
      branchId: to.branchId,
      delta,
      entryId: outId,
      extra: { amount: this.money(credit), upgrade: quote, counterpartEntitlementId: upgraded.entitlementId, counterpartEntryId: inId },
    });
    const into = upgraded.record(EntryKind.UPGRADE_IN, {
      at,
      branchId: to.branchId,
      delta: [upgraded.paidSessions, upgraded.bonusSessions],
      entryId: inId,
      extra: { amount: this.money(newPrice - credit), upgrade: quote, counterpartEntitlementId: this.entitlementId, counterpartEntryId: outId },
    });
    return { out, into, upgraded };
  }

  /**
   * The refund's settlement entry, with the quote by the definition's refund policy (PRO_RATA: the
   * unused sessions' value; USED_AT_STANDALONE_PRICE: the value of every session minus the used ones at
   * the standalone price), minus the admin fee, never below zero.
   */
  refund(at: Date): LedgerEvent {
    const { unused, unusedValue, contractValue, used, method, usedAtStandalone, gross, adminFee, amount } = this.refundQuote();
    const refundId = randomUUID();
    const delta = this.openDelta();
    for (const s of unused) s.removed = true;
    this.status = EntitlementStatus.REFUNDED;
    return this.record(EntryKind.REFUND, {
      at,
      branchId: this.spec.branchId,
      delta,
      extra: {
        amount: this.money(amount),
        refundId,
        refund: {
          entitlementId: this.entitlementId,
          method,
          refundable: true,
          unusedSessions: unused.length,
          usedSessions: used,
          contractValue: this.money(contractValue),
          unusedValue: this.money(unusedValue),
          usedAtStandalonePrice: this.money(usedAtStandalone),
          gross: this.money(gross),
          adminFee: this.money(adminFee),
          amount: this.money(amount),
          unused: unused.map((s) => ({ bonus: s.bonus, valueMinor: s.value })),
        },
      },
    });
  }

  /** What a refund would pay back now (the ledger refuses one of 0). */
  refundQuote() {
    const policy = this.spec.terms.refund;
    const unused = this.open;
    const unusedValue = unused.reduce((sum, s) => sum + s.value, 0n);
    const kept = this.slots.filter((s) => !s.removed);
    const contractValue = kept.reduce((sum, s) => sum + s.value, 0n);
    const used = kept.length - unused.length;
    const method = policy?.method ?? RefundMethod.PRO_RATA;
    const standalone = this.spec.terms.standalonePricePerSession?.amountMinor ?? 0n;
    const usedAtStandalone = method === RefundMethod.USED_AT_STANDALONE_PRICE ? standalone * BigInt(used) : 0n;
    const gross = method === RefundMethod.PRO_RATA ? unusedValue : contractValue > usedAtStandalone ? contractValue - usedAtStandalone : 0n;
    const adminFee = policy?.adminFee?.amountMinor ?? 0n;
    const amount = gross > adminFee ? gross - adminFee : 0n;
    return { unused, unusedValue, contractValue, used, method, usedAtStandalone, gross, adminFee, amount };
  }

  /** The deltas that take every unused session away, split into paid and bonus. */
  private openDelta(): [number, number] {
    const bonus = this.open.filter((s) => s.bonus).length;
    return [bonus - this.open.length, -bonus];
  }

  private record(
    kind: Exclude<EntryKind, EntryKind.UNSPECIFIED>,
    o: { at: Date; branchId: string; delta: [number, number]; entryId?: string; extra?: EntryExtra },
  ): LedgerEvent {
    this.version++;
    const entryId = o.entryId ?? randomUUID();
    const { tenantId } = this.spec;
    const open = this.open;
    const paidRemaining = open.filter((s) => !s.bonus).length;
    const bonusRemaining = open.length - paidRemaining;
    const message = create(LedgerEntryRecordedSchema, {
      entitlement: {
        tenantId,
        entitlementId: this.entitlementId,
        memberId: this.memberId,
        terms: {
          definitionId: this.spec.definitionId,
          definitionVersion: this.spec.definitionVersion ?? 1,
          terms: this.spec.terms,
          timeZone: this.spec.timeZone,
        },
        purchaseBranchId: this.spec.branchId,
        status: this.status,
        paidSessions: this.paidSessions,
        bonusSessions: this.bonusSessions,
        paidRemaining,
        bonusRemaining,
        remaining: paidRemaining + bonusRemaining,
        price: this.money(this.price),
        purchaseTime: timestampFromDate(this.spec.at),
        version: BigInt(this.version),
        originEntitlementId: this.originEntitlementId,
      },
      entry: {
        tenantId,
        entryId,
        entitlementId: this.entitlementId,
        kind,
        sessionsDelta: o.delta[0] + o.delta[1],
        paidDelta: o.delta[0],
        bonusDelta: o.delta[1],
        branchId: o.branchId,
        actor: { subject: 'front-desk', roles: ['staff'] },
        occurredTime: timestampFromDate(o.at),
        recordTime: timestampFromDate(o.at),
        requestId: randomUUID(),
        balanceAfter: paidRemaining + bonusRemaining,
        memberId: this.memberId,
        entitlementVersion: BigInt(this.version),
        ...o.extra,
      },
    });
    return { event: EVENT_BY_KIND[kind], tenantId, entitlementId: this.entitlementId, version: this.version, id: entryId, message };
  }
}
