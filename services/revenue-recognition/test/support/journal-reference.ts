import { sql, type Kysely, type RawBuilder } from 'kysely';
import { rollForwardRow, type RollForward } from '../../src/domain/reports.js';
import type { ReportScope } from '../../src/store/reports.js';
import type { RevenueDb } from '../../src/store/schema.js';

export interface ReferenceRow {
  branchId: string;
  definitionId: string;
  rollForward: RollForward;
}

/**
 * The liability roll-forward summed straight from journal_line, every deferred line of the scope up to
 * the period's end: the query the report ran before it kept balances, and what it must still equal.
 */
export async function rollForwardFromJournal(db: Kysely<RevenueDb>, s: ReportScope): Promise<{ rows: ReferenceRow[]; total: RollForward }> {
  const { rows } = await sql<{
    branch_id: string;
    definition_id: string;
    opening: string;
    sale: string;
    top_up: string;
    recognised: string;
    breakage: string;
    refund: string;
    transfer: string;
    closing: string;
    moved: boolean;
  }>`
    select branch_id, definition_id,
           coalesce(sum(credit_minor - debit_minor) filter (where accounting_date < ${s.period.start}::date), 0)::text as opening,
           ${sql.join(
             ['SALE', 'TOP_UP', 'RECOGNISED', 'BREAKAGE', 'REFUND', 'TRANSFER'].map(
               (m) => sql`coalesce(sum(credit_minor - debit_minor) filter (where accounting_date >= ${s.period.start}::date and movement = ${m}), 0)::text as ${sql.ref(m.toLowerCase())}`,
             ),
           )},
           coalesce(sum(credit_minor - debit_minor), 0)::text as closing,
           bool_or(accounting_date >= ${s.period.start}::date) as moved
      from journal_line
     where tenant_id = ${s.tenantId} and currency = ${s.currency} and account = 'DEFERRED_REVENUE'
       and accounting_date < ${s.period.end}::date
       and (${s.branchId ?? null}::text is null or branch_id = ${s.branchId ?? null})
       and (${s.definitionId ?? null}::text is null or definition_id = ${s.definitionId ?? null})
     group by branch_id, definition_id
     order by branch_id, definition_id`.execute(db);
  const all = rows.map((r) => ({
    branchId: r.branch_id,
    definitionId: r.definition_id,
    moved: r.moved,
    rollForward: rollForwardRow(
      BigInt(r.opening),
      { SALE: BigInt(r.sale), TOP_UP: BigInt(r.top_up), RECOGNISED: BigInt(r.recognised), BREAKAGE: BigInt(r.breakage), REFUND: BigInt(r.refund), TRANSFER: BigInt(r.transfer) },
      BigInt(r.closing),
    ),
  }));
  const total = all.reduce<RollForward>(
    (t, { rollForward: r }) => ({
      opening: t.opening + r.opening,
      sales: t.sales + r.sales,
      topUps: t.topUps + r.topUps,
      recognised: t.recognised + r.recognised,
      breakage: t.breakage + r.breakage,
      refunds: t.refunds + r.refunds,
      transfers: t.transfers + r.transfers,
      closing: t.closing + r.closing,
    }),
    { opening: 0n, sales: 0n, topUps: 0n, recognised: 0n, breakage: 0n, refunds: 0n, transfers: 0n, closing: 0n },
  );
  return {
    rows: all.filter((r) => r.moved || r.rollForward.opening !== 0n).map(({ branchId, definitionId, rollForward }) => ({ branchId, definitionId, rollForward })),
    total,
  };
}

/** The kept balances, and the same aggregated from journal_line, as comparable text rows. */
export async function balancesAndJournal(db: Kysely<RevenueDb>): Promise<{ days: string[]; daysFromJournal: string[]; months: string[]; monthsFromJournal: string[] }> {
  const text = async (q: RawBuilder<{ r: string }>) => (await q.execute(db)).rows.map((x) => x.r);
  return {
    days: await text(sql<{ r: string }>`
      select concat_ws('|', tenant_id, currency, accounting_date, branch_id, definition_id, movement, net_credit_minor) as r
        from deferred_revenue_day order by tenant_id, currency, accounting_date, branch_id, definition_id, movement`),
    daysFromJournal: await text(sql<{ r: string }>`
      select concat_ws('|', tenant_id, currency, accounting_date, branch_id, definition_id, movement, sum(credit_minor - debit_minor)) as r
        from journal_line where account = 'DEFERRED_REVENUE'
       group by tenant_id, currency, accounting_date, branch_id, definition_id, movement
       order by tenant_id, currency, accounting_date, branch_id, definition_id, movement`),
    months: await text(sql<{ r: string }>`
      select concat_ws('|', tenant_id, currency, branch_id, definition_id, month, net_credit_minor) as r
        from deferred_revenue_month order by tenant_id, currency, branch_id, definition_id, month`),
    monthsFromJournal: await text(sql<{ r: string }>`
      select concat_ws('|', tenant_id, currency, branch_id, definition_id, date_trunc('month', accounting_date)::date, sum(credit_minor - debit_minor)) as r
        from journal_line where account = 'DEFERRED_REVENUE'
       group by tenant_id, currency, branch_id, definition_id, date_trunc('month', accounting_date)
       order by tenant_id, currency, branch_id, definition_id, date_trunc('month', accounting_date)`),
  };
}
