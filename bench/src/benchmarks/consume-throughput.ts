import { toBinary } from '@bufbuild/protobuf';
import { ConsumeResponseSchema } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { benchBackends, CpuMeter, localNatsServer } from '../cpu.js';
import { createEnv } from '../env.js';
import { gcPausesBetween, gcTableRow, gcTotalsFromMetrics, watchOwnGc, type GcPauses } from '../gc-pauses.js';
import { handledWithin, handlingShares, quantileBucket, type HandlingShare } from '../handling-time.js';
import { HALF_OF_PEAK, type Flags, type OpenRate } from '../flags.js';
import { seedTenant, terms } from '../ledger.js';
import { closedLoop, openLoop, type LoadResult } from '../load.js';
import { pgbenchVersion, preparePgbench, runPgbench } from '../pgbench.js';
import { Progress } from '../progress.js';
import { RawConsumer } from '../raw-sql.js';
import type { Target } from '../results.js';
import { startServiceProcess } from '../service-process.js';
import { round } from '../stats.js';
import { profileDir } from './profiles.js';
import type { Benchmark, Outcome } from './types.js';

/** Big enough that no run exhausts a package: every failure is then a real failure. */
const SESSIONS = 2_000_000_000;

/**
 * Packages the open-loop run spreads its consumes over, whatever the closed-loop levels were. The
 * ledger puts at most one consume of a package in a grouped transaction, so a run over one package
 * (`--concurrency 1`) would measure one transaction per consume instead of a clinic chain's traffic.
 */
export const OPEN_LOOP_PACKAGES = 64;

/** How many packages the service's runs need: one per closed-loop caller, and the open loop's. */
export function servicePackages(concurrency: readonly number[]): number {
  return Math.max(OPEN_LOOP_PACKAGES, ...concurrency);
}

/** CPU milliseconds per consume, by process group, over the measured window. */
type CpuPerConsume = Record<string, number>;

type Metered = LoadResult & { cpuMsPerConsume: CpuPerConsume };

interface Level {
  concurrency: number;
  service: Metered;
  raw?: Metered;
  pgbench?: Metered;
}

/** One open-loop run of the service at a fixed rate. */
interface OpenRun extends Metered {
  rate: number;
  label: string;
  halfOfPeak: boolean;
  /** Cores the measured processes kept busy on average. */
  coresBusy: number;
  handledInLedger: { within: HandlingShare[]; p99: { aboveMs: number; withinMs: number } };
  gcPauses: { ledger: GcPauses; client: GcPauses };
}

function perConsume(cpu: Record<string, number>, ok: number): CpuPerConsume {
  return Object.fromEntries(Object.entries(cpu).map(([k, seconds]) => [k, ok > 0 ? round((seconds * 1000) / ok, 2) : 0]));
}

function coresBusy(run: Metered): number {
  return round((Object.values(run.cpuMsPerConsume).reduce((a, b) => a + b, 0) * run.throughput) / 1000, 2);
}

/** The rate an open-loop run sends at, given the peak the closed-loop steps found, and what to call it. */
export function resolveOpenRate(rate: OpenRate, peak: number): { perSecond: number; label: string; halfOfPeak: boolean } {
  if ('perSecond' in rate) return { perSecond: rate.perSecond, label: 'set by --open-rate', halfOfPeak: false };
  const halfOfPeak = rate.shareOfPeak === HALF_OF_PEAK.shareOfPeak;
  return {
    perSecond: Math.max(1, Math.floor(peak * rate.shareOfPeak)),
    label: halfOfPeak ? 'half of peak' : `${round(rate.shareOfPeak * 100, 1)} % of peak`,
    halfOfPeak,
  };
}

export const consumeThroughput: Benchmark = {
  name: 'consume-throughput',
  async run(flags: Flags): Promise<Outcome> {
    const progress = new Progress('consume-throughput');
    const env = await createEnv('consume', flags.autovacuumEveryMs);
    try {
      progress.note('starting entitlement-ledger (own database and bus namespace)');
      const ledger = await startServiceProcess({ service: 'entitlement-ledger', env, logLevel: flags.logLevel, ...profileDir(flags) });
      const client = await seedTenant(env, ledger, { bulk: terms({ paidSessions: SESSIONS }) });
      const maxC = Math.max(...flags.concurrency);
      await client.purchaseWhenKnown('bulk');
      progress.note(`purchasing ${servicePackages(flags.concurrency)} entitlements for the service, ${maxC} each for the raw driver and pgbench`);
      const forService = (await client.purchaseMany('bulk', servicePackages(flags.concurrency))).map((e) => e.entitlementId);
      const forRaw = (await client.purchaseMany('bulk', maxC)).map((e) => e.entitlementId);
      const forPgbench = (await client.purchaseMany('bulk', maxC)).map((e) => e.entitlementId);
      // The raw transaction stores a payload the size of what the service stores (event, response).
      const payload = Buffer.from(toBinary(ConsumeResponseSchema, await client.consume(forService[0]!)));
      const raw = new RawConsumer(env.database.url, flags.rawPool, client.tenantId, payload);
      env.defer(() => raw.close());
      const pgbench = flags.pgbench ? pgbenchVersion() : undefined;
      const pgbenchSetup = { url: env.database.url, tenantId: client.tenantId, entitlementIds: forPgbench, payload };
      if (pgbench) await preparePgbench(pgbenchSetup);

      const backends = await benchBackends(env);
      const nats = localNatsServer(env.natsUrl);
      const cpu = new CpuMeter({
        service: () => [ledger.pid],
        postgres: () => backends.pids(),
        client: () => [process.pid],
        ...(nats ? { nats: () => [nats] } : {}),
      });
      const metered = async <R extends LoadResult>(run: (onMeasureStart: () => void) => Promise<R>) => {
        let started: Promise<void> = Promise.resolve();
        const result = await run(() => (started = cpu.start()));
        await started;
        return { ...result, cpuMsPerConsume: perConsume(await cpu.stop(), result.ok) };
      };

      ledger.resetPeakRss();
      const levels: Level[] = [];
      const step = { durationMs: flags.durationMs, warmupMs: flags.warmupMs, progress };
      // Each step starts once the previous one's events are out (see outboxPublished).
      const settled = async (next: string) => {
        progress.update(`waiting for the relay to publish the events of the last step before ${next} …`);
        await raw.outboxPublished();
      };
      // The service's steps and its open-loop runs come first, the raw driver's and pgbench's after:
      // once the raw driver had run in this process, the gRPC client promoted most of each call
      // (bench/JOURNAL.md, 7 December from 16:48), and its pauses went into the service's latency.
      for (const c of flags.concurrency) {
        await settled(`service c=${c}`);
        const service = await metered((onMeasureStart) =>
          closedLoop({ ...step, concurrency: c, label: `service c=${c}`, onMeasureStart, op: (w) => client.consumeOutcome(forService[w]!) }),
        );
        progress.note(`service   c=${c}: ${service.throughput}/s, p99 ${service.latency.p99} ms`);
        levels.push({ concurrency: c, service });
      }

      const peak = levels.reduce((best, l) => (l.service.throughput > best.service.throughput ? l : best));
      const ledgerMetrics = async () => (await fetch(`${ledger.opsUrl}/metrics`)).text();
      const openRuns: OpenRun[] = [];
      let n = 0;
      for (const openRate of flags.openRates) {
        const { perSecond: rate, label, halfOfPeak } = resolveOpenRate(openRate, peak.service.throughput);
        await settled(`the service at ${label} (${rate}/s)`);
        const metricsBefore = await ledgerMetrics();
        const openStarted = performance.now();
        const clientGc = watchOwnGc();
        const result = await metered((onMeasureStart) =>
          openLoop({
            ...step,
            rate,
            label: `service at ${label} (${rate}/s)`,
            onMeasureStart,
            op: () => client.consumeOutcome(forService[n++ % forService.length]!),
          }),
        );
        const gcOfClient = await clientGc();
        const metricsAfter = await ledgerMetrics();
        // Both include the warm-up: the ledger's histograms have no time window.
        const within = handlingShares(handledWithin(metricsBefore, 'Consume'), handledWithin(metricsAfter, 'Consume'));
        const gcOfLedger = gcPausesBetween(gcTotalsFromMetrics(metricsBefore), gcTotalsFromMetrics(metricsAfter), (performance.now() - openStarted) / 1000);
        const run: OpenRun = {
          rate,
          label,
          halfOfPeak,
          ...result,
          coresBusy: coresBusy(result),
          handledInLedger: { within, p99: quantileBucket(within, 0.99) },
          gcPauses: { ledger: gcOfLedger, client: gcOfClient },
        };
        progress.note(`service at ${rate}/s (${label}): p50 ${run.latency.p50} ms, p99 ${run.latency.p99} ms; the ledger, its Postgres${nats ? ', NATS' : ''} and the client kept ${run.coresBusy} cores busy`);
        openRuns.push(run);
      }
      for (const level of levels) {
        const c = level.concurrency;
        if (!flags.serviceOnly) {
          await settled(`raw SQL c=${c}`);
          level.raw = await metered((onMeasureStart) =>
            closedLoop({ ...step, concurrency: c, label: `raw SQL c=${c}`, onMeasureStart, op: (w) => raw.consume(forRaw[w]!) }),
          );
          progress.note(`raw SQL   c=${c}: ${level.raw.throughput}/s, p99 ${level.raw.latency.p99} ms`);
        }
        if (pgbench) {
          await settled(`pgbench c=${c}`);
          progress.update(`pgbench c=${c} …`);
          level.pgbench = await metered(async (onMeasureStart) => {
            // pgbench warms up in a run of its own; the meter covers the measured run.
            if (flags.warmupMs > 0) await runPgbench(pgbenchSetup, { concurrency: c, durationMs: flags.warmupMs, warmupMs: 0 });
            onMeasureStart();
            return runPgbench(pgbenchSetup, { concurrency: c, durationMs: flags.durationMs, warmupMs: 0 });
          });
          progress.note(`pgbench   c=${c}: ${level.pgbench.throughput}/s, p99 ${level.pgbench.latency.p99} ms`);
        }
      }
      const rawPeak = flags.serviceOnly ? undefined : Math.max(...levels.map((l) => l.raw?.throughput ?? 0));
      const pgbenchPeak = pgbench ? Math.max(...levels.map((l) => l.pgbench?.throughput ?? 0)) : undefined;
      const peakRss = ledger.peakRssMb();

      const ratio = rawPeak ? round(peak.service.throughput / rawPeak, 2) : undefined;
      const targets: Target[] = [
        ...(ratio !== undefined ? [{ what: 'service peak / raw-SQL peak', target: '≥ 0.50', actual: ratio.toFixed(2), met: ratio >= 0.5 }] : []),
        ...openRuns.filter((r) => r.halfOfPeak).map((r) => ({ what: `p99 at half of peak (${r.rate}/s)`, target: '≤ 20 ms', actual: `${r.latency.p99} ms`, met: r.latency.p99 <= 20 })),
      ];
      const ms = (l: LoadResult | undefined, k: 'p50' | 'p99') => (l ? l.latency[k] : '-');
      return {
        params: {
          concurrency: flags.concurrency,
          durationSeconds: flags.durationMs / 1000,
          warmupSeconds: flags.warmupMs / 1000,
          rawPool: flags.rawPool,
          openRates: flags.openRates,
          servicePool: 10,
          client: 'grpc-js, one channel',
          pgbench: pgbench ?? 'not run',
          payloadBytes: payload.length,
          logLevel: flags.logLevel,
        },
        figures: {
          levels,
          peak: { concurrency: peak.concurrency, service: peak.service.throughput, raw: rawPeak, pgbench: pgbenchPeak },
          serviceToRaw: ratio,
          ...(pgbenchPeak ? { serviceToPgbench: round(peak.service.throughput / pgbenchPeak, 2) } : {}),
          openLoop: openRuns,
        },
        peakRssMb: { 'entitlement-ledger': peakRss },
        targets,
        notes: [
          'Closed loop: each of c workers sends its next Consume when the previous returns; each worker consumes from its own entitlement (no row contention).',
          'raw SQL: the same writes (conditional decrement, entry, idempotency record, outbox row + NOTIFY) in the same tables, through node-pg from the bench process, 4 round trips.',
          'pgbench: the same transaction as a pgbench script (C client, one connection per client).',
          'Open loop (half of peak unless --open-rate says otherwise): a fixed rate; latency from each scheduled start (no coordinated omission).',
          "Handled in the ledger: the ledger's own histogram of Consume (grpc_server_handling_seconds on its ops port) over each open-loop run, warm-up included: from the request reaching its handler to the answer, without the client, HTTP/2 or the network.",
          `CPU per consume: the ledger's process, this database's Postgres backends and the WAL writer, the bench process (client)${nats ? ', and the local NATS server (all of it: the relay publishes every consume\'s event; nothing else uses it during a run here)' : '; the NATS server is not on this machine (or not visible), so it is not counted'}.`,
        ],
        tables: [
          {
            title: 'consume-throughput (consumes/s, latency ms)',
            columns: ['c', 'service/s', 'p50', 'p95', 'p99', 'raw/s', 'p50', 'p99', 'pgbench/s', 'p99', 'svc/raw', 'svc/pgbench'],
            rows: [
              ...levels.map((l) => [
                l.concurrency,
                l.service.throughput,
                l.service.latency.p50,
                l.service.latency.p95,
                l.service.latency.p99,
                l.raw?.throughput ?? '-',
                ms(l.raw, 'p50'),
                ms(l.raw, 'p99'),
                l.pgbench?.throughput ?? '-',
                ms(l.pgbench, 'p99'),
                l.raw ? round(l.service.throughput / l.raw.throughput, 2) : '-',
                l.pgbench ? round(l.service.throughput / l.pgbench.throughput, 2) : '-',
              ]),
              ...openRuns.map((r) => [`${r.rate}/s open`, r.throughput, r.latency.p50, r.latency.p95, r.latency.p99, '', '', '', '', '', '', '']),
            ],
          },
          {
            title: 'open loop: consumes handled in the ledger within (its own histogram, warm-up included)',
            columns: ['rate', ...(openRuns[0]?.handledInLedger.within ?? []).map((b) => `${b.withinMs} ms`), 'p99 in'],
            rows: openRuns.map(({ rate, handledInLedger: { within, p99 } }) => [
              `${rate}/s`,
              ...within.map((b) => `${round(b.share * 100, 1)} %`),
              Number.isFinite(p99.withinMs) ? `${p99.aboveMs}–${p99.withinMs} ms` : `over ${p99.aboveMs} ms`,
            ]),
          },
          {
            title: 'open loop: garbage-collection pauses (warm-up included), which stop every consume in flight in that process',
            columns: ['process', 'scavenges', 'ms', 'full', 'ms', 'other', 'ms', 'paused', 'longest ms'],
            rows: openRuns.flatMap((r) => [gcTableRow(`ledger at ${r.rate}/s`, r.gcPauses.ledger), gcTableRow(`client at ${r.rate}/s`, r.gcPauses.client)]),
          },
          {
            title: 'CPU per consume (ms): where it goes on the shared cores',
            columns: ['c', 'svc: service', 'postgres', 'client', 'nats', 'cores busy', 'raw: postgres', 'client', 'nats', 'pgbench: postgres'],
            rows: [
              ...levels.map((l) => [
                l.concurrency,
                l.service.cpuMsPerConsume.service ?? '-',
                l.service.cpuMsPerConsume.postgres ?? '-',
                l.service.cpuMsPerConsume.client ?? '-',
                l.service.cpuMsPerConsume.nats ?? '-',
                coresBusy(l.service),
                l.raw?.cpuMsPerConsume.postgres ?? '-',
                l.raw?.cpuMsPerConsume.client ?? '-',
                l.raw?.cpuMsPerConsume.nats ?? '-',
                l.pgbench?.cpuMsPerConsume.postgres ?? '-',
              ]),
              ...openRuns.map((r) => [`${r.rate}/s open`, r.cpuMsPerConsume.service ?? '-', r.cpuMsPerConsume.postgres ?? '-', r.cpuMsPerConsume.client ?? '-', r.cpuMsPerConsume.nats ?? '-', r.coresBusy, '', '', '', '']),
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
