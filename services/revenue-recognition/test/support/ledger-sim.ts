import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { SessionOrder, type DefinitionTermsSchema } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { LedgerEntryRecordedSchema, type LedgerEntryRecorded } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { EntitlementStatus, EntryKind } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { randomUUID } from 'node:crypto';

export type Terms = MessageInitShape<typeof DefinitionTermsSchema>;

/** One ledger event as the ledger publishes it: subject event name, event id = entry id, version. */
export interface LedgerEvent {
  event: string;
  tenantId: string;
  entitlementId: string;
  version: number;
  id: string;
  message: LedgerEntryRecorded;
}

const EVENT_BY_KIND: Partial<Record<EntryKind, string>> = {
  [EntryKind.PURCHASE]: 'entitlement_purchased',
  [EntryKind.CONSUME]: 'session_consumed',
  [EntryKind.REVERSAL]: 'consume_reversed',
  [EntryKind.EXTEND]: 'entitlement_extended',
  [EntryKind.FREEZE]: 'entitlement_frozen',
  [EntryKind.UNFREEZE]: 'entitlement_unfrozen',
  [EntryKind.GRACE]: 'grace_started',
  [EntryKind.EXPIRE]: 'entitlement_expired',
  [EntryKind.TOP_UP]: 'topped_up',
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

/**
 * A stand-in for the entitlement ledger in tests: keeps an entitlement's counts, status and version and
 * builds the `LedgerEntryRecorded` each movement publishes, exactly as the ledger's contract says.
 * Tests decide when (and in which order, how often) to publish them.
 */
export class SimEntitlement {
  readonly entitlementId = randomUUID();
  private version = 0;
  private paidRemaining: number;
  private bonusRemaining: number;
  private status = EntitlementStatus.ACTIVE;
  private readonly consumes: { entryId: string; bonus: boolean }[] = [];

  constructor(private readonly spec: PurchaseSpec) {
    this.paidRemaining = spec.terms.paidSessions ?? 0;
    this.bonusRemaining = spec.terms.bonusSessions ?? 0;
  }

  get remaining(): number {
    return this.paidRemaining + this.bonusRemaining;
  }

  get consumeIds(): string[] {
    return this.consumes.map((c) => c.entryId);
  }

  purchase(): LedgerEvent {
    return this.record(EntryKind.PURCHASE, { at: this.spec.at, branchId: this.spec.branchId, delta: [this.paidRemaining, this.bonusRemaining] });
  }

  /** Consumes like the ledger: paid first unless the definition says bonus first. */
  consume(branchId: string, at: Date): LedgerEvent {
    if (this.remaining === 0) throw new Error('no sessions left');
    const bonusFirst = this.spec.terms.sessionOrder === SessionOrder.BONUS_FIRST;
    const bonus = bonusFirst ? this.bonusRemaining > 0 : this.paidRemaining === 0;
    if (bonus) this.bonusRemaining--;
    else this.paidRemaining--;
    if (this.remaining === 0) this.status = EntitlementStatus.EXHAUSTED;
    const event = this.record(EntryKind.CONSUME, { at, branchId, delta: bonus ? [0, -1] : [-1, 0] });
    this.consumes.push({ entryId: event.id, bonus });
    return event;
  }

  reverse(consumeEntryId: string, at: Date): LedgerEvent {
    const i = this.consumes.findIndex((c) => c.entryId === consumeEntryId);
    const [c] = this.consumes.splice(i, 1);
    if (!c) throw new Error(`no consume ${consumeEntryId}`);
    if (c.bonus) this.bonusRemaining++;
    else this.paidRemaining++;
    if (this.status === EntitlementStatus.EXHAUSTED) this.status = EntitlementStatus.ACTIVE;
    return this.record(EntryKind.REVERSAL, { at, branchId: '', delta: c.bonus ? [0, 1] : [1, 0], reverses: consumeEntryId });
  }

  freeze(at: Date): LedgerEvent {
    this.status = EntitlementStatus.FROZEN;
    return this.record(EntryKind.FREEZE, { at, branchId: '', delta: [0, 0] });
  }

  unfreeze(at: Date): LedgerEvent {
    this.status = EntitlementStatus.ACTIVE;
    return this.record(EntryKind.UNFREEZE, { at, branchId: '', delta: [0, 0] });
  }

  expire(at: Date): LedgerEvent {
    this.status = EntitlementStatus.EXPIRED;
    return this.record(EntryKind.EXPIRE, { at, branchId: '', delta: [0, 0] });
  }

  topUp(paid: number, branchId: string, at: Date): LedgerEvent {
    this.paidRemaining += paid;
    this.status = EntitlementStatus.ACTIVE;
    return this.record(EntryKind.TOP_UP, { at, branchId, delta: [paid, 0] });
  }

  refund(at: Date): LedgerEvent {
    const delta: [number, number] = [-this.paidRemaining, -this.bonusRemaining];
    this.paidRemaining = 0;
    this.bonusRemaining = 0;
    this.status = EntitlementStatus.REFUNDED;
    return this.record(EntryKind.REFUND, { at, branchId: '', delta });
  }

  private record(kind: EntryKind, o: { at: Date; branchId: string; delta: [number, number]; reverses?: string }): LedgerEvent {
    this.version++;
    const entryId = randomUUID();
    const { tenantId } = this.spec;
    const message = create(LedgerEntryRecordedSchema, {
      entitlement: {
        tenantId,
        entitlementId: this.entitlementId,
        memberId: this.spec.memberId ?? 'member-1',
        terms: {
          definitionId: this.spec.definitionId,
          definitionVersion: this.spec.definitionVersion ?? 1,
          terms: this.spec.terms,
          timeZone: this.spec.timeZone,
        },
        purchaseBranchId: this.spec.branchId,
        status: this.status,
        paidSessions: this.spec.terms.paidSessions ?? 0,
        bonusSessions: this.spec.terms.bonusSessions ?? 0,
        paidRemaining: this.paidRemaining,
        bonusRemaining: this.bonusRemaining,
        remaining: this.remaining,
        price: this.spec.terms.price,
        purchaseTime: timestampFromDate(this.spec.at),
        version: BigInt(this.version),
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
        balanceAfter: this.remaining,
        reversesEntryId: o.reverses ?? '',
        memberId: this.spec.memberId ?? 'member-1',
        entitlementVersion: BigInt(this.version),
      },
    });
    const event = EVENT_BY_KIND[kind];
    if (!event) throw new Error(`no event for ${EntryKind[kind]}`);
    return { event, tenantId, entitlementId: this.entitlementId, version: this.version, id: entryId, message };
  }
}
