/** The ledger's own vocabulary; the API and store layers map protobuf and rows to and from it. */

export type Status =
  | 'ACTIVE'
  | 'FROZEN'
  | 'IN_GRACE'
  | 'EXPIRED'
  | 'EXHAUSTED'
  | 'REFUNDED'
  | 'TRANSFERRED'
  | 'UPGRADED';

/** Statuses an entitlement never leaves. */
export const CLOSED_STATUSES: ReadonlySet<Status> = new Set(['EXPIRED', 'REFUNDED', 'TRANSFERRED', 'UPGRADED']);

export type EntryKind =
  | 'PURCHASE'
  | 'CONSUME'
  | 'REVERSAL'
  | 'EXPIRE'
  | 'EXTEND'
  | 'FREEZE'
  | 'UNFREEZE'
  | 'GRACE'
  | 'TRANSFER_OUT'
  | 'TRANSFER_IN'
  | 'TOP_UP'
  | 'UPGRADE_OUT'
  | 'UPGRADE_IN'
  | 'REFUND';

export type ExpiryAnchor = 'NONE' | 'PURCHASE' | 'FIRST_USE' | 'FIXED_DATE';

/** The part of a definition version's terms the ledger's rules read (snapshotted at purchase). */
export interface Terms {
  /** Visit types one session covers; empty = any. */
  serviceCodes: readonly string[];
  allBranches: boolean;
  /** Usable at these branches (when not all); empty = the purchase branch only. */
  branchIds: readonly string[];
  /** Lower is redeemed first. */
  redemptionPriority: number;
  sessionOrder: 'PAID_FIRST' | 'BONUS_FIRST';
  expiry: ExpiryTerms;
}

export interface ExpiryTerms {
  anchor: ExpiryAnchor;
  durationDays: number;
  durationMonths: number;
  /** YYYY-MM-DD in the purchase branch's zone, for the FIXED_DATE anchor. */
  fixedDate: string;
  mode: 'HARD' | 'SOFT';
  graceDays: number;
  rollingExtensionDays: number;
  /** 0 = freezing not allowed. */
  maxFreezeDays: number;
  freezeExtendsExpiry: boolean;
  /** A custom rule decides the expiry; the expiry scheduler evaluates it, not the ledger. */
  customRule: boolean;
}

export interface Entitlement {
  tenantId: string;
  entitlementId: string;
  memberId: string;
  definitionId: string;
  definitionVersion: number;
  terms: Terms;
  /** The purchase branch's IANA zone. */
  timeZone: string;
  purchaseBranchId: string;
  status: Status;
  paidSessions: number;
  bonusSessions: number;
  paidRemaining: number;
  bonusRemaining: number;
  purchaseTime: Date;
  activationTime: Date | null;
  expiryTime: Date | null;
  graceEndTime: Date | null;
  /** When the current freeze started. */
  frozenAt: Date | null;
  frozenUntilTime: Date | null;
  /** Days the current freeze was booked for (its expiry push, when freezes extend expiry). */
  freezePlannedDays: number;
  /** Days frozen by completed freezes. */
  frozenDays: number;
  lastUseTime: Date | null;
  version: number;
  /** Shared with this household's pool; null = only the holder may use it. */
  householdId: string | null;
  /** Transfers in this package's chain so far. */
  transferCount: number;
  /** The entitlement it came from by transfer or upgrade. */
  originEntitlementId: string | null;
  /** A refund requested or approved and not settled: the entitlement is on hold. */
  pendingRefundId: string | null;
}

/** A ledger entry as the domain decides it; the store adds ids, actor and record time. */
export interface EntryDraft {
  kind: EntryKind;
  sessionsDelta: number;
  paidDelta: number;
  bonusDelta: number;
  branchId: string;
  reason: string;
  occurredTime: Date;
  balanceAfter: number;
  entitlementVersion: number;
  inGrace: boolean;
  /** The expiry after this entry. */
  expiryTime: Date | null;
  reversesEntryId?: string;
  visitId?: string;
  serviceCode?: string;
  memberId?: string;
  /** TRANSFER_* / UPGRADE_*: the entitlement on the other side, and its paired entry. */
  counterpartEntitlementId?: string;
  counterpartEntryId?: string;
  /** The money the entry moved, in the entitlement's currency (see EntryDetail). */
  amountMinor?: bigint;
  refundId?: string;
  detail?: EntryDetail;
}

/** One session and its allocated value in minor units, in consumption order. */
export interface SessionValue {
  bonus: boolean;
  value: bigint;
}

export interface TransferDetail {
  kind: 'transfer';
  fromEntitlementId: string;
  toEntitlementId: string;
  fromMemberId: string;
  toMemberId: string;
  paid: number;
  bonus: number;
  sessions: SessionValue[];
  value: bigint;
  /** An undo: the TRANSFER_OUT entry id of the transfer it undoes. */
  undoesTransferId?: string;
}

export interface TopUpDetail {
  kind: 'top_up';
  sessions: number;
  pricePerSession: bigint;
  amountPaid: bigint;
  extendExpiryDays: number;
  paymentReference: string;
}

export interface UpgradeQuote {
  entitlementId: string;
  fromDefinitionId: string;
  fromDefinitionVersion: number;
  toDefinitionId: string;
  toDefinitionVersion: number;
  currency: string;
  remainingSessions: SessionValue[];
  credit: bigint;
  newPrice: bigint;
  amountDue: bigint;
  newPaidSessions: number;
  newBonusSessions: number;
}

export type RefundMethod = 'PRO_RATA' | 'USED_AT_STANDALONE_PRICE' | 'NON_REFUNDABLE' | 'UNSPECIFIED';

export interface RefundQuote {
  entitlementId: string;
  method: RefundMethod;
  refundable: boolean;
  reason: string;
  currency: string;
  unusedSessions: number;
  usedSessions: number;
  contractValue: bigint;
  unusedValue: bigint;
  usedAtStandalonePrice: bigint;
  gross: bigint;
  adminFee: bigint;
  amount: bigint;
  windowEndTime: Date | null;
  unused: SessionValue[];
}

/** What an entry of issue 7's operations carries besides its session movement. */
export type EntryDetail = TransferDetail | TopUpDetail | { kind: 'upgrade'; quote: UpgradeQuote } | { kind: 'refund'; quote: RefundQuote };

/** What a state change produces: the entitlement after it and the entry that records it. */
export interface Transition {
  next: Entitlement;
  entry: EntryDraft;
}

export function remaining(e: Pick<Entitlement, 'paidRemaining' | 'bonusRemaining'>): number {
  return e.paidRemaining + e.bonusRemaining;
}

/** The features (plan tier capabilities) the ledger enforces, by their catalogue names. */
export type Feature = 'AUTO_DEDUCTION' | 'MULTI_BRANCH' | 'SOFT_EXPIRY' | 'TRANSFER' | 'SHARING' | 'TOP_UP' | 'UPGRADE' | 'REFUNDS';

export interface TenantFacts {
  tenantId: string;
  features: ReadonlySet<string>;
}
