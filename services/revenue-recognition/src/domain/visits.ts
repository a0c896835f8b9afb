import { RevenueRuleError } from './errors.js';
import { assertBalanced, credit, debit } from './journal.js';
import type { JournalDraft, JournalLine } from './types.js';
import { CAUSE } from './contract.js';

export interface OneOffVisit {
  tenantId: string;
  visitId: string;
  branchId: string;
  currency: string;
  price: bigint;
  accountingDate: string;
}

/** A visit paid one-off, outside any package: Dr Cash, Cr Visit revenue at the branch, recognised at once. */
export function oneOffVisit(v: OneOffVisit): JournalDraft {
  if (!v.visitId) throw new RevenueRuleError('visit_id', 'is required');
  if (!v.branchId) throw new RevenueRuleError('branch_id', 'is required for a one-off visit');
  if (v.price <= 0n) throw new RevenueRuleError('price', `a one-off visit needs a positive price, got ${v.price}`);
  const draft: JournalDraft = {
    tenantId: v.tenantId,
    cause: CAUSE.ONE_OFF_VISIT,
    sourceId: v.visitId,
    entitlementId: '',
    definitionId: '',
    currency: v.currency,
    accountingDate: v.accountingDate,
    description: `One-off visit ${v.visitId} at ${v.branchId}`,
    lines: [debit('CASH', v.branchId, v.price), credit('VISIT_REVENUE', v.branchId, v.price, { sessions: 1 })],
    recognitions: [{ kind: 'one_off_visit', branchId: v.branchId, amount: v.price }],
  };
  assertBalanced(draft);
  return draft;
}

/** The exact mirror of an entry's lines: every debit becomes a credit, counts change sign. */
export function mirrorLines(lines: readonly JournalLine[]): JournalLine[] {
  return lines.map((l) => ({ ...l, debit: l.credit, credit: l.debit, sessions: -l.sessions, deliveryCost: -l.deliveryCost }));
}

/** A cancelled one-off visit: the mirror of the visit's entry, dated when the cancellation happened. */
export function oneOffVisitCancelled(original: JournalDraft, accountingDate: string, reason: string): JournalDraft {
  const draft: JournalDraft = {
    ...original,
    cause: CAUSE.ONE_OFF_VISIT_CANCELLED,
    accountingDate,
    description: `Cancelled one-off visit ${original.sourceId}${reason ? `: ${reason}` : ''}`,
    lines: mirrorLines(original.lines),
    recognitions: original.recognitions.map((r) => ({ ...r, amount: -r.amount })),
  };
  assertBalanced(draft);
  return draft;
}
