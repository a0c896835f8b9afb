import { toBinary } from '@bufbuild/protobuf';
import { ConsumeResponseSchema } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { createEnv } from '../env.js';
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

interface Level {
  concurrency: number;
  service: LoadResult;
  raw: LoadResult;
  pgbench?: LoadResult;
}

export const consumeThroughput: Benchmark = {
  name: 'consume-throughput',
  async run(flags: Flags): Promise<Outcome> {
    const progress = new Progress('consume-throughput');
    const env = await createEnv('consume');
    try {
      progress.note('starting entitlement-ledger (own database and bus namespace)');
      const ledger = await startServiceProcess({ service: 'entitlement-ledger', env, logLevel: flags.logLevel, ...profileDir(flags) });
      const client = await seedTenant(env, ledger, { bulk: terms({ paidSessions: SESSIONS }) });
      const maxC = Math.max(...flags.concurrency);
      await client.purchaseWhenKnown('bulk');
      progress.note(`purchasing ${maxC} entitlements each for the service, the raw driver and pgbench`);
      const forService = (await client.purchaseMany('bulk', maxC)).map((e) => e.entitlementId);
      const forRaw = (await client.purchaseMany('bulk', maxC)).map((e) => e.entitlementId);
      const forPgbench = (await client.purchaseMany('bulk', maxC)).map((e) => e.entitlementId);
      // The raw transaction stores a payload the size of what the service stores (event, response).
      const payload = Buffer.from(toBinary(ConsumeResponseSchema, await client.consume(forService[0]!)));
      const raw = new RawConsumer(env.database.url, flags.rawPool, client.tenantId, payload);
      env.defer(() => raw.close());
      const pgbench = flags.pgbench ? pgbenchVersion() : undefined;
      const pgbenchSetup = { url: env.database.url, tenantId: client.tenantId, entitlementIds: forPgbench, payload };
      if (pgbench) await preparePgbench(pgbenchSetup);

      ledger.resetPeakRss();
      const levels: Level[] = [];
      const step = { durationMs: flags.durationMs, warmupMs: flags.warmupMs, progress };
      for (const c of flags.concurrency) {
        const service = await closedLoop({ ...step, concurrency: c, label: `service c=${c}`, op: (w) => client.consumeOutcome(forService[w]!) });
        progress.note(`service   c=${c}: ${service.throughput}/s, p99 ${service.latency.p99} ms`);
        const rawResult = await closedLoop({ ...step, concurrency: c, label: `raw SQL c=${c}`, op: (w) => raw.consume(forRaw[w]!) });
        progress.note(`raw SQL   c=${c}: ${rawResult.throughput}/s, p99 ${rawResult.latency.p99} ms`);
        let pgb: LoadResult | undefined;
        if (pgbench) {
          progress.update(`pgbench c=${c} …`);
          pgb = await runPgbench(pgbenchSetup, { concurrency: c, durationMs: flags.durationMs, warmupMs: flags.warmupMs });
          progress.note(`pgbench   c=${c}: ${pgb.throughput}/s, p99 ${pgb.latency.p99} ms`);
        }
        levels.push({ concurrency: c, service, raw: rawResult, ...(pgb ? { pgbench: pgb } : {}) });
      }

      const peak = levels.reduce((best, l) => (l.service.throughput > best.service.throughput ? l : best));
      const rawPeak = Math.max(...levels.map((l) => l.raw.throughput));
      const pgbenchPeak = pgbench ? Math.max(...levels.map((l) => l.pgbench?.throughput ?? 0)) : undefined;
      const halfRate = Math.max(1, Math.floor(peak.service.throughput / 2));
      let n = 0;
      const half = await openLoop({
        ...step,
        rate: halfRate,
        label: `service at half of peak (${halfRate}/s)`,
        op: () => client.consumeOutcome(forService[n++ % forService.length]!),
      });
      progress.note(`service at ${halfRate}/s (half of peak): p50 ${half.latency.p50} ms, p99 ${half.latency.p99} ms`);
      const peakRss = ledger.peakRssMb();

      const ratio = round(peak.service.throughput / rawPeak, 2);
      const targets: Target[] = [
        { what: 'service peak / raw-SQL peak', target: '≥ 0.50', actual: ratio.toFixed(2), met: ratio >= 0.5 },
        { what: `p99 at half of peak (${halfRate}/s)`, target: '≤ 20 ms', actual: `${half.latency.p99} ms`, met: half.latency.p99 <= 20 },
      ];
      const ms = (l: LoadResult | undefined, k: 'p50' | 'p99') => (l ? l.latency[k] : '-');
      return {
        params: {
          concurrency: flags.concurrency,
          durationSeconds: flags.durationMs / 1000,
          warmupSeconds: flags.warmupMs / 1000,
          rawPool: flags.rawPool,
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
          halfPeak: { rate: halfRate, ...half },
        },
        peakRssMb: { 'entitlement-ledger': peakRss },
        targets,
        notes: [
          'Closed loop: each of c workers sends its next Consume when the previous returns; each worker consumes from its own entitlement (no row contention).',
          'raw SQL: the same writes (conditional decrement, entry, idempotency record, outbox row + NOTIFY) in the same tables, through node-pg from the bench process, 4 round trips.',
          'pgbench: the same transaction as a pgbench script (C client, one connection per client).',
          'Half of peak: open loop at a fixed rate; latency from each scheduled start (no coordinated omission).',
        ],
        table: {
          title: 'consume-throughput (consumes/s, latency ms)',
          columns: ['c', 'service/s', 'p50', 'p95', 'p99', 'raw/s', 'p50', 'p99', 'pgbench/s', 'p99', 'svc/raw', 'svc/pgbench'],
          rows: [
            ...levels.map((l) => [
              l.concurrency,
              l.service.throughput,
              l.service.latency.p50,
              l.service.latency.p95,
              l.service.latency.p99,
              l.raw.throughput,
              l.raw.latency.p50,
              l.raw.latency.p99,
              l.pgbench?.throughput ?? '-',
              ms(l.pgbench, 'p99'),
              round(l.service.throughput / l.raw.throughput, 2),
              l.pgbench ? round(l.service.throughput / l.pgbench.throughput, 2) : '-',
            ]),
            [`${halfRate}/s open`, half.throughput, half.latency.p50, half.latency.p95, half.latency.p99, '', '', '', '', '', '', ''],
          ],
        },
      };
    } finally {
      progress.stop();
      await env.close();
    }
  },
};
