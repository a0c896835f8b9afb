import { existsSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fromBinary } from '@bufbuild/protobuf';
import { JournalPostedSchema, RevenueRecognizedSchema } from '@punchcard/contracts/punchcard/events/v1/revenue_events_pb';
import { ExpiryAnchor, ExpiryMode } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { createEnv } from '../env.js';
import { EventCounter } from '../events.js';
import type { Flags } from '../flags.js';
import { seedTenant, terms } from '../ledger.js';
import { Progress } from '../progress.js';
import type { Target } from '../results.js';
import { REPO_ROOT, startServiceProcess, type ServiceProcess } from '../service-process.js';
import { round } from '../stats.js';
import { profileDir } from './profiles.js';
import type { Benchmark, Outcome } from './types.js';

const PRICE_MINOR = 50_000n;
const PURCHASE_CONCURRENCY = 32;
/** Give up waiting when nothing moved for this long. */
const IDLE_MS = 60_000;

/** The scheduler's `punchcard_expiry_timers_due` gauge: pending timers already due. */
async function dueTimers(scheduler: ServiceProcess): Promise<number> {
  const text = await (await fetch(`${scheduler.opsUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('punchcard_expiry_timers_due'));
  return Number(line?.split(' ').at(-1) ?? Number.NaN);
}

export const expirySweep: Benchmark = {
  name: 'expiry-sweep',
  unavailable: () =>
    ['expiry-scheduler', 'revenue-recognition'].find((s) => !existsSync(path.join(REPO_ROOT, 'services', s, 'src', 'service.ts')))
      ? 'needs services/expiry-scheduler and services/revenue-recognition'
      : undefined,
  async run(flags: Flags): Promise<Outcome> {
    const progress = new Progress('expiry-sweep');
    const env = await createEnv('expiry_sweep');
    const n = flags.expiryCount;
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
      progress.note(`loading ${n} entitlements past their expiry through the ledger (Purchase over gRPC, ${PURCHASE_CONCURRENCY} at a time)`);
      const loadStart = performance.now();
      await client.purchaseWhenKnown('short', purchaseTime);
      let started = 1;
      let purchased = 1;
      progress.track(() => `purchased ${purchased}/${n}, revenue booked ${sales.count}`);
      await Promise.all(
        Array.from({ length: PURCHASE_CONCURRENCY }, async () => {
          while (started < n) {
            started++;
            await client.purchase('short', undefined, purchaseTime);
            purchased++;
          }
        }),
      );
      const purchaseSeconds = round((performance.now() - loadStart) / 1000);
      progress.note(`purchased ${n} in ${purchaseSeconds} s; waiting for the scheduler to plan them and revenue to book them`);
      let due = 0;
      for (let idle = Date.now(); due < n; ) {
        const now = await dueTimers(scheduler);
        if (now !== due) idle = Date.now();
        due = now;
        if (Date.now() - idle > IDLE_MS) throw new Error(`the scheduler planned ${due} of ${n} expiries, then stopped`);
        progress.update(`scheduler: ${due}/${n} expiries due, revenue: ${sales.count}/${n} sales booked`);
        await new Promise((r) => setTimeout(r, 500));
      }
      if (!(await sales.waitForCount(n, IDLE_MS, (c) => progress.update(`revenue: ${c}/${n} sales booked`)))) {
        throw new Error(`revenue-recognition booked ${sales.count} of ${n} sales, then stopped`);
      }
      const loadSeconds = round((performance.now() - loadStart) / 1000);

      const expired = await EventCounter.start(env, 'EXPIRY', `punchcard.expiry.expired.${tenant}`, () => ({}));
      const ledgerExpired = await EventCounter.start(env, 'LEDGER', `punchcard.ledger.entitlement_expired.${tenant}`, () => ({}));
      const breakage = await EventCounter.start(env, 'REVENUE', `punchcard.revenue.recognized.${tenant}`, (d) => {
        const r = fromBinary(RevenueRecognizedSchema, d);
        return r.kind === 'breakage' ? { amount: r.amount?.amountMinor ?? 0n } : undefined;
      });

      progress.note(`${n} expiries due; restarting the scheduler with its sweep on (catch-up after downtime)`);
      await scheduler.stop();
      for (const s of [ledger, revenue]) s.resetPeakRss();
      const restart = performance.now();
      scheduler = await startServiceProcess({ service: 'expiry-scheduler', env, logLevel: flags.logLevel, extraEnv: schedulerEnv, ...profileDir(flags) });
      const ready = performance.now();
      progress.track(() => `fired ${expired.count}/${n}, ledger expired ${ledgerExpired.count}, breakage posted ${breakage.count}`);
      const allFired = await expired.waitForCount(n, IDLE_MS);
      const allExpired = await ledgerExpired.waitForCount(n, IDLE_MS);
      const allBooked = await breakage.waitForCount(n, IDLE_MS);
      progress.stop();
      const t0 = Math.min(ready, expired.first ?? ready, ledgerExpired.first ?? ready);
      const secondsTo = (c: EventCounter) => round(((c.last ?? t0) - t0) / 1000);
      const sweep = { fired: secondsTo(expired), expired: secondsTo(ledgerExpired), breakagePosted: secondsTo(breakage) };
      const rate = sweep.breakagePosted > 0 ? round(breakage.count / sweep.breakagePosted, 1) : 0;
      const projected1M = rate > 0 ? round(1_000_000 / rate, 0) : Number.POSITIVE_INFINITY;
      const peakRss = { 'entitlement-ledger': ledger.peakRssMb(), 'revenue-recognition': revenue.peakRssMb(), 'expiry-scheduler': scheduler.peakRssMb() };
      const expectedBreakage = PRICE_MINOR * BigInt(n);

      const targets: Target[] = [
        {
          what: `all ${n} expired with breakage posted`,
          target: `${n} expired, breakage ${expectedBreakage} minor`,
          actual: `${breakage.count} breakage entries, ${breakage.total} minor`,
          met: allFired && allExpired && allBooked && breakage.count === n && breakage.total === expectedBreakage,
        },
        {
          what: n >= 1_000_000 ? '1M expiries' : `1M expiries (projected from ${rate}/s)`,
          target: '≤ 300 s',
          actual: `${n >= 1_000_000 ? sweep.breakagePosted : projected1M} s`,
          met: (n >= 1_000_000 ? sweep.breakagePosted : projected1M) <= 300,
        },
      ];
      return {
        params: { entitlements: n, priceMinor: Number(PRICE_MINOR), purchaseConcurrency: PURCHASE_CONCURRENCY, schedulerDefaults: 'EXPIRY_BATCH_SIZE 100, EXPIRY_CONCURRENCY 8', logLevel: flags.logLevel },
        figures: {
          load: { purchaseSeconds, purchasesPerSecond: round(n / purchaseSeconds, 1), plannedAndBookedSeconds: loadSeconds },
          restartToReadySeconds: round((ready - restart) / 1000),
          sweepSeconds: sweep,
          counts: { fired: expired.count, ledgerExpired: ledgerExpired.count, breakageEntries: breakage.count, breakageMinor: breakage.total },
          ratePerSecond: rate,
          projected1MSeconds: projected1M,
        },
        peakRssMb: peakRss,
        targets,
        notes: [
          'Load: packages bought three days ago, valid one day, through the ledger; the scheduler plans their expiry from the ledger events with its sweep off, revenue books the sales.',
          'Sweep: the scheduler restarts with its background sweep on and fires the backlog (Expire calls to the ledger over gRPC); the ledger publishes entitlement_expired; revenue posts breakage for the full price.',
          'Times run from the restarted scheduler being ready (or its first event, if earlier) to the last event of each kind.',
        ],
        tables: [
          {
            title: `expiry-sweep (${n} due entitlements)`,
            columns: ['', 'count', 'seconds', 'per second'],
            rows: [
              ['fired (expiry.expired)', expired.count, sweep.fired, sweep.fired ? round(expired.count / sweep.fired, 1) : '-'],
              ['expired in the ledger', ledgerExpired.count, sweep.expired, sweep.expired ? round(ledgerExpired.count / sweep.expired, 1) : '-'],
              ['breakage posted (revenue)', breakage.count, sweep.breakagePosted, rate],
              ['loading: purchases', n, purchaseSeconds, round(n / purchaseSeconds, 1)],
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
