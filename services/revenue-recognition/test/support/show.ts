import { Account, DeferredMovement, type JournalEntry } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { formatAmount } from '@punchcard/money';

/** "Dr DEFERRED_REVENUE@A 75.00 [RECOGNISED]", "Cr DUE_TO_BRANCH@A→B 75.00": a journal entry as an accountant reads it. */
export function showLines(entry: JournalEntry | undefined): string[] {
  if (!entry) return [];
  return entry.lines.map((l) => {
    const debit = l.debit?.amountMinor ?? 0n;
    const credit = l.credit?.amountMinor ?? 0n;
    const currency = (debit > 0n ? l.debit : l.credit)?.currencyCode ?? 'SGD';
    const side = debit > 0n ? 'Dr' : 'Cr';
    const cp = l.counterpartyBranchId ? `→${l.counterpartyBranchId}` : '';
    const movement = l.movement !== DeferredMovement.UNSPECIFIED ? ` [${DeferredMovement[l.movement]}]` : '';
    return `${side} ${Account[l.account]}@${l.branchId}${cp} ${formatAmount(currency, debit + credit)}${movement}`;
  });
}

export const amount = (m: { amountMinor: bigint; currencyCode: string } | undefined) => (m ? formatAmount(m.currencyCode, m.amountMinor) : undefined);
