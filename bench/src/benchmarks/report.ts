import { existsSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fromBinary } from '@bufbuild/protobuf';
import { JournalPostedSchema } from '@punchcard/contracts/punchcard/events/v1/revenue_events_pb';
import { RevenueService } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { mintToken } from '@punchcard/platform';
import { grpcJsClient } from '@punchcard/testing';
import pg from 'pg';
import { benchBackends, CpuMeter } from '../cpu.js';
import { createEnv } from '../env.js';
import { EventCounter } from '../events.js';
import type { Flags } from '../flags.js';
import { BRANCH, CatalogueFeed, LedgerClient, terms } from '../ledger.js';
import { Progress } from '../progress.js';
import type { Target } from '../results.js';
import { AUTH_SECRET, REPO_ROOT, startServiceProcess } from '../service-process.js';
import { round, summarise } from '../stats.js';
import { profileDir } from './profiles.js';
import type { Benchmark, Outcome } from './types.js';

const SCHEMA = 'revenue_recognition';
const OTHER_BRANCH = 'b2';
const TEMPLATE_PACKAGES = 20;
const CONSUMES_PER_PACKAGE = 3;
/** Copies of the template history spread over this many days of accounting dates. */
const SPREAD_DAYS = 730;
const COPIES_PER_STATEMENT_TARGET = 100_000;
const RUNS = 31;

/** What a copy changes so it is a distinct, valid journal entry; every other column is copied as is. */
function overrides(table: 'journal_entry' | 'journal_line'): Record<string, string> {
  const shift = `((g * 7919) % ${SPREAD_DAYS})`;
  return {
    journal_entry_id: `md5(t.journal_entry_id::text || ':' || g)::uuid`,
    accounting_date: `t.accounting_date - ${shift}`,
    entitlement_id: `t.entitlement_id || ':' || g`,
    ...(table === 'journal_entry'
      ? { source_id: `t.source_id || ':' || g`, posted_at: `t.posted_at - make_interval(days => ${shift})` }
      : {}),
  };
}

async function copyStatement(client: pg.Client, table: 'journal_entry' | 'journal_line'): Promise<string> {
  const { rows } = await client.query<{ column_name: string; is_generated: string; column_default: string | null }>(
    `select column_name, is_generated, column_default from information_schema.columns
      where table_schema = $1 and table_name = $2 order by ordinal_position`,
    [SCHEMA, table],
  );
  const o = overrides(table);
  // Generated and serial columns fill themselves.
  const cols = rows.filter((r) => r.is_generated !== 'ALWAYS' && !(r.column_default ?? '').startsWith('nextval(')).map((r) => r.column_name);
  const exprs = cols.map((c) => o[c] ?? `t.${c}`);
  return `insert into ${SCHEMA}.${table} (${cols.join(', ')})
          select ${exprs.join(', ')} from ${SCHEMA}.${table} t cross join generate_series($1::int, $2::int) g
           where t.tenant_id = $3 and position(':' in t.entitlement_id) = 0`;
}

export const report: Benchmark = {
  name: 'report',
  unavailable: () =>
    existsSync(path.join(REPO_ROOT, 'services/revenue-recognition/src/service.ts')) ? undefined : 'needs services/revenue-recognition (not landed yet)',
  async run(flags: Flags): Promise<Outcome> {
    const progress = new Progress('report');
    const env = await createEnv('report', flags.autovacuumEveryMs);
    const target = flags.reportEntries;
    try {
      progress.note('starting entitlement-ledger and revenue-recognition (own database and bus namespace)');
      const ledger = await startServiceProcess({ service: 'entitlement-ledger', env, logLevel: flags.logLevel });
      const revenue = await startServiceProcess({ service: 'revenue-recognition', env, logLevel: flags.logLevel, ...profileDir(flags) });

      // A real history through both services: sales at b1, sessions at b1 and b2 (inter-branch lines).
      const tenantId = crypto.randomUUID();
      const feed = new CatalogueFeed(env);
      await feed.tenant(tenantId, [BRANCH, OTHER_BRANCH]);
      await feed.definition(tenantId, 'pass', terms({ branches: { allBranches: true } }));
      const client = await LedgerClient.connect(ledger, tenantId);
      env.defer(() => client.close());
      const posted = await EventCounter.start(env, 'REVENUE', `punchcard.revenue.journal_posted.${tenantId}`, (d) => (fromBinary(JournalPostedSchema, d).entry ? {} : undefined));
      await client.purchaseWhenKnown('pass');
      const packages = [...(await client.purchaseMany('pass', TEMPLATE_PACKAGES - 1))];
      for (const e of packages) {
        for (let i = 0; i < CONSUMES_PER_PACKAGE; i++) {
          await client.consume(e.entitlementId, i === 1 ? OTHER_BRANCH : BRANCH);
        }
      }
      const templateEntries = TEMPLATE_PACKAGES + (TEMPLATE_PACKAGES - 1) * CONSUMES_PER_PACKAGE;
      if (!(await posted.waitForCount(templateEntries, 60_000))) throw new Error(`revenue posted ${posted.count} of ${templateEntries} journal entries`);

      // Copies of that journal (the template: ids without ':'), dated back over two years. Triggers are
      // off for the copy (copies of balanced entries balance); the balance is checked over everything after,
      // and the deferred revenue balances the trigger would have kept are recounted from the journal.
      const admin = new pg.Client({ connectionString: env.database.url });
      await admin.connect();
      env.defer(() => admin.end());
      const { rows: counted } = await admin.query<{ n: string }>(`select count(*) as n from ${SCHEMA}.journal_entry where tenant_id = $1`, [tenantId]);
      const perCopy = Number(counted[0]!.n);
      const copies = Math.max(0, Math.ceil(target / perCopy) - 1);
      const entryCopy = await copyStatement(admin, 'journal_entry');
      const lineCopy = await copyStatement(admin, 'journal_line');
      await admin.query(`set session_replication_role = replica`);
      const step = Math.max(1, Math.floor(COPIES_PER_STATEMENT_TARGET / perCopy));
      const loadStart = performance.now();
      for (let g = 1; g <= copies; g += step) {
        const last = Math.min(copies, g + step - 1);
        progress.update(`copying the journal: ${(g - 1) * perCopy + perCopy} / ${(copies + 1) * perCopy} entries`);
        await admin.query('begin');
        await admin.query(entryCopy, [g, last, tenantId]);
        await admin.query(lineCopy, [g, last, tenantId]);
        await admin.query('commit');
      }
      await admin.query(`set session_replication_role = origin`);
      progress.update('analyze');
      await admin.query(`analyze ${SCHEMA}.journal_entry`);
      await admin.query(`analyze ${SCHEMA}.journal_line`);
      const loadSeconds = round((performance.now() - loadStart) / 1000);
      progress.update('recounting the deferred revenue balances from the copied journal');
      const rebuildStart = performance.now();
      await admin.query(`set search_path = ${SCHEMA}`);
      await admin.query(`select rebuild_deferred_revenue_balances($1)`, [tenantId]);
      await admin.query(`analyze deferred_revenue_day`);
      await admin.query(`analyze deferred_revenue_month`);
      const rebuildSeconds = round((performance.now() - rebuildStart) / 1000);
      const { rows: kept } = await admin.query<{ days: string; months: string }>(
        `select (select count(*) from deferred_revenue_day where tenant_id = $1) as days,
                (select count(*) from deferred_revenue_month where tenant_id = $1) as months`,
        [tenantId],
      );
      const balanceRows = { days: Number(kept[0]!.days), months: Number(kept[0]!.months) };
      const { rows: sizes } = await admin.query<{ entries: string; lines: string; debit: string; credit: string; deferred: string }>(
        `select (select count(*) from ${SCHEMA}.journal_entry where tenant_id = $1) as entries,
                count(*) as lines, sum(debit_minor) as debit, sum(credit_minor) as credit,
                count(*) filter (where account = 'DEFERRED_REVENUE') as deferred
           from ${SCHEMA}.journal_line where tenant_id = $1`,
        [tenantId],
      );
      const size = sizes[0]!;
      progress.note(
        `journal: ${size.entries} entries, ${size.lines} lines (${size.deferred} on deferred revenue), loaded in ${loadSeconds} s; ` +
          `balances: ${balanceRows.days} day and ${balanceRows.months} month rows, recounted in ${rebuildSeconds} s`,
      );

      const reports = grpcJsClient(RevenueService, revenue.apiUrl);
      env.defer(() => reports.close());
      const token = await mintToken({ tenantId, roles: ['finance'], subject: 'bench-finance', expiresInSeconds: 86_400 }, AUTH_SECRET);
      const end = new Date(Date.now() + 86_400_000);
      const start = new Date(end.getTime() - 31 * 86_400_000);
      const period = { startDate: start.toISOString().slice(0, 10), endDate: end.toISOString().slice(0, 10) };
      revenue.resetPeakRss();
      const backends = await benchBackends(env);
      const cpu = new CpuMeter({ service: () => [revenue.pid], postgres: () => backends.pids() });
      await cpu.start();
      const times: number[] = [];
      let response;
      for (let i = 0; i < RUNS; i++) {
        progress.update(`GetLiabilityRollForward ${i + 1}/${RUNS}`);
        const t0 = performance.now();
        response = await reports.call('getLiabilityRollForward', { period, pageSize: 1000 }, { token });
        times.push(performance.now() - t0);
      }
      const cpuMsPerCall = Object.fromEntries(Object.entries(await cpu.stop()).map(([k, seconds]) => [k, round((seconds * 1000) / RUNS, 2)]));
      const total = response!.total!;
      const amount = (m: { amountMinor: bigint } | undefined) => m?.amountMinor ?? 0n;
      const identity =
        amount(total.opening) + amount(total.sales) + amount(total.topUps) - amount(total.recognised) - amount(total.breakage) - amount(total.refunds) + amount(total.transfers) ===
        amount(total.closing);

      // The same total summed over every deferred-revenue line of the journal, as the report did before
      // it kept balances: it must agree to the cent.
      progress.update('summing the journal directly');
      const directStart = performance.now();
      const { rows: direct } = await admin.query<Record<'opening' | 'sales' | 'topUps' | 'recognised' | 'breakage' | 'refunds' | 'transfers' | 'closing', string>>(
        `select coalesce(sum(credit_minor - debit_minor) filter (where accounting_date < $2), 0) as opening,
                coalesce(sum(credit_minor - debit_minor) filter (where accounting_date >= $2 and movement = 'SALE'), 0) as "sales",
                coalesce(sum(credit_minor - debit_minor) filter (where accounting_date >= $2 and movement = 'TOP_UP'), 0) as "topUps",
                -coalesce(sum(credit_minor - debit_minor) filter (where accounting_date >= $2 and movement = 'RECOGNISED'), 0) as "recognised",
                -coalesce(sum(credit_minor - debit_minor) filter (where accounting_date >= $2 and movement = 'BREAKAGE'), 0) as "breakage",
                -coalesce(sum(credit_minor - debit_minor) filter (where accounting_date >= $2 and movement = 'REFUND'), 0) as "refunds",
                coalesce(sum(credit_minor - debit_minor) filter (where accounting_date >= $2 and movement = 'TRANSFER'), 0) as "transfers",
                coalesce(sum(credit_minor - debit_minor), 0) as closing
           from journal_line
          where tenant_id = $1 and currency = (select currency from tenant where tenant_id = $1) and account = 'DEFERRED_REVENUE'
            and accounting_date < $3`,
        [tenantId, period.startDate, period.endDate],
      );
      const directMs = round(performance.now() - directStart);
      progress.stop();
      const columns = ['opening', 'sales', 'topUps', 'recognised', 'breakage', 'refunds', 'transfers', 'closing'] as const;
      const mismatches = columns.filter((c) => BigInt(direct[0]![c]) !== amount(total[c]));
      const cold = round(times[0]!);
      const warm = summarise(times.slice(1));
      const entries = Number(size.entries);
      const balanced = size.debit === size.credit;
      const targets: Target[] = [
        {
          what: entries >= 10_000_000 ? '10M-entry roll-forward (warm median)' : `10M-entry roll-forward (warm median, measured at ${entries} entries, not 10M)`,
          target: '≤ 1 s',
          actual: `${warm.p50} ms`,
          met: warm.p50 <= 1000,
        },
        {
          what: 'journal balanced, roll-forward identity holds, total equals the sums over journal_line',
          target: 'debits = credits, opening + movements = closing, every column to the cent',
          actual: balanced && identity && mismatches.length === 0 ? 'holds' : `balanced ${balanced}, identity ${identity}, columns differing: ${mismatches.join(', ') || 'none'}`,
          met: balanced && identity && mismatches.length === 0,
        },
      ];
      return {
        params: { requestedEntries: target, templateEntries: perCopy, copies: copies + 1, spreadDays: SPREAD_DAYS, period, runs: RUNS, logLevel: flags.logLevel },
        figures: {
          journal: { entries, lines: Number(size.lines), deferredLines: Number(size.deferred), loadSeconds },
          balances: { dayRows: balanceRows.days, monthRows: balanceRows.months, rebuildSeconds },
          rollForward: { coldMs: cold, warmMs: warm, cpuMsPerCall, rows: response!.rows.length },
          directSumOverJournalMs: directMs,
          total: Object.fromEntries(Object.entries(total).filter(([k]) => !k.startsWith('$')).map(([k, v]) => [k, typeof v === 'object' && v && 'amountMinor' in v ? String(v.amountMinor) : v])),
        },
        peakRssMb: { 'revenue-recognition': revenue.peakRssMb() },
        targets,
        notes: [
          `The journal is a real history (${TEMPLATE_PACKAGES} sales and ${(TEMPLATE_PACKAGES - 1) * CONSUMES_PER_PACKAGE} sessions at two branches, posted by revenue-recognition from the ledger's events), copied with new ids and accounting dates spread over ${SPREAD_DAYS} days.`,
          'The copy runs with triggers off, so the deferred revenue balances are recounted from the journal afterwards (rebuild_deferred_revenue_balances, as migration 0006 backfills), timed apart.',
          `GetLiabilityRollForward over one month (opening = everything before it) through gRPC; the first call is cold, the median is of the other ${RUNS - 1}; CPU per call is the service's and its Postgres backends' over all ${RUNS}.`,
          'Its total is checked against the same columns summed directly over journal_line (the query the report ran before it kept balances), timed once.',
        ],
        tables: [
          {
            title: `report: liability roll-forward over ${entries} journal entries (${size.lines} lines)`,
            columns: ['', 'ms'],
            rows: [
              ['first call (cold)', cold],
              [`median of the next ${RUNS - 1}`, warm.p50],
              ['max', warm.max],
              ['CPU per call: revenue-recognition', cpuMsPerCall.service ?? '-'],
              ['CPU per call: its Postgres', cpuMsPerCall.postgres ?? '-'],
              ['direct sum over journal_line (check)', directMs],
              ['loading the journal (s)', loadSeconds],
              ['recounting the balances (s)', rebuildSeconds],
            ],
          },
        ],
      };
    } finally {
      progress.stop();
      await env.close();
    }
  },
};
