import { performance } from 'node:perf_hooks';
import { EntryKind } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { createEnv } from '../env.js';
import type { Flags } from '../flags.js';
import { seedTenant, terms, type LedgerClient } from '../ledger.js';
import { Progress } from '../progress.js';
import type { Target } from '../results.js';
import { startServiceProcess } from '../service-process.js';
import { round, summarise, type LatencySummary } from '../stats.js';
import { profileDir } from './profiles.js';
import type { Benchmark, Outcome } from './types.js';

const MAX_UNEXPECTED = 50;

interface Race {
  successes: number;
  failures: Record<string, number>;
  seconds: number;
  throughput: number;
  latency: LatencySummary;
}

/**
 * `workers` consumers run until `claim()` says stop: each consumes from `target(worker)` and stops at
 * its first ResourceExhausted (the package is empty).
 */
async function race(
  workers: number,
  claim: () => boolean,
  consume: (worker: number) => Promise<string>,
  progress: Progress,
  label: string,
  samples: ReadonlyMap<string, string>,
): Promise<Race> {
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  let successes = 0;
  let unexpected = 0;
  progress.track(() => `${label}: ${successes} consumed`);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      while (claim()) {
        const s = performance.now();
        const outcome = await consume(w);
        if (outcome === 'ok') {
          successes++;
          latencies.push(performance.now() - s);
          continue;
        }
        failures[outcome] = (failures[outcome] ?? 0) + 1;
        if (outcome === 'RESOURCE_EXHAUSTED') return;
        // Anything else is a fault, not contention: give up rather than spin on it.
        if (++unexpected > MAX_UNEXPECTED) throw new Error(`${label}: ${JSON.stringify(failures)}, e.g. ${JSON.stringify(Object.fromEntries(samples))}`);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  progress.stop();
  return { successes, failures, seconds: round(seconds), throughput: round(successes / seconds, 1), latency: summarise(latencies) };
}

async function verify(client: LedgerClient, entitlementId: string, sessions: number) {
  const e = await client.entitlement(entitlementId);
  const entries = await client.entries(entitlementId);
  const consumes = entries.filter((x) => x.kind === EntryKind.CONSUME).length;
  const balance = entries.reduce((sum, x) => sum + x.sessionsDelta, 0);
  return {
    remaining: e.remaining,
    version: Number(e.version),
    consumeEntries: consumes,
    sumOfEntries: balance,
    ok: e.remaining === 0 && consumes === sessions && balance === 0 && Number(e.version) === sessions + 1,
  };
}

export const hotRow: Benchmark = {
  name: 'hot-row',
  async run(flags: Flags): Promise<Outcome> {
    const progress = new Progress('hot-row');
    const env = await createEnv('hot_row', flags.autovacuumEveryMs);
    try {
      progress.note('starting entitlement-ledger (own database and bus namespace)');
      const ledger = await startServiceProcess({ service: 'entitlement-ledger', env, logLevel: flags.logLevel, ...profileDir(flags) });
      const sessions = flags.hotSessions;
      const workers = flags.hotWorkers;
      const client = await seedTenant(env, ledger, {
        pool: terms({ paidSessions: sessions }),
        // Enough for any share of the consumes: a worker whose answers come back sooner takes more of them.
        own: terms({ paidSessions: sessions }),
      });
      await client.purchaseWhenKnown('own');
      const shared = await client.purchase('pool');
      const own = (await client.purchaseMany('own', workers)).map((e) => e.entitlementId);
      const warm = await client.purchase('pool');
      // Warm the path (JIT, pools, plan caches, the HTTP/2 connection) before either measurement.
      for (let i = 0; i < 200; i += 20) await Promise.all(Array.from({ length: 20 }, () => client.consumeOutcome(warm.entitlementId)));

      ledger.resetPeakRss();
      const contended = await race(workers, () => true, () => client.consumeOutcome(shared.entitlementId), progress, `${workers} consumers, one ${sessions}-session entitlement`, client.errorSamples);
      progress.note(`contended: ${contended.successes} consumed in ${contended.seconds} s (${contended.throughput}/s)`);
      const check = await verify(client, shared.entitlementId, sessions);

      let claimed = 0;
      const uncontended = await race(workers, () => claimed++ < sessions, (w) => client.consumeOutcome(own[w]!), progress, `${workers} consumers, own entitlements`, client.errorSamples);
      progress.note(`uncontended: ${uncontended.successes} consumed in ${uncontended.seconds} s (${uncontended.throughput}/s)`);
      const peakRss = ledger.peakRssMb();

      const factor = round(contended.throughput / uncontended.throughput, 2);
      const targets: Target[] = [
        { what: `successes on the shared ${sessions}-session entitlement`, target: `= ${sessions}`, actual: String(contended.successes), met: contended.successes === sessions },
        { what: 'ledger afterwards: remaining 0, entries sum to 0, one CONSUME entry per success', target: 'consistent', actual: check.ok ? 'consistent' : JSON.stringify(check), met: check.ok },
      ];
      return {
        params: { sessions, workers, client: 'grpc-js, one channel', logLevel: flags.logLevel },
        figures: { contended, uncontended, contendedToUncontended: factor, verification: check },
        peakRssMb: { 'entitlement-ledger': peakRss },
        targets,
        notes: [
          'Contended: every worker consumes from the same entitlement until it answers ResourceExhausted; consumes serialise on its row lock.',
          `Uncontended: the same ${sessions} consumes by the same ${workers} workers, each on its own entitlement.`,
        ],
        tables: [
          {
          title: `hot-row (${workers} consumers, ${sessions} sessions)`,
          columns: ['', 'successes', 'refused', 'seconds', 'consumes/s', 'p50 ms', 'p99 ms'],
          rows: [
            ['one shared entitlement', contended.successes, contended.failures.RESOURCE_EXHAUSTED ?? 0, contended.seconds, contended.throughput, contended.latency.p50, contended.latency.p99],
            ['own entitlements', uncontended.successes, Object.values(uncontended.failures).reduce((a, b) => a + b, 0), uncontended.seconds, uncontended.throughput, uncontended.latency.p50, uncontended.latency.p99],
            ['contended / uncontended', '', '', '', factor, '', ''],
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
