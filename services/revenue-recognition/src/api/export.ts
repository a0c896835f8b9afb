import { formatAmount } from '@punchcard/money';
import { toCsv } from '../domain/csv.js';
import { marginBps, type RollForward } from '../domain/reports.js';
import type { PostedEntry } from '../store/journal.js';
import type { ProfitRowOut, RecognisedRowOut, RevenueSplitOut, RollForwardRowOut, SettlementRowOut } from '../store/reports.js';

/** CSV renderings of each report: decimal amounts in the currency's minor units, one header row. */

const ROLL_FORWARD_COLUMNS = ['opening', 'sales', 'top_ups', 'recognised', 'breakage', 'refunds', 'transfers', 'closing'] as const;

function rollForwardCells(currency: string, r: RollForward): string[] {
  const values = [r.opening, r.sales, r.topUps, r.recognised, r.breakage, r.refunds, r.transfers, r.closing];
  return values.map((v) => formatAmount(currency, v));
}

export function rollForwardCsv(currency: string, rows: readonly RollForwardRowOut[], total: RollForward): string {
  return toCsv(
    ['branch_id', 'definition_id', 'currency', ...ROLL_FORWARD_COLUMNS],
    [
      ...rows.map((r) => [r.branchId, r.definitionId, currency, ...rollForwardCells(currency, r.rollForward)]),
      ['TOTAL', '', currency, ...rollForwardCells(currency, total)],
    ],
  );
}

export function recognisedCsv(currency: string, rows: readonly RecognisedRowOut[]): string {
  return toCsv(
    ['accounting_date', 'branch_id', 'definition_id', 'currency', 'package_revenue', 'breakage_revenue', 'sessions'],
    rows.map((r) => [r.accountingDate, r.branchId, r.definitionId, currency, formatAmount(currency, r.packageRevenue), formatAmount(currency, r.breakageRevenue), r.sessions]),
  );
}

export function splitCsv(currency: string, s: RevenueSplitOut): string {
  return toCsv(
    ['currency', 'package_revenue', 'breakage_revenue', 'one_off_visit_revenue', 'package_sessions', 'one_off_visits'],
    [[currency, formatAmount(currency, s.packageRevenue), formatAmount(currency, s.breakageRevenue), formatAmount(currency, s.oneOffVisitRevenue), s.packageSessions, s.oneOffVisits]],
  );
}

export function profitCsv(currency: string, rows: readonly ProfitRowOut[]): string {
  return toCsv(
    ['definition_id', 'branch_id', 'currency', 'package_revenue', 'breakage_revenue', 'recognised', 'delivery_cost', 'profit', 'margin_bps', 'sessions'],
    rows.map((r) => {
      const recognised = r.packageRevenue + r.breakageRevenue;
      const profit = recognised - r.deliveryCost;
      return [
        r.definitionId,
        r.branchId,
        currency,
        formatAmount(currency, r.packageRevenue),
        formatAmount(currency, r.breakageRevenue),
        formatAmount(currency, recognised),
        formatAmount(currency, r.deliveryCost),
        formatAmount(currency, profit),
        marginBps(profit, recognised),
        r.sessions,
      ];
    }),
  );
}

export function journalCsv(entries: readonly PostedEntry[]): string {
  return toCsv(
    ['accounting_date', 'journal_entry_id', 'cause', 'source_id', 'entitlement_id', 'definition_id', 'line_no', 'account', 'branch_id', 'counterparty_branch_id', 'movement', 'debit', 'credit', 'currency', 'sessions', 'description'],
    entries.flatMap((e) =>
      e.lines.map((l, i) => [
        e.accountingDate,
        e.journalEntryId,
        e.cause,
        e.sourceId,
        e.entitlementId,
        e.definitionId,
        i + 1,
        l.account,
        l.branchId,
        l.counterpartyBranchId,
        l.movement ?? '',
        formatAmount(e.currency, l.debit),
        formatAmount(e.currency, l.credit),
        e.currency,
        l.sessions,
        e.description,
      ]),
    ),
  );
}

export function settlementCsv(currency: string, rows: readonly SettlementRowOut[]): string {
  return toCsv(
    ['from_branch_id', 'to_branch_id', 'currency', 'amount', 'due_from', 'sessions'],
    rows.map((r) => [r.fromBranchId, r.toBranchId, currency, formatAmount(currency, r.amount), formatAmount(currency, r.dueFrom), r.sessions]),
  );
}
