import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { DateRange } from '../domain/calendar.js';
import { rollForwardRow, type RollForward } from '../domain/reports.js';
import { linesOf, toPosted, type NumberedEntry } from './journal.js';
import type { RevenueDb } from './schema.js';

/** Every report is one tenant's, in one currency (the tenant's), over accounting dates [start, end). */
export interface ReportScope {
  tenantId: string;
  currency: string;
  period: DateRange;
  branchId?: string;
  definitionId?: string;
}

const sumOf = (expr: RawBuilder<unknown>) => sql<bigint>`coalesce(sum(${expr}), 0)::bigint`;
const sumWhere = (expr: RawBuilder<unknown>, condition: RawBuilder<unknown>) => sql<bigint>`coalesce(sum(${expr}) filter (where ${condition}), 0)::bigint`;
const net = sql`credit_minor - debit_minor`;

function scoped(db: Kysely<RevenueDb>, s: ReportScope, accounts: readonly string[], from: 'opening' | 'period') {
  let q = db
    .selectFrom('journal_line')
    .where('tenant_id', '=', s.tenantId)
    .where('currency', '=', s.currency)
    .where('account', 'in', [...accounts])
    .where('accounting_date', '<', s.period.end);
  if (from === 'period') q = q.where('accounting_date', '>=', s.period.start);
  if (s.branchId) q = q.where('branch_id', '=', s.branchId);
  if (s.definitionId) q = q.where('definition_id', '=', s.definitionId);
  return q;
}

export interface RollForwardRowOut {
  branchId: string;
  definitionId: string;
  rollForward: RollForward;
}

/**
 * Deferred revenue per (selling branch, package): opening is everything dated before the period,
 * closing everything before its end, each movement column what its lines did inside it. Groups with
 * nothing to show (no balance and no movement) are left out. Read from the balances the journal keeps
 * per month and per day (migration 0006), so the cost is the period's days and the months before it
 * per group, whatever the length of the journal.
 */
export async function rollForwardPage(
  db: Kysely<RevenueDb>,
  s: ReportScope,
  page: { after?: readonly [string, string]; limit: number },
): Promise<RollForwardRowOut[]> {
  const c = rollForwardColumns(s);
  const rows = await db
    .selectFrom(deferredBalances(db, s, page.after).as('b'))
    .select(['branch_id', 'definition_id'])
    .select(c.all)
    .groupBy(['branch_id', 'definition_id'])
    .having(sql<boolean>`bool_or(not monthly and day >= ${s.period.start}::date) or ${c.opening} <> 0`)
    .orderBy('branch_id')
    .orderBy('definition_id')
    .limit(page.limit)
    .execute();
  return rows.map((r) => ({ branchId: r.branch_id, definitionId: r.definition_id, rollForward: toRollForward(r) }));
}

/** The same over every group of the scope: the report's total row. */
export async function rollForwardTotal(db: Kysely<RevenueDb>, s: ReportScope): Promise<RollForward> {
  const row = await db.selectFrom(deferredBalances(db, s).as('b')).select(rollForwardColumns(s).all).executeTakeFirstOrThrow();
  return toRollForward(row);
}

/**
 * The balances a roll-forward needs, as rows of one shape: whole months before the month the period
 * ends in (`monthly`), and days from the first of the month it starts in up to its end. Opening takes
 * the months before the start's month and that month's days before the start; closing takes every
 * month read and the end month's days: two different sets of rows, so opening + movements = closing
 * still checks that months and days agree.
 */
function deferredBalances(db: Kysely<RevenueDb>, s: ReportScope, after?: readonly [string, string]) {
  const startMonth = sql<string>`date_trunc('month', ${s.period.start}::date)::date`;
  const endMonth = sql<string>`date_trunc('month', ${s.period.end}::date)::date`;
  let months = db
    .selectFrom('deferred_revenue_month')
    .select(['branch_id', 'definition_id', sql<string>`month`.as('day'), sql<string | null>`null::text`.as('movement'), 'net_credit_minor', sql<boolean>`true`.as('monthly')])
    .where('tenant_id', '=', s.tenantId)
    .where('currency', '=', s.currency)
    .where('month', '<', endMonth);
  let days = db
    .selectFrom('deferred_revenue_day')
    .select(['branch_id', 'definition_id', sql<string>`accounting_date`.as('day'), sql<string | null>`movement`.as('movement'), 'net_credit_minor', sql<boolean>`false`.as('monthly')])
    .where('tenant_id', '=', s.tenantId)
    .where('currency', '=', s.currency)
    .where('accounting_date', '>=', startMonth)
    .where('accounting_date', '<', s.period.end);
  if (s.branchId) {
    months = months.where('branch_id', '=', s.branchId);
    days = days.where('branch_id', '=', s.branchId);
  }
  if (s.definitionId) {
    months = months.where('definition_id', '=', s.definitionId);
    days = days.where('definition_id', '=', s.definitionId);
  }
  if (after) {
    const later = sql<boolean>`(branch_id, definition_id) > (${after[0]}, ${after[1]})`;
    months = months.where(later);
    days = days.where(later);
  }
  return months.unionAll(days);
}

function rollForwardColumns(s: ReportScope) {
  const balance = sql`net_credit_minor`;
  const inPeriod = (movement: string) => sumWhere(balance, sql`not monthly and day >= ${s.period.start}::date and movement = ${movement}`);
  const opening = sumWhere(balance, sql`day < case when monthly then date_trunc('month', ${s.period.start}::date)::date else ${s.period.start}::date end`);
  return {
    opening,
    all: [
      opening.as('opening'),
      inPeriod('SALE').as('sale'),
      inPeriod('TOP_UP').as('top_up'),
      inPeriod('RECOGNISED').as('recognised'),
      inPeriod('BREAKAGE').as('breakage'),
      inPeriod('REFUND').as('refund'),
      inPeriod('TRANSFER').as('transfer'),
      sumWhere(balance, sql`monthly or day >= date_trunc('month', ${s.period.end}::date)::date`).as('closing'),
    ] as const,
  };
}

function toRollForward(r: { opening: bigint; sale: bigint; top_up: bigint; recognised: bigint; breakage: bigint; refund: bigint; transfer: bigint; closing: bigint }): RollForward {
  return rollForwardRow(
    BigInt(r.opening),
    {
      SALE: BigInt(r.sale),
      TOP_UP: BigInt(r.top_up),
      RECOGNISED: BigInt(r.recognised),
      BREAKAGE: BigInt(r.breakage),
      REFUND: BigInt(r.refund),
      TRANSFER: BigInt(r.transfer),
    },
    BigInt(r.closing),
  );
}

export interface RecognisedRowOut {
  accountingDate: string;
  branchId: string;
  definitionId: string;
  packageRevenue: bigint;
  breakageRevenue: bigint;
  sessions: number;
}

/** Package and breakage revenue per accounting date, branch (where recognised) and package. */
export async function recognisedPage(
  db: Kysely<RevenueDb>,
  s: ReportScope,
  page: { after?: readonly [string, string, string]; limit: number },
): Promise<RecognisedRowOut[]> {
  let q = scoped(db, s, ['PACKAGE_REVENUE', 'BREAKAGE_REVENUE'], 'period')
    .select(['accounting_date', 'branch_id', 'definition_id'])
    .select([
      sumWhere(net, sql`account = 'PACKAGE_REVENUE'`).as('package'),
      sumWhere(net, sql`account = 'BREAKAGE_REVENUE'`).as('breakage'),
      sumWhere(sql`sessions`, sql`account = 'PACKAGE_REVENUE'`).as('sessions'),
    ])
    .groupBy(['accounting_date', 'branch_id', 'definition_id'])
    .orderBy('accounting_date')
    .orderBy('branch_id')
    .orderBy('definition_id')
    .limit(page.limit);
  if (page.after) q = q.where(sql<boolean>`(accounting_date, branch_id, definition_id) > (${page.after[0]}::date, ${page.after[1]}, ${page.after[2]})`);
  const rows = await q.execute();
  return rows.map((r) => ({
    accountingDate: r.accounting_date,
    branchId: r.branch_id,
    definitionId: r.definition_id,
    packageRevenue: BigInt(r.package),
    breakageRevenue: BigInt(r.breakage),
    sessions: Number(r.sessions),
  }));
}

export interface RevenueSplitOut {
  packageRevenue: bigint;
  breakageRevenue: bigint;
  oneOffVisitRevenue: bigint;
  packageSessions: number;
  oneOffVisits: number;
}

export async function revenueSplit(db: Kysely<RevenueDb>, s: ReportScope): Promise<RevenueSplitOut> {
  const r = await scoped(db, s, ['PACKAGE_REVENUE', 'BREAKAGE_REVENUE', 'VISIT_REVENUE'], 'period')
    .select([
      sumWhere(net, sql`account = 'PACKAGE_REVENUE'`).as('package'),
      sumWhere(net, sql`account = 'BREAKAGE_REVENUE'`).as('breakage'),
      sumWhere(net, sql`account = 'VISIT_REVENUE'`).as('visits'),
      sumWhere(sql`sessions`, sql`account = 'PACKAGE_REVENUE'`).as('package_sessions'),
      sumWhere(sql`sessions`, sql`account = 'VISIT_REVENUE'`).as('visit_count'),
    ])
    .executeTakeFirstOrThrow();
  return {
    packageRevenue: BigInt(r.package),
    breakageRevenue: BigInt(r.breakage),
    oneOffVisitRevenue: BigInt(r.visits),
    packageSessions: Number(r.package_sessions),
    oneOffVisits: Number(r.visit_count),
  };
}

export interface ProfitRowOut {
  definitionId: string;
  branchId: string;
  packageRevenue: bigint;
  breakageRevenue: bigint;
  deliveryCost: bigint;
  sessions: number;
}

/** Revenue a package earned per branch, and the delivery cost of the sessions behind it. */
export async function profitPage(
  db: Kysely<RevenueDb>,
  s: ReportScope,
  page: { after?: readonly [string, string]; limit: number },
): Promise<ProfitRowOut[]> {
  let q = scoped(db, s, ['PACKAGE_REVENUE', 'BREAKAGE_REVENUE'], 'period')
    .select(['definition_id', 'branch_id'])
    .select([
      sumWhere(net, sql`account = 'PACKAGE_REVENUE'`).as('package'),
      sumWhere(net, sql`account = 'BREAKAGE_REVENUE'`).as('breakage'),
      sumWhere(sql`delivery_cost_minor`, sql`account = 'PACKAGE_REVENUE'`).as('cost'),
      sumWhere(sql`sessions`, sql`account = 'PACKAGE_REVENUE'`).as('sessions'),
    ])
    .groupBy(['definition_id', 'branch_id'])
    .orderBy('definition_id')
    .orderBy('branch_id')
    .limit(page.limit);
  if (page.after) q = q.where(sql<boolean>`(definition_id, branch_id) > (${page.after[0]}, ${page.after[1]})`);
  const rows = await q.execute();
  return rows.map((r) => ({
    definitionId: r.definition_id,
    branchId: r.branch_id,
    packageRevenue: BigInt(r.package),
    breakageRevenue: BigInt(r.breakage),
    deliveryCost: BigInt(r.cost),
    sessions: Number(r.sessions),
  }));
}

export interface SettlementRowOut {
  /** Sold the package and holds its deferred revenue: owes. */
  fromBranchId: string;
  /** Delivered the sessions: is owed. */
  toBranchId: string;
  /** As the owing branch carries it (due to). */
  amount: bigint;
  /** As the owed branch carries it (due from); equal to `amount` in a sound journal. */
  dueFrom: bigint;
  sessions: number;
}

/** Due-to / due-from per branch pair, from both sides, so a mismatch would show. */
export async function settlement(db: Kysely<RevenueDb>, s: ReportScope): Promise<SettlementRowOut[]> {
  const dueTo = await scoped(db, s, ['DUE_TO_BRANCH'], 'period')
    .select(['branch_id', 'counterparty_branch_id'])
    .select([sumOf(net).as('amount'), sumOf(sql`sessions`).as('sessions')])
    .groupBy(['branch_id', 'counterparty_branch_id'])
    .execute();
  const dueFrom = await scoped(db, { ...s, branchId: undefined }, ['DUE_FROM_BRANCH'], 'period')
    .select(['branch_id', 'counterparty_branch_id'])
    .select([sumOf(sql`debit_minor - credit_minor`).as('amount')])
    .groupBy(['branch_id', 'counterparty_branch_id'])
    .execute();
  const rows = new Map<string, SettlementRowOut>();
  const key = (from: string, to: string) => `${from}\u0000${to}`;
  for (const r of dueTo) {
    rows.set(key(r.branch_id, r.counterparty_branch_id), {
      fromBranchId: r.branch_id,
      toBranchId: r.counterparty_branch_id,
      amount: BigInt(r.amount),
      dueFrom: 0n,
      sessions: Number(r.sessions),
    });
  }
  for (const r of dueFrom) {
    const from = r.counterparty_branch_id;
    const to = r.branch_id;
    if (s.branchId && from !== s.branchId && to !== s.branchId) continue;
    const row = rows.get(key(from, to)) ?? { fromBranchId: from, toBranchId: to, amount: 0n, dueFrom: 0n, sessions: 0 };
    row.dueFrom = BigInt(r.amount);
    rows.set(key(from, to), row);
  }
  return [...rows.values()]
    .filter((r) => r.amount !== 0n || r.dueFrom !== 0n || r.sessions !== 0)
    .sort((a, b) => (a.fromBranchId === b.fromBranchId ? cmp(a.toBranchId, b.toBranchId) : cmp(a.fromBranchId, b.fromBranchId)));
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export interface JournalQuery {
  tenantId: string;
  period?: DateRange;
  branchId?: string;
  entitlementId?: string;
  definitionId?: string;
  after?: readonly [string, bigint];
  limit: number;
}

/** Entries in (accounting date, posting order), with their lines. */
export async function journalPage(db: Kysely<RevenueDb>, j: JournalQuery): Promise<NumberedEntry[]> {
  let q = db.selectFrom('journal_entry').selectAll().where('tenant_id', '=', j.tenantId);
  if (j.period) q = q.where('accounting_date', '>=', j.period.start).where('accounting_date', '<', j.period.end);
  if (j.entitlementId) q = q.where('entitlement_id', '=', j.entitlementId);
  if (j.definitionId) q = q.where('definition_id', '=', j.definitionId);
  if (j.branchId) {
    const branchId = j.branchId;
    q = q.where((eb) =>
      eb.exists(
        eb
          .selectFrom('journal_line')
          .select(sql`1`.as('one'))
          .whereRef('journal_line.journal_entry_id', '=', 'journal_entry.journal_entry_id')
          .where('journal_line.branch_id', '=', branchId),
      ),
    );
  }
  if (j.after) q = q.where(sql<boolean>`(accounting_date, seq) > (${j.after[0]}::date, ${j.after[1].toString()}::bigint)`);
  const entries = await q.orderBy('accounting_date').orderBy('seq').limit(j.limit).execute();
  const lines = await linesOf(db, entries.map((e) => e.journal_entry_id));
  return entries.map((e) => toPosted({ ...e, seq: BigInt(e.seq) }, lines.get(e.journal_entry_id) ?? []));
}
