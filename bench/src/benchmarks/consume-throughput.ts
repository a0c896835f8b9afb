import { toBinary } from '@bufbuild/protobuf';
import { ConsumeResponseSchema } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { benchBackends, CpuMeter, localNatsServer } from '../cpu.js';
import { createEnv } from '../env.js';
import { gcPausesBetween, gcTableRow, gcTotalsFromMetrics, watchOwnGc } from '../gc-pauses.js';
import { handledWithin, handlingShares, quantileBucket } from '../handling-time.js';
import type { Flags } from '../flags.js';
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

interface Level {
  concurrency: number;
  service: LoadResult & { cpuMsPerConsume: CpuPerConsume };
  raw?: LoadResult & { cpuMsPerConsume: CpuPerConsume };
  pgbench?: LoadResult & { cpuMsPerConsume: CpuPerConsume };
}

function perConsume(cpu: Record<string, number>, ok: number): CpuPerConsume {
  return Object.fromEntries(Object.entries(cpu).map(([k, seconds]) => [k, ok > 0 ? round((seconds * 1000) / ok, 2) : 0]));
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
      // The service's steps and its half-of-peak run come first, the raw driver's and pgbench's after:
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
      const openRate = flags.openRate ?? Math.max(1, Math.floor(peak.service.throughput / 2));
      const openLabel = flags.openRate ? 'set by --open-rate' : 'half of peak';
      let n = 0;
      await settled(`the service at ${openLabel}`);
      const ledgerMetrics = async () => (await fetch(`${ledger.opsUrl}/metrics`)).text();
      const metricsBefore = await ledgerMetrics();
      const openStarted = performance.now();
      const clientGc = watchOwnGc();
      const half = await metered((onMeasureStart) =>
        openLoop({
          ...step,
          rate: openRate,
          label: `service at ${openLabel} (${openRate}/s)`,
          onMeasureStart,
          op: () => client.consumeOutcome(forService[n++ % forService.length]!),
        }),
      );
      const gcOfClient = await clientGc();
      const metricsAfter = await ledgerMetrics();
      // Both include the warm-up: the ledger's histograms have no time window.
      const inLedger = handlingShares(handledWithin(metricsBefore, 'Consume'), handledWithin(metricsAfter, 'Consume'));
      const gcOfLedger = gcPausesBetween(gcTotalsFromMetrics(metricsBefore), gcTotalsFromMetrics(metricsAfter), (performance.now() - openStarted) / 1000);
      const inLedgerP99 = quantileBucket(inLedger, 0.99);
      const coresBusy = round((Object.values(half.cpuMsPerConsume).reduce((a, b) => a + b, 0) * half.throughput) / 1000, 2);
      progress.note(`service at ${openRate}/s (${openLabel}): p50 ${half.latency.p50} ms, p99 ${half.latency.p99} ms; the ledger, its Postgres${nats ? ', NATS' : ''} and the client kept ${coresBusy} cores busy`);
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
        ...(flags.openRate ? [] : [{ what: `p99 at half of peak (${openRate}/s)`, target: '≤ 20 ms', actual: `${half.latency.p99} ms`, met: half.latency.p99 <= 20 }]),
      ];
      const ms = (l: LoadResult | undefined, k: 'p50' | 'p99') => (l ? l.latency[k] : '-');
      return {
        params: {
          concurrency: flags.concurrency,
          durationSeconds: flags.durationMs / 1000,
          warmupSeconds: flags.warmupMs / 1000,
          rawPool: flags.rawPool,
          ...(flags.openRate ? { openRate: flags.openRate } : {}),
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
          halfPeak: { rate: openRate, ...half, coresBusy, handledInLedger: { within: inLedger, p99: inLedgerP99 }, gcPauses: { ledger: gcOfLedger, client: gcOfClient } },
        },
        peakRssMb: { 'entitlement-ledger': peakRss },
        targets,
        notes: [
          'Closed loop: each of c workers sends its next Consume when the previous returns; each worker consumes from its own entitlement (no row contention).',
          'raw SQL: the same writes (conditional decrement, entry, idempotency record, outbox row + NOTIFY) in the same tables, through node-pg from the bench process, 4 round trips.',
          'pgbench: the same transaction as a pgbench script (C client, one connection per client).',
          'Half of peak: open loop at a fixed rate; latency from each scheduled start (no coordinated omission).',
          "Handled in the ledger: the ledger's own histogram of Consume (grpc_server_handling_seconds on its ops port) over the half-of-peak run, warm-up included: from the request reaching its handler to the answer, without the client, HTTP/2 or the network.",
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
              [`${openRate}/s open`, half.throughput, half.latency.p50, half.latency.p95, half.latency.p99, '', '', '', '', '', '', ''],
            ],
          },
          {
            title: `at ${openRate}/s: consumes handled in the ledger within (its own histogram, warm-up included)`,
            columns: [...inLedger.map((b) => `${b.withinMs} ms`), 'p99 in'],
            rows: [[...inLedger.map((b) => `${round(b.share * 100, 1)} %`), Number.isFinite(inLedgerP99.withinMs) ? `${inLedgerP99.aboveMs}–${inLedgerP99.withinMs} ms` : `over ${inLedgerP99.aboveMs} ms`]],
          },
          {
            title: `at ${openRate}/s: garbage-collection pauses (warm-up included), which stop every consume in flight in that process`,
            columns: ['process', 'scavenges', 'ms', 'full', 'ms', 'other', 'ms', 'paused', 'longest ms'],
            rows: [gcTableRow('ledger', gcOfLedger), gcTableRow('client', gcOfClient)],
          },
          {
            title: 'CPU per consume (ms): where it goes on the shared cores',
            columns: ['c', 'svc: service', 'postgres', 'client', 'nats', 'raw: postgres', 'client', 'nats', 'pgbench: postgres'],
            rows: [
              ...levels.map((l) => [
                l.concurrency,
                l.service.cpuMsPerConsume.service ?? '-',
                l.service.cpuMsPerConsume.postgres ?? '-',
                l.service.cpuMsPerConsume.client ?? '-',
                l.service.cpuMsPerConsume.nats ?? '-',
                l.raw?.cpuMsPerConsume.postgres ?? '-',
                l.raw?.cpuMsPerConsume.client ?? '-',
                l.raw?.cpuMsPerConsume.nats ?? '-',
                l.pgbench?.cpuMsPerConsume.postgres ?? '-',
              ]),
              [`${openRate}/s open`, half.cpuMsPerConsume.service ?? '-', half.cpuMsPerConsume.postgres ?? '-', half.cpuMsPerConsume.client ?? '-', half.cpuMsPerConsume.nats ?? '-', '', '', '', ''],
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
