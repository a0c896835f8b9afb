import { UnbalancedEntry } from './errors.js';
import type { Account, JournalDraft, JournalLine, Movement } from './types.js';

export interface LineMeta {
  movement?: Movement;
  sessions?: number;
  deliveryCost?: bigint;
  counterpartyBranchId?: string;
}

/** A line debiting `amount` to `account`; a negative amount credits instead (the mirror image). */
export function debit(account: Account, branchId: string, amount: bigint, meta: LineMeta = {}): JournalLine {
  return {
    account,
    branchId,
    debit: amount > 0n ? amount : 0n,
    credit: amount < 0n ? -amount : 0n,
    counterpartyBranchId: meta.counterpartyBranchId ?? '',
    movement: meta.movement ?? null,
    sessions: meta.sessions ?? 0,
    deliveryCost: meta.deliveryCost ?? 0n,
  };
}

/** A line crediting `amount` to `account`; a negative amount debits instead. */
export function credit(account: Account, branchId: string, amount: bigint, meta: LineMeta = {}): JournalLine {
  return debit(account, branchId, -amount, meta);
}

export interface Side {
  account: Account;
  branchId: string;
  meta?: LineMeta;
}

/**
 * Dr `dr` / Cr `cr` for `amount`. When the two sides sit at different branches, each branch's lines
 * balance on their own through due-to / due-from: the debited branch owes the credited one
 * (Dr dr, Cr Due to) and the credited branch is owed (Dr Due from, Cr cr). A negative amount
 * gives the exact mirror image, so a reversal undoes precisely what the original posted.
 * `sessions` counts on the due lines, for the settlement report.
 */
export function transfer(dr: Side, cr: Side, amount: bigint, sessions = 0): JournalLine[] {
  if (amount === 0n) return [];
  if (dr.branchId === cr.branchId) {
    return [debit(dr.account, dr.branchId, amount, dr.meta), credit(cr.account, cr.branchId, amount, cr.meta)];
  }
  return [
    debit(dr.account, dr.branchId, amount, dr.meta),
    credit('DUE_TO_BRANCH', dr.branchId, amount, { counterpartyBranchId: cr.branchId, sessions }),
    debit('DUE_FROM_BRANCH', cr.branchId, amount, { counterpartyBranchId: dr.branchId, sessions }),
    credit(cr.account, cr.branchId, amount, cr.meta),
  ];
}

/**
 * Checks what the database checks again: every line is one-sided and positive, movements sit on
 * deferred revenue only (and always there), and debits equal credits for the entry and for each
 * branch on its own.
 */
export function assertBalanced(draft: Pick<JournalDraft, 'lines' | 'cause' | 'sourceId'>): void {
  const what = `journal entry for ${draft.cause} ${draft.sourceId}`;
  if (draft.lines.length < 2) throw new UnbalancedEntry(`${what} has ${draft.lines.length} line(s); an entry needs at least two`);
  const byBranch = new Map<string, bigint>();
  for (const [i, line] of draft.lines.entries()) {
    if (line.debit < 0n || line.credit < 0n || (line.debit === 0n) === (line.credit === 0n)) {
      throw new UnbalancedEntry(`${what}: line ${i} must have exactly one of debit and credit positive`);
    }
    if ((line.account === 'DEFERRED_REVENUE') !== (line.movement !== null)) {
      throw new UnbalancedEntry(`${what}: line ${i} movement must be set exactly on deferred revenue lines`);
    }
    if ((line.account === 'DUE_TO_BRANCH' || line.account === 'DUE_FROM_BRANCH') && !line.counterpartyBranchId) {
      throw new UnbalancedEntry(`${what}: line ${i} on ${line.account} needs a counterparty branch`);
    }
    byBranch.set(line.branchId, (byBranch.get(line.branchId) ?? 0n) + line.debit - line.credit);
  }
  for (const [branch, net] of byBranch) {
    if (net !== 0n) throw new UnbalancedEntry(`${what} does not balance at branch ${branch || '(none)'}: debits - credits = ${net}`);
  }
}

export function totalDebits(lines: readonly JournalLine[]): bigint {
  return lines.reduce((sum, l) => sum + l.debit, 0n);
}

export function totalCredits(lines: readonly JournalLine[]): bigint {
  return lines.reduce((sum, l) => sum + l.credit, 0n);
}
