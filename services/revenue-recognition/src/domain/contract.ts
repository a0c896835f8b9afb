import { formatAmount } from '@punchcard/money';
import { allocateSessions, sessionKinds } from './allocation.js';
import { breakageTarget } from './breakage.js';
import { RevenueRuleError } from './errors.js';
import { assertBalanced, credit, debit, transfer } from './journal.js';
import {
  CLOSED_STATUSES,
  type EarningRule,
  type EntitlementStatus,
  type JournalDraft,
  type JournalLine,
  type Recognition,
  type SessionOrder,
} from './types.js';

/** Who consumed a session, and so which line a reversal must undo. */
export interface ConsumedBy {
  entryId: string;
  earningBranchId: string;
  deliveringBranchId: string;
  deliveryCost: bigint;
}

export interface ContractSession {
  /** 1-based, in the order the ledger consumes them (paid first unless the definition says otherwise). */
  number: number;
  bonus: boolean;
  /** Allocated value in minor units. */
  value: bigint;
  /** The contract line (purchase, top-up …) the session came with. */
  line: number;
  /** Left the contract (refunded, transferred or upgraded away). */
  removed: boolean;
  consumedBy: ConsumedBy | null;
}

export type ContractLineKind = 'PURCHASE' | 'TOP_UP' | 'TRANSFER_IN' | 'UPGRADE_IN';

export interface ContractLine {
  line: number;
  kind: ContractLineKind;
  /** The ledger entry that added it. */
  sourceId: string;
  amount: bigint;
  sessions: number;
}

export interface DeliveryCosts {
  perSession: bigint;
  byBranch: Readonly<Record<string, bigint>>;
}

/** An entitlement's contract: its value allocated over its sessions, and what has been recognised. */
export interface Contract {
  tenantId: string;
  entitlementId: string;
  definitionId: string;
  definitionVersion: number;
  memberId: string;
  currency: string;
  /** The branch that sold the package and carries its deferred revenue. */
  liabilityBranchId: string;
  /** Expected breakage (proportional method); 0 = breakage at expiry. */
  breakageBps: number;
  sessionOrder: SessionOrder;
  standalonePrice: bigint;
  costs: DeliveryCosts;
  status: EntitlementStatus;
  lines: ContractLine[];
  sessions: ContractSession[];
  packageRecognised: bigint;
  breakageRecognised: bigint;
}

export interface PostingContext {
  earningRule: EarningRule;
  /** The accounting date of `at` in the time zone of `branchId`. */
  accountingDate(branchId: string, at: Date): string;
}

/** What the ledger reported, reduced to what revenue needs. `status` is the entitlement's after the entry. */
interface Base {
  entryId: string;
  at: Date;
  /** Where it happened (for a consume: the delivering branch); empty = the purchase branch. */
  branchId: string;
  status: EntitlementStatus;
}

/**
 * The ledger's own figure for the value leaving a contract (the sessions transferred, an upgrade's
 * credit, a refund's unused value). The ledger values sessions by the same allocation rule; when the
 * contract disagrees the movement is refused rather than booked at either number.
 */
interface LeavingValue {
  ledgerValue?: bigint;
}

export type ContractEvent =
  | (Base & { kind: 'CONSUME'; bonus: boolean | null })
  | (Base & { kind: 'REVERSAL'; reversesEntryId: string })
  | (Base & { kind: 'STATUS'; cause: string })
  | (Base & { kind: 'TOP_UP'; paid: number; bonus: number; amount: bigint })
  | (Base & LeavingValue & { kind: 'REFUND'; amount: bigint })
  | (Base & LeavingValue & { kind: 'TRANSFER_OUT'; paid: number; bonus: number; either: number })
  | (Base & LeavingValue & { kind: 'UPGRADE_OUT' });

/** Journal causes, named after the event that carried them. */
export const CAUSE = {
  PURCHASE: 'ledger.entitlement_purchased',
  CONSUME: 'ledger.session_consumed',
  REVERSAL: 'ledger.consume_reversed',
  TOP_UP: 'ledger.topped_up',
  REFUND: 'ledger.refunded',
  TRANSFER_OUT: 'ledger.transferred_out',
  TRANSFER_IN: 'ledger.transferred_in',
  UPGRADE_OUT: 'ledger.upgraded_out',
  UPGRADE_IN: 'ledger.upgraded_in',
  ONE_OFF_VISIT: 'visits.visit_completed',
  ONE_OFF_VISIT_CANCELLED: 'visits.visit_cancelled',
} as const;

export interface Posting {
  contract: Contract;
  /** Null when the event moved no money (a freeze, an extension …). */
  draft: JournalDraft | null;
}

// ---------------------------------------------------------------------------------------------
// Derived figures

/** Value of the sessions still in the contract (consumed or not). */
export function contractValue(c: Contract): bigint {
  return c.sessions.reduce((sum, s) => (s.removed ? sum : sum + s.value), 0n);
}

/** Value of the sessions consumed and not reversed: what package revenue has recognised. */
export function redeemedValue(c: Contract): bigint {
  return c.sessions.reduce((sum, s) => (s.consumedBy && !s.removed ? sum + s.value : sum), 0n);
}

export function deferredBalance(c: Contract): bigint {
  return contractValue(c) - c.packageRecognised - c.breakageRecognised;
}

export function isClosed(c: Contract): boolean {
  return CLOSED_STATUSES.has(c.status);
}

export function openSessions(c: Contract): ContractSession[] {
  return c.sessions.filter((s) => !s.removed && !s.consumedBy);
}

export function deliveryCostAt(costs: DeliveryCosts, branchId: string): bigint {
  return costs.byBranch[branchId] ?? costs.perSession;
}

export function earningBranch(rule: EarningRule, purchaseBranchId: string, deliveringBranchId: string): string {
  return rule === 'PURCHASING_BRANCH' ? purchaseBranchId : deliveringBranchId || purchaseBranchId;
}

// ---------------------------------------------------------------------------------------------
// Opening a contract

export interface ContractTerms {
  tenantId: string;
  entitlementId: string;
  definitionId: string;
  definitionVersion: number;
  memberId: string;
  currency: string;
  liabilityBranchId: string;
  breakageBps: number;
  sessionOrder: SessionOrder;
  standalonePrice: bigint;
  costs: DeliveryCosts;
}

export interface PurchaseInput extends ContractTerms {
  entryId: string;
  at: Date;
  status: EntitlementStatus;
  price: bigint;
  paidSessions: number;
  bonusSessions: number;
}

/** A sale: Dr Cash, Cr Deferred revenue for the price, allocated over every session. */
export function purchase(input: PurchaseInput, ctx: PostingContext): Posting {
  if (!input.liabilityBranchId) throw new RevenueRuleError('entitlement.purchase_branch_id', 'is required');
  const empty = emptyContract(input, input.status);
  const { contract, added } = addSessions(empty, 'PURCHASE', input.entryId, input.price, input.paidSessions, input.bonusSessions);
  const L = contract.liabilityBranchId;
  const lines = transfer({ account: 'CASH', branchId: L }, { account: 'DEFERRED_REVENUE', branchId: L, meta: { movement: 'SALE' } }, input.price);
  return post(contract, ctx, {
    cause: CAUSE.PURCHASE,
    sourceId: input.entryId,
    branchId: L,
    at: input.at,
    description: `Sale: ${added} sessions (${input.paidSessions} paid + ${input.bonusSessions} bonus) for ${money(contract, input.price)}`,
    lines,
  });
}

export interface TransferInInput extends ContractTerms {
  entryId: string;
  at: Date;
  status: EntitlementStatus;
  /** The sessions (with their allocated values) the transferring contract gave up, in order. */
  sessions: readonly { bonus: boolean; value: bigint }[];
}

/**
 * Hook for transfers: the new holder's contract takes over the sessions with exactly the values they
 * had (Dr Transfer clearing, Cr Deferred revenue); nothing is recognised by a transfer.
 */
export function transferIn(input: TransferInInput, ctx: PostingContext): Posting {
  const empty = emptyContract(input, input.status);
  const amount = input.sessions.reduce((sum, s) => sum + s.value, 0n);
  const contract: Contract = {
    ...empty,
    lines: [{ line: 0, kind: 'TRANSFER_IN', sourceId: input.entryId, amount, sessions: input.sessions.length }],
    sessions: input.sessions.map((s, i) => ({ number: i + 1, bonus: s.bonus, value: s.value, line: 0, removed: false, consumedBy: null })),
  };
  const L = contract.liabilityBranchId;
  return post(contract, ctx, {
    cause: CAUSE.TRANSFER_IN,
    sourceId: input.entryId,
    branchId: L,
    at: input.at,
    description: `Transfer in: ${input.sessions.length} sessions worth ${money(contract, amount)}`,
    lines: transfer({ account: 'TRANSFER_CLEARING', branchId: L }, { account: 'DEFERRED_REVENUE', branchId: L, meta: { movement: 'TRANSFER' } }, amount),
  });
}

export interface UpgradeInInput extends ContractTerms {
  entryId: string;
  at: Date;
  status: EntitlementStatus;
  /** Unrecognised value carried over from the upgraded contract (its upgrade-out released it). */
  credit: bigint;
  /** What the member paid on top. */
  cash: bigint;
  paidSessions: number;
  bonusSessions: number;
}

/**
 * Hook for upgrades: the credit plus the new cash is allocated prospectively over the new sessions
 * (Dr Transfer clearing for the credit, Dr Cash for the difference, Cr Deferred revenue for both).
 */
export function upgradeIn(input: UpgradeInInput, ctx: PostingContext): Posting {
  if (input.credit < 0n) throw new RevenueRuleError('credit', `must not be negative, got ${input.credit}`);
  if (input.cash < 0n) throw new RevenueRuleError('cash', `must not be negative, got ${input.cash}`);
  const empty = emptyContract(input, input.status);
  const amount = input.credit + input.cash;
  const { contract, added } = addSessions(empty, 'UPGRADE_IN', input.entryId, amount, input.paidSessions, input.bonusSessions);
  const L = contract.liabilityBranchId;
  const deferred = (movement: 'TRANSFER' | 'SALE') => ({ account: 'DEFERRED_REVENUE' as const, branchId: L, meta: { movement } });
  return post(contract, ctx, {
    cause: CAUSE.UPGRADE_IN,
    sourceId: input.entryId,
    branchId: L,
    at: input.at,
    description: `Upgrade in: ${added} sessions for ${money(contract, input.credit)} credit + ${money(contract, input.cash)} paid`,
    lines: [
      ...transfer({ account: 'TRANSFER_CLEARING', branchId: L }, deferred('TRANSFER'), input.credit),
      ...transfer({ account: 'CASH', branchId: L }, deferred('SALE'), input.cash),
    ],
  });
}

function emptyContract(t: ContractTerms, status: EntitlementStatus): Contract {
  return {
    tenantId: t.tenantId,
    entitlementId: t.entitlementId,
    definitionId: t.definitionId,
    definitionVersion: t.definitionVersion,
    memberId: t.memberId,
    currency: t.currency,
    liabilityBranchId: t.liabilityBranchId,
    breakageBps: t.breakageBps,
    sessionOrder: t.sessionOrder,
    standalonePrice: t.standalonePrice,
    costs: t.costs,
    status,
    lines: [],
    sessions: [],
    packageRecognised: 0n,
    breakageRecognised: 0n,
  };
}

/** Appends a contract line with its own allocation, numbering its sessions after the existing ones. */
function addSessions(
  c: Contract,
  kind: ContractLineKind,
  sourceId: string,
  amount: bigint,
  paid: number,
  bonus: number,
): { contract: Contract; added: number } {
  const kinds = sessionKinds(paid, bonus, c.sessionOrder);
  const values = allocateSessions(
    amount,
    kinds.map((b) => ({ bonus: b, standalone: c.standalonePrice })),
  );
  const line = c.lines.length;
  const first = c.sessions.length + 1;
  const sessions = kinds.map((b, i) => ({ number: first + i, bonus: b, value: values[i]!, line, removed: false, consumedBy: null }));
  return {
    contract: {
      ...c,
      lines: [...c.lines, { line, kind, sourceId, amount, sessions: kinds.length }],
      sessions: [...c.sessions, ...sessions],
    },
    added: kinds.length,
  };
}

// ---------------------------------------------------------------------------------------------
// Movements of an open contract

/** Applies one ledger event to a contract and returns the journal entry it posts, if any. */
export function apply(c: Contract, event: ContractEvent, ctx: PostingContext): Posting {
  switch (event.kind) {
    case 'CONSUME':
      return consume(c, event, ctx);
    case 'REVERSAL':
      return reverse(c, event, ctx);
    case 'STATUS':
      return post({ ...c, status: event.status }, ctx, {
        cause: event.cause,
        sourceId: event.entryId,
        branchId: c.liabilityBranchId,
        at: event.at,
        description: `Status ${event.status}`,
        lines: [],
      });
    case 'TOP_UP':
      return topUp(c, event, ctx);
    case 'REFUND':
      return refund(c, event, ctx);
    case 'TRANSFER_OUT':
      return transferOut(c, event, ctx).posting;
    case 'UPGRADE_OUT':
      return upgradeOut(c, event, ctx).posting;
  }
}

/**
 * A consumed session: the lowest-numbered open session of the kind the ledger consumed recognises its
 * allocated value. Dr Deferred revenue at the selling branch, Cr Package revenue at the earning branch
 * (due-to / due-from between them when they differ).
 */
function consume(c: Contract, e: Extract<ContractEvent, { kind: 'CONSUME' }>, ctx: PostingContext): Posting {
  if (c.sessions.some((s) => s.consumedBy?.entryId === e.entryId)) {
    throw new RevenueRuleError('entry.entry_id', `consume ${e.entryId} was already applied to entitlement ${c.entitlementId}`);
  }
  const candidates = openSessions(c).filter((s) => e.bonus === null || s.bonus === e.bonus);
  const session = candidates[0];
  if (!session) {
    const what = e.bonus === null ? 'session' : e.bonus ? 'bonus session' : 'paid session';
    throw new RevenueRuleError('entry.sessions_delta', `entitlement ${c.entitlementId} has no unconsumed ${what} left to recognise`);
  }
  const delivering = e.branchId || c.liabilityBranchId;
  const by: ConsumedBy = {
    entryId: e.entryId,
    earningBranchId: earningBranch(ctx.earningRule, c.liabilityBranchId, delivering),
    deliveringBranchId: delivering,
    deliveryCost: deliveryCostAt(c.costs, delivering),
  };
  const next: Contract = {
    ...c,
    status: e.status,
    sessions: c.sessions.map((s) => (s.number === session.number ? { ...s, consumedBy: by } : s)),
    packageRecognised: c.packageRecognised + session.value,
  };
  return post(next, ctx, {
    cause: CAUSE.CONSUME,
    sourceId: e.entryId,
    branchId: delivering,
    at: e.at,
    description: `Session ${session.number} of ${c.sessions.length}${session.bonus ? ' (bonus)' : ''} delivered at ${delivering}: ${money(c, session.value)}`,
    lines: recognitionLines(c, by, session.value, 1),
    recognitions: [{ kind: 'package', branchId: by.earningBranchId, amount: session.value }],
  });
}

/** A reversal posts the exact mirror of the consumed session's lines and frees that session again. */
function reverse(c: Contract, e: Extract<ContractEvent, { kind: 'REVERSAL' }>, ctx: PostingContext): Posting {
  const session = c.sessions.find((s) => s.consumedBy?.entryId === e.reversesEntryId);
  if (!session?.consumedBy) {
    throw new RevenueRuleError('entry.reverses_entry_id', `no consumed session of entitlement ${c.entitlementId} was recorded for entry ${e.reversesEntryId}`);
  }
  const by = session.consumedBy;
  const next: Contract = {
    ...c,
    status: e.status,
    sessions: c.sessions.map((s) => (s.number === session.number ? { ...s, consumedBy: null } : s)),
    packageRecognised: c.packageRecognised - session.value,
  };
  return post(next, ctx, {
    cause: CAUSE.REVERSAL,
    sourceId: e.entryId,
    branchId: e.branchId || by.deliveringBranchId,
    at: e.at,
    description: `Reversal of session ${session.number} (consume ${by.entryId}) at ${by.deliveringBranchId}: ${money(c, -session.value)}`,
    lines: recognitionLines(c, by, -session.value, -1),
    recognitions: [{ kind: 'package', branchId: by.earningBranchId, amount: -session.value }],
  });
}

function recognitionLines(c: Contract, by: ConsumedBy, amount: bigint, sessions: number): JournalLine[] {
  return transfer(
    { account: 'DEFERRED_REVENUE', branchId: c.liabilityBranchId, meta: { movement: 'RECOGNISED' } },
    { account: 'PACKAGE_REVENUE', branchId: by.earningBranchId, meta: { sessions, deliveryCost: by.deliveryCost * BigInt(sessions) } },
    amount,
    sessions,
  );
}

/** Hook for top-ups: the added sessions get their own contract line and allocation; Dr Cash, Cr Deferred revenue. */
function topUp(c: Contract, e: Extract<ContractEvent, { kind: 'TOP_UP' }>, ctx: PostingContext): Posting {
  const { contract, added } = addSessions(c, 'TOP_UP', e.entryId, e.amount, e.paid, e.bonus);
  const where = e.branchId || c.liabilityBranchId;
  return post({ ...contract, status: e.status }, ctx, {
    cause: CAUSE.TOP_UP,
    sourceId: e.entryId,
    branchId: where,
    at: e.at,
    description: `Top-up: ${added} sessions for ${money(c, e.amount)}`,
    lines: transfer({ account: 'CASH', branchId: where }, { account: 'DEFERRED_REVENUE', branchId: c.liabilityBranchId, meta: { movement: 'TOP_UP' } }, e.amount),
  });
}

/**
 * Hook for refunds: the unused sessions leave the contract; their value is released from deferred
 * revenue (Dr), the refund owed is Cr Refunds payable, and the difference is a refund gain (Cr) or
 * loss (Dr). Breakage recognised so far is undone by the closing true-up, as nothing will break.
 */
function refund(c: Contract, e: Extract<ContractEvent, { kind: 'REFUND' }>, ctx: PostingContext): Posting {
  if (e.amount < 0n) throw new RevenueRuleError('refund_amount', `must not be negative, got ${e.amount}`);
  const released = openSessions(c).reduce((sum, s) => sum + s.value, 0n);
  agree(c, e, 'entry.refund.unused_value', released);
  const L = c.liabilityBranchId;
  const next: Contract = { ...c, status: e.status, sessions: c.sessions.map((s) => (s.consumedBy ? s : { ...s, removed: true })) };
  const lines = [
    ...(released === 0n ? [] : [debit('DEFERRED_REVENUE', L, released, { movement: 'REFUND' })]),
    ...(e.amount === 0n ? [] : [credit('REFUNDS_PAYABLE', L, e.amount)]),
    ...(released === e.amount ? [] : [credit('REFUND_GAIN_OR_LOSS', L, released - e.amount)]),
  ];
  return post(next, ctx, {
    cause: CAUSE.REFUND,
    sourceId: e.entryId,
    branchId: L,
    at: e.at,
    description: `Refund of ${money(c, e.amount)} for unused sessions worth ${money(c, released)}`,
    lines,
  });
}

/**
 * Hook for transfers: the sessions moved (the highest-numbered unused ones of each kind) leave with
 * their allocated value (Dr Deferred revenue, Cr Transfer clearing); the receiving contract's
 * {@link transferIn} takes them over.
 */
export function transferOut(
  c: Contract,
  e: Extract<ContractEvent, { kind: 'TRANSFER_OUT' }>,
  ctx: PostingContext,
): { posting: Posting; moved: { bonus: boolean; value: bigint }[] } {
  const open = [...openSessions(c)].reverse();
  const take = (pred: (s: ContractSession) => boolean, n: number, taken: Set<number>) => {
    const picked = open.filter((s) => pred(s) && !taken.has(s.number)).slice(0, n);
    if (picked.length < n) throw new RevenueRuleError('entry.sessions_delta', `entitlement ${c.entitlementId} has fewer than ${n} unused sessions to transfer`);
    for (const s of picked) taken.add(s.number);
  };
  const taken = new Set<number>();
  take((s) => !s.bonus, e.paid, taken);
  take((s) => s.bonus, e.bonus, taken);
  take(() => true, e.either, taken);
  const moved = c.sessions.filter((s) => taken.has(s.number)).map((s) => ({ bonus: s.bonus, value: s.value }));
  const value = moved.reduce((sum, s) => sum + s.value, 0n);
  agree(c, e, 'entry.amount', value);
  const L = c.liabilityBranchId;
  const next: Contract = { ...c, status: e.status, sessions: c.sessions.map((s) => (taken.has(s.number) ? { ...s, removed: true } : s)) };
  const posting = post(next, ctx, {
    cause: CAUSE.TRANSFER_OUT,
    sourceId: e.entryId,
    branchId: L,
    at: e.at,
    description: `Transfer out: ${moved.length} sessions worth ${money(c, value)}`,
    lines: transfer({ account: 'DEFERRED_REVENUE', branchId: L, meta: { movement: 'TRANSFER' } }, { account: 'TRANSFER_CLEARING', branchId: L }, value),
  });
  return { posting, moved };
}

/**
 * Hook for upgrades: every unused session leaves; their value becomes the credit the new contract's
 * {@link upgradeIn} receives (Dr Deferred revenue, Cr Transfer clearing). The clearing sits at the
 * branch that sold the upgrade (where the new contract carries the liability), so clearing nets out
 * per branch; an upgrade sold elsewhere leaves the old branch owing the new one the credit.
 */
export function upgradeOut(c: Contract, e: Extract<ContractEvent, { kind: 'UPGRADE_OUT' }>, ctx: PostingContext): { posting: Posting; credit: bigint } {
  const value = openSessions(c).reduce((sum, s) => sum + s.value, 0n);
  agree(c, e, 'entry.amount', value);
  const L = c.liabilityBranchId;
  const next: Contract = { ...c, status: e.status, sessions: c.sessions.map((s) => (s.consumedBy ? s : { ...s, removed: true })) };
  const posting = post(next, ctx, {
    cause: CAUSE.UPGRADE_OUT,
    sourceId: e.entryId,
    branchId: L,
    at: e.at,
    description: `Upgrade out: unused sessions worth ${money(c, value)} credited to the new package`,
    lines: transfer({ account: 'DEFERRED_REVENUE', branchId: L, meta: { movement: 'TRANSFER' } }, { account: 'TRANSFER_CLEARING', branchId: e.branchId || L }, value),
  });
  return { posting, credit: value };
}

function agree(c: Contract, e: LeavingValue & { entryId: string }, field: string, value: bigint): void {
  if (e.ledgerValue !== undefined && e.ledgerValue !== value) {
    throw new RevenueRuleError(
      field,
      `the ledger values what leaves entitlement ${c.entitlementId} with entry ${e.entryId} at ${money(c, e.ledgerValue)}, its contract at ${money(c, value)}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Posting

interface PostInput {
  cause: string;
  sourceId: string;
  /** Whose time zone dates the entry. */
  branchId: string;
  at: Date;
  description: string;
  lines: JournalLine[];
  recognitions?: Recognition[];
}

/**
 * Adds the breakage true-up every movement ends with (so breakage is always a function of the
 * contract's state: the proportional estimate while open, everything unredeemed once closed),
 * then builds and checks the entry.
 */
function post(c: Contract, ctx: PostingContext, input: PostInput): Posting {
  const target = breakageTarget(contractValue(c), redeemedValue(c), c.breakageBps, isClosed(c));
  const delta = target - c.breakageRecognised;
  const L = c.liabilityBranchId;
  const lines = [
    ...input.lines,
    ...transfer({ account: 'DEFERRED_REVENUE', branchId: L, meta: { movement: 'BREAKAGE' } }, { account: 'BREAKAGE_REVENUE', branchId: L }, delta),
  ];
  const recognitions = [...(input.recognitions ?? []), ...(delta === 0n ? [] : [{ kind: 'breakage' as const, branchId: L, amount: delta }])];
  const contract: Contract = { ...c, breakageRecognised: target };
  if (deferredBalance(contract) < 0n) {
    throw new RevenueRuleError('entitlement', `entitlement ${c.entitlementId} would carry negative deferred revenue ${deferredBalance(contract)}`);
  }
  if (lines.length === 0) return { contract, draft: null };
  const description = delta === 0n ? input.description : `${input.description}; breakage ${money(c, delta)}`;
  const draft: JournalDraft = {
    tenantId: c.tenantId,
    cause: input.cause,
    sourceId: input.sourceId,
    entitlementId: c.entitlementId,
    definitionId: c.definitionId,
    currency: c.currency,
    accountingDate: ctx.accountingDate(input.branchId, input.at),
    description,
    lines,
    recognitions,
  };
  assertBalanced(draft);
  return { contract, draft };
}

function money(c: Contract, amount: bigint): string {
  return `${c.currency} ${formatAmount(c.currency, amount)}`;
}
