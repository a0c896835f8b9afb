/** Revenue recognition's own vocabulary; api/ and events/ map protobuf to and from it. */

export type Account =
  | 'CASH'
  | 'DEFERRED_REVENUE'
  | 'PACKAGE_REVENUE'
  | 'BREAKAGE_REVENUE'
  | 'REFUNDS_PAYABLE'
  | 'DUE_FROM_BRANCH'
  | 'DUE_TO_BRANCH'
  | 'VISIT_REVENUE'
  | 'REFUND_GAIN_OR_LOSS'
  | 'TRANSFER_CLEARING';

/**
 * The roll-forward column a deferred-revenue line belongs to. Every deferred line has exactly one,
 * so opening + movements = closing holds by construction.
 */
export type Movement = 'SALE' | 'TOP_UP' | 'RECOGNISED' | 'BREAKAGE' | 'REFUND' | 'TRANSFER';

export interface JournalLine {
  account: Account;
  branchId: string;
  /** Minor units; exactly one of debit and credit is positive, the other zero. */
  debit: bigint;
  credit: bigint;
  /** For due-to / due-from lines: the other branch. */
  counterpartyBranchId: string;
  /** Deferred-revenue lines only. */
  movement: Movement | null;
  /** Sessions this line counts for reports: +1 consumed / one-off visit, -1 reversed / cancelled. */
  sessions: number;
  /** On package revenue lines: the delivery cost of the session(s), signed like `sessions`. */
  deliveryCost: bigint;
}

export type RecognitionKind = 'package' | 'breakage' | 'one_off_visit';

/** Revenue an entry recognised (negative when it un-recognises), for `revenue.recognized`. */
export interface Recognition {
  kind: RecognitionKind;
  branchId: string;
  amount: bigint;
}

/** A journal entry before it is stored: balanced, immutable once posted. */
export interface JournalDraft {
  tenantId: string;
  /** What caused it, e.g. `ledger.session_consumed`. */
  cause: string;
  /** The ledger entry id or visit id it records; (tenant, cause, source) is unique. */
  sourceId: string;
  entitlementId: string;
  definitionId: string;
  currency: string;
  /** YYYY-MM-DD in the time zone of the branch where it happened. */
  accountingDate: string;
  description: string;
  lines: JournalLine[];
  recognitions: Recognition[];
}

export type EarningRule = 'DELIVERING_BRANCH' | 'PURCHASING_BRANCH';

export type SessionOrder = 'PAID_FIRST' | 'BONUS_FIRST';

/** An entitlement's status as the ledger reports it. */
export type EntitlementStatus =
  | 'ACTIVE'
  | 'FROZEN'
  | 'IN_GRACE'
  | 'EXPIRED'
  | 'EXHAUSTED'
  | 'REFUNDED'
  | 'TRANSFERRED'
  | 'UPGRADED';

/** Statuses in which no remaining session can be used any more: what is left is breakage. */
export const CLOSED_STATUSES: ReadonlySet<EntitlementStatus> = new Set(['EXPIRED', 'REFUNDED', 'TRANSFERRED', 'UPGRADED']);
