import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fromBinary } from '@bufbuild/protobuf';
import { JournalPostedSchema, RevenueRecognizedSchema } from '@punchcard/contracts/punchcard/events/v1/revenue_events_pb';
import { ExpiryAnchor, ExpiryMode } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { cpuBoundOf } from '../cpu-bound.js';
import { systemCpuMeter } from '../cpu.js';
import { COUNTERS_SETTLE_MS, rowsWrittenBySchema, startWriteMeter, type Writes } from '../writes.js';
import { createEnv } from '../env.js';
import { EventCounter, SubjectTally } from '../events.js';
import type { Flags } from '../flags.js';
import { seedTenant, terms } from '../ledger.js';
import { Progress } from '../progress.js';
import type { Target } from '../results.js';
import { REPO_ROOT, startServiceProcess, type ServiceProcess } from '../service-process.js';
import { round } from '../stats.js';
import { checkBacklog, copyBacklog } from './expiry-backlog.js';
import { profileDir } from './profiles.js';
import type { Benchmark, Outcome } from './types.js';

const PRICE_MINOR = 50_000n;
/** Packages bought through the ledger; the rest of the backlog is copied from them. */
const TEMPLATE_PACKAGES = 500;
const PURCHASE_CONCURRENCY = 32;
/** Give up waiting when nothing moved for this long. */
const IDLE_MS = 60_000;

/** The scheduler's `punchcard_expiry_timers_due` gauge: pending timers already due. */
async function dueTimers(scheduler: ServiceProcess): Promise<number> {
  const text = await (await fetch(`${scheduler.opsUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('punchcard_expiry_timers_due'));
  return Number(line?.split(' ').at(-1) ?? Number.NaN);
}

/** Polls the due gauge until it reads `n`. */
async function waitForDue(scheduler: ServiceProcess, n: number, progress: Progress, label: string): Promise<void> {
  let due = 0;
  for (let idle = Date.now(); due < n; ) {
    const now = await dueTimers(scheduler);
    if (now !== due) idle = Date.now();
    due = now;
    if (Date.now() - idle > IDLE_MS) throw new Error(`the scheduler has ${due} of ${n} expiries due, then nothing moved`);
    progress.update(`${label}: ${due}/${n} expiries due`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export const expirySweep: Benchmark = {
  name: 'expiry-sweep',
  unavailable: () =>
    ['expiry-scheduler', 'revenue-recognition'].find((s) => !existsSync(path.join(REPO_ROOT, 'services', s, 'src', 'service.ts')))
      ? 'needs services/expiry-scheduler and services/revenue-recognition'
      : undefined,
  async run(flags: Flags): Promise<Outcome> {
    const progress = new Progress('expiry-sweep');
    const env = await createEnv('expiry_sweep', flags.autovacuumEveryMs);
    const n = flags.expiryCount;
    const templates = Math.min(n, TEMPLATE_PACKAGES);
    try {
      progress.note('starting entitlement-ledger, revenue-recognition and expiry-scheduler (sweeping off while loading)');
      const ledger = await startServiceProcess({ service: 'entitlement-ledger', env, logLevel: flags.logLevel, ...profileDir(flags) });
      const revenue = await startServiceProcess({ service: 'revenue-recognition', env, logLevel: flags.logLevel, ...profileDir(flags) });
      const schedulerEnv = { LEDGER_URL: ledger.apiUrl };
      let scheduler = await startServiceProcess({
        service: 'expiry-scheduler',
        env,
        logLevel: flags.logLevel,
        extraEnv: { ...schedulerEnv, EXPIRY_SWEEP_INTERVAL_MS: '0' },
      });
      // Bought three days ago, usable one day: every package is already past its expiry.
      const client = await seedTenant(env, ledger, {
        short: terms({
          paidSessions: 5,
          price: { currencyCode: 'SGD', amountMinor: PRICE_MINOR },
          expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 1, mode: ExpiryMode.HARD },
        }),
      });
      const tenant = client.tenantId;
      const sales = await EventCounter.start(env, 'REVENUE', `punchcard.revenue.journal_posted.${tenant}`, (d) =>
        fromBinary(JournalPostedSchema, d).entry?.cause === 'ledger.entitlement_purchased' ? {} : undefined,
      );
      const purchaseTime = new Date(Date.now() - 3 * 86_400_000);
      progress.note(`buying ${templates} packages past their expiry through the ledger (Purchase over gRPC, ${PURCHASE_CONCURRENCY} at a time)`);
      const loadStart = performance.now();
      await client.purchaseWhenKnown('short', purchaseTime);
      let started = 1;
      let purchased = 1;
      progress.track(() => `purchased ${purchased}/${templates}, revenue booked ${sales.count}`);
      await Promise.all(
        Array.from({ length: PURCHASE_CONCURRENCY }, async () => {
          while (started < templates) {
            started++;
            await client.purchase('short', undefined, purchaseTime);
            purchased++;
          }
        }),
      );
      const purchaseSeconds = round((performance.now() - loadStart) / 1000);
      progress.note(`purchased ${templates} in ${purchaseSeconds} s; waiting for the scheduler to plan them and revenue to book them`);
      await waitForDue(scheduler, templates, progress, 'scheduler');
      if (!(await sales.waitForCount(templates, IDLE_MS, (c) => progress.update(`revenue: ${c}/${templates} sales booked`)))) {
        throw new Error(`revenue-recognition booked ${sales.count} of ${templates} sales, then stopped`);
      }
      await sales.stop();
      const digestedSeconds = round((performance.now() - loadStart) / 1000);
      progress.note(`copying them in SQL to ${n} packages (ledger, scheduler and revenue rows, new ids)`);
      const copy = await copyBacklog(env.database.url, tenant, n, (done) => progress.update(`copied ${done}/${n - templates}`));
      await waitForDue(scheduler, n, progress, 'after the copy');
      const loadSeconds = round((performance.now() - loadStart) / 1000);

      // Counted from the streams' state while the sweep runs; the breakage events are read afterwards.
      const expired = await SubjectTally.start(env, 'EXPIRY', `punchcard.expiry.expired.${tenant}`);
      const ledgerExpired = await SubjectTally.start(env, 'LEDGER', `punchcard.ledger.entitlement_expired.${tenant}`);
      const breakageSubject = `punchcard.revenue.recognized.${tenant}`;
      const breakage = await SubjectTally.start(env, 'REVENUE', breakageSubject);

      progress.note(`${n} expiries due; restarting the scheduler with its sweep on (catch-up after downtime)`);
      await scheduler.stop();
      for (const s of [ledger, revenue]) s.resetPeakRss();
      const restart = performance.now();
      scheduler = await startServiceProcess({ service: 'expiry-scheduler', env, logLevel: flags.logLevel, extraEnv: schedulerEnv, ...profileDir(flags) });
      const ready = performance.now();
      const { meter: cpu, note: cpuGroups } = await systemCpuMeter(env, {
        'entitlement-ledger': ledger,
        'expiry-scheduler': scheduler,
        'revenue-recognition': revenue,
      });
      const writeMeter = await startWriteMeter(env.database.url);
      await cpu.start();
      const receivedBefore = env.bus.nc.stats();
      progress.track(() => `fired ${expired.count}/${n}, ledger expired ${ledgerExpired.count}, breakage posted ${breakage.count}`);
      const allFired = await expired.waitForCount(n, IDLE_MS);
      const allExpired = await ledgerExpired.waitForCount(n, IDLE_MS);
      const allBooked = await breakage.waitForCount(n, IDLE_MS);
      const cpuSeconds = await cpu.stop();
      const receivedAfter = env.bus.nc.stats();
      // What the bench's own NATS connection received during the sweep: its observers' share of the server's work.
      const benchReceived = { messages: receivedAfter.inMsgs - receivedBefore.inMsgs, bytes: receivedAfter.inBytes - receivedBefore.inBytes };
      progress.stop();
      for (const t of [expired, ledgerExpired, breakage]) await t.stop();
      progress.note(`reading the ${breakage.count} revenue events of the sweep for their breakage`);
      const breakagePosted = await EventCounter.start(
        env,
        'REVENUE',
        breakageSubject,
        (d) => {
          const r = fromBinary(RevenueRecognizedSchema, d);
          return r.kind === 'breakage' ? { amount: r.amount?.amountMinor ?? 0n } : undefined;
        },
        breakage.startSequence + 1,
      );
      await breakagePosted.waitForCount(breakage.count, IDLE_MS, (c) => progress.update(`read ${c}/${breakage.count}`));
      await breakagePosted.stop();
      progress.note(`waiting ${COUNTERS_SETTLE_MS / 1000} s for Postgres's table counters`);
      await new Promise((r) => setTimeout(r, COUNTERS_SETTLE_MS));
      const writes = await writeMeter.stop();
      const writesPerExpiry = perExpiryWrites(writes, n);
      const t0 = Math.min(ready, expired.first ?? ready, ledgerExpired.first ?? ready);
      const secondsTo = (c: SubjectTally) => round(((c.last ?? t0) - t0) / 1000);
      const sweep = { fired: secondsTo(expired), expired: secondsTo(ledgerExpired), breakagePosted: secondsTo(breakage) };
      const perSecond = (count: number, seconds: number) => (seconds > 0 ? round(count / seconds, 1) : 0);
      const rates = { fired: perSecond(expired.count, sweep.fired), expired: perSecond(ledgerExpired.count, sweep.expired), breakagePosted: perSecond(breakage.count, sweep.breakagePosted) };
      const projected = (r: number) => (r > 0 ? round(1_000_000 / r, 0) : Number.POSITIVE_INFINITY);
      const projected1M = { fired: projected(rates.fired), expired: projected(rates.expired), breakagePosted: projected(rates.breakagePosted) };
      const cpuMsPerExpiry = Object.fromEntries(Object.entries(cpuSeconds).map(([k, sec]) => [k, n > 0 ? round((sec * 1000) / n, 3) : 0]));
      const cpuInAll = { seconds: round(Object.values(cpuSeconds).reduce((a, b) => a + b, 0)), msPerExpiry: round(Object.values(cpuMsPerExpiry).reduce((a, b) => a + b, 0), 3) };
      const cpuBound1M = cpuBoundOf(cpuInAll.msPerExpiry, os.cpus().length);
      const peakRss = { 'entitlement-ledger': ledger.peakRssMb(), 'revenue-recognition': revenue.peakRssMb(), 'expiry-scheduler': scheduler.peakRssMb() };
      const expectedBreakage = PRICE_MINOR * BigInt(n);
      progress.note('checking what the ledger, the scheduler and revenue hold');
      const check = await checkBacklog(env.database.url, tenant);

      const endToEnd = n >= 1_000_000 ? sweep.breakagePosted : projected1M.breakagePosted;
      const targets: Target[] = [
        {
          what: `all ${n} expired with breakage posted`,
          target: `${n} expired, breakage ${expectedBreakage} minor`,
          actual: `${breakagePosted.count} breakage entries, ${breakagePosted.total} minor`,
          met: allFired && allExpired && allBooked && breakagePosted.count === n && breakagePosted.total === expectedBreakage,
        },
        {
          what: 'the services agree afterwards',
          target: `ledger: ${n} EXPIRED, 0 sessions left; scheduler: ${n} timers fired; revenue: breakage ${expectedBreakage}, debits = credits`,
          actual:
            `ledger: ${check.expired}/${check.entitlements} EXPIRED, ${check.sessionsLeft} sessions left; scheduler: ${check.timersFired} fired, ${check.timersPending} pending; ` +
            `revenue: breakage ${check.breakageMinor}, debits ${check.journalDebitMinor}, credits ${check.journalCreditMinor}`,
          met:
            check.entitlements === n &&
            check.expired === n &&
            check.sessionsLeft === 0 &&
            check.timersFired === n &&
            check.timersPending === 0 &&
            check.breakageMinor === expectedBreakage &&
            check.journalDebitMinor === check.journalCreditMinor,
        },
        {
          what: n >= 1_000_000 ? '1M expiries, breakage posted' : `1M expiries, breakage posted (projected from ${rates.breakagePosted}/s)`,
          target: '≤ 300 s',
          actual: `${endToEnd} s`,
          met: endToEnd <= 300,
        },
      ];
      return {
        params: {
          entitlements: n,
          templatePackages: templates,
          priceMinor: Number(PRICE_MINOR),
          purchaseConcurrency: PURCHASE_CONCURRENCY,
          schedulerDefaults: 'EXPIRY_BATCH_SIZE 500, EXPIRY_CONCURRENCY 4 (ExpireBatch requests)',
          logLevel: flags.logLevel,
        },
        figures: {
          load: {
            purchases: templates,
            purchaseSeconds,
            purchasesPerSecond: round(templates / purchaseSeconds, 1),
            plannedAndBookedSeconds: digestedSeconds,
            copied: copy.copies,
            copySeconds: round(copy.seconds),
            loadSeconds,
          },
          restartToReadySeconds: round((ready - restart) / 1000),
          sweepSeconds: sweep,
          ratePerSecond: rates,
          projected1MSeconds: projected1M,
          counts: { fired: expired.count, ledgerExpired: ledgerExpired.count, breakageEntries: breakagePosted.count, breakageMinor: breakagePosted.total },
          cpuSeconds,
          cpuMsPerExpiry,
          cpuInAll,
          cpuBound1M,
          benchReceived,
          writes,
          writesPerExpiry,
          check,
        },
        peakRssMb: peakRss,
        targets,
        notes: [
          `Load: ${templates} packages bought three days ago, valid one day, through the ledger; the scheduler plans their expiry from the ledger events with its sweep off, revenue books the sales; then those packages are copied in SQL with new ids (ledger entitlements and entries, scheduler entitlements and timers, revenue progress, contracts and sale journal) up to ${n}.`,
          'Sweep: the scheduler restarts with its background sweep on and fires the backlog (ExpireBatch requests to the ledger over gRPC); the ledger publishes entitlement_expired; revenue posts breakage for the full price.',
          'Times run from the restarted scheduler being ready (or its first event, if earlier) to the last event of each kind, as its stream stored them: the bench follows the subjects in the streams\' state (polled every second) rather than receiving the events, and reads the breakage events for their amounts after the sweep. CPU is summed over the sweep, per process group.',
          cpuGroups,
          "cpuBound1M: the sweep is bound by CPU, so 1M expiries take at least the CPU per expiry in all times 1M spread over every core (floorSeconds), and fit 300 s only at budgetMsPerExpiry or less.",
          "benchReceived: what the bench's own NATS connection received during the sweep, the answers to its polls of the streams' state.",
          "Writes: rows inserted, updated (of which HOT: no index entry written) and deleted in each service's schema from the same start until the counters settled after the last event (pg_stat_user_tables); WAL is the whole server's over that span.",
        ],
        tables: [
          {
            title: `expiry-sweep (${n} due entitlements)`,
            columns: ['', 'count', 'seconds', 'per second'],
            rows: [
              ['fired (expiry.expired)', expired.count, sweep.fired, rates.fired],
              ['expired in the ledger', ledgerExpired.count, sweep.expired, rates.expired],
              ['breakage posted (revenue)', breakage.count, sweep.breakagePosted, rates.breakagePosted],
              ['loading: purchases through the ledger', templates, purchaseSeconds, round(templates / purchaseSeconds, 1)],
              ['loading: copies in SQL', copy.copies, round(copy.seconds), copy.seconds > 0 ? round(copy.copies / copy.seconds, 0) : '-'],
            ],
          },
          {
            title: 'CPU during the sweep (ms per expiry)',
            columns: ['process', 'CPU seconds', 'ms per expiry'],
            rows: [
              ...Object.entries(cpuSeconds).map(([k, sec]) => [k, sec, cpuMsPerExpiry[k] ?? '-']),
              ['in all', cpuInAll.seconds, cpuInAll.msPerExpiry],
            ],
          },
          {
            title: `1M expiries at this CPU per expiry, every one of the ${cpuBound1M.cores} cores busy`,
            columns: ['ms per expiry in all', 'seconds at least', 'ms per expiry for 300 s'],
            rows: [[cpuInAll.msPerExpiry, cpuBound1M.floorSeconds, cpuBound1M.budgetMsPerExpiry]],
          },
          {
            title: 'Postgres writes during the sweep (per expiry)',
            columns: ['schema', 'inserted', 'updated', 'of which HOT', 'deleted', 'rows written'],
            rows: [
              ...Object.entries(writesPerExpiry.bySchema).map(([schema, w]) => [schema, w.inserted, w.updated, w.hotUpdated, w.deleted, w.written]),
              ['all', '', '', '', '', writesPerExpiry.rowsWritten],
            ],
          },
          {
            title: "WAL during the sweep (the whole server's, per expiry)",
            columns: ['bytes', 'records', 'full-page images', 'checkpoints during the sweep'],
            rows: [[writesPerExpiry.walBytes, writesPerExpiry.walRecords, writesPerExpiry.fullPageImages, writes.wal.checkpoints]],
          },
        ],
      };
    } finally {
      progress.stop();
      await env.close();
    }
  },
};

/** The sweep's writes divided by its expiries (two decimals): rows per schema and WAL. */
function perExpiryWrites(writes: Writes, n: number) {
  const per = (x: number) => (n > 0 ? round(x / n) : 0);
  const bySchema = Object.fromEntries(
    Object.entries(rowsWrittenBySchema(writes)).map(([schema, w]) => [
      schema,
      { inserted: per(w.inserted), updated: per(w.updated), hotUpdated: per(w.hotUpdated), deleted: per(w.deleted), written: per(w.inserted + w.updated + w.deleted) },
    ]),
  );
  const all = Object.values(writes.tables).reduce((sum, w) => sum + w.inserted + w.updated + w.deleted, 0);
  return { bySchema, rowsWritten: per(all), walBytes: per(writes.wal.bytes), walRecords: per(writes.wal.records), fullPageImages: per(writes.wal.fullPageImages) };
}
