/**
 * The terms a package is sold on, as plain data mirroring `punchcard.catalogue.v1.DefinitionTerms`
 * (field for field, enums as their names without prefix). `validateTerms` turns what a caller sent
 * into normalized terms: every policy present, UNSPECIFIED enums replaced by their defaults.
 */
import type { Money } from '@punchcard/money';

export type { Money };

export type ExpiryAnchor = 'UNSPECIFIED' | 'PURCHASE' | 'FIRST_USE' | 'FIXED_DATE';
export type ExpiryMode = 'UNSPECIFIED' | 'HARD' | 'SOFT';
export type TransferScope = 'UNSPECIFIED' | 'NONE' | 'HOUSEHOLD' | 'ANYONE';
export type RefundMethod = 'UNSPECIFIED' | 'PRO_RATA' | 'USED_AT_STANDALONE_PRICE' | 'NON_REFUNDABLE';
export type SessionOrder = 'UNSPECIFIED' | 'PAID_FIRST' | 'BONUS_FIRST';

/** A custom expiry rule: data the expiry scheduler evaluates. Lists combine their rules. */
export type ExpiryRule =
  | { case: 'daysAfterPurchase'; value: number }
  | { case: 'monthsAfterPurchase'; value: number }
  | { case: 'daysAfterFirstUse'; value: number }
  | { case: 'daysAfterLastUse'; value: number }
  | { case: 'fixedDate'; value: string }
  | { case: 'whicheverLater'; value: ExpiryRule[] }
  | { case: 'whicheverEarlier'; value: ExpiryRule[] }
  // Nothing chosen: only ever input, rejected by validation.
  | { case: undefined; value?: undefined };

export interface ExpiryPolicy {
  anchor: ExpiryAnchor;
  durationDays: number;
  durationMonths: number;
  fixedDate: string;
  mode: ExpiryMode;
  graceDays: number;
  rollingExtensionDays: number;
  maxFreezeDays: number;
  freezeExtendsExpiry: boolean;
  customRule?: ExpiryRule | undefined;
  reminderOffsetsDays: number[];
}

export interface TransferPolicy {
  scope: TransferScope;
  maxTransfers: number;
  undoWindowHours: number;
}

export interface SharingPolicy {
  householdPool: boolean;
  maxMembers: number;
  perMemberSessionCap: number;
}

export interface BranchPolicy {
  allBranches: boolean;
  branchIds: string[];
}

export interface RefundPolicy {
  method: RefundMethod;
  adminFee?: Money | undefined;
  refundWindowDays: number;
}

export interface UpgradePolicy {
  targetDefinitionIds: string[];
}

export interface TopUpPolicy {
  enabled: boolean;
  pricePerSession?: Money | undefined;
  extendExpiryDays: number;
}

export interface BranchDeliveryCost {
  branchId: string;
  costPerSession?: Money | undefined;
}

export interface Terms {
  code: string;
  name: string;
  description: string;
  price?: Money | undefined;
  paidSessions: number;
  bonusSessions: number;
  serviceCodes: string[];
  standalonePricePerSession?: Money | undefined;
  deliveryCostPerSession?: Money | undefined;
  deliveryCostByBranch: BranchDeliveryCost[];
  /** Absent: the package never expires. */
  expiry?: ExpiryPolicy | undefined;
  transfer?: TransferPolicy | undefined;
  sharing?: SharingPolicy | undefined;
  branches?: BranchPolicy | undefined;
  refund?: RefundPolicy | undefined;
  upgrade?: UpgradePolicy | undefined;
  topUp?: TopUpPolicy | undefined;
  expectedBreakageBps: number;
  redemptionPriority: number;
  sessionOrder: SessionOrder;
}

/** Terms after validation: every policy but expiry present, enums resolved. */
export interface NormalizedTerms extends Terms {
  price: Money;
  transfer: TransferPolicy;
  sharing: SharingPolicy;
  branches: BranchPolicy;
  refund: RefundPolicy;
  upgrade: UpgradePolicy;
  topUp: TopUpPolicy;
}

/** Total sessions the package grants: N paid plus M bonus. */
export function totalSessions(terms: Pick<Terms, 'paidSessions' | 'bonusSessions'>): number {
  return terms.paidSessions + terms.bonusSessions;
}
