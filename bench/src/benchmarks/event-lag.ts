import { existsSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fromBinary } from '@bufbuild/protobuf';
import { JournalPostedSchema } from '@punchcard/contracts/punchcard/events/v1/revenue_events_pb';
import { systemCpuMeter } from '../cpu.js';
import { createEnv } from '../env.js';
import { EventWatch } from '../events.js';
import type { Flags } from '../flags.js';
import { seedTenant, terms } from '../ledger.js';
import { openLoop } from '../load.js';
import { Progress } from '../progress.js';
import type { Target } from '../results.js';
import { REPO_ROOT, startServiceProcess } from '../service-process.js';
import { round, summarise } from '../stats.js';
import { profileDir } from './profiles.js';
import type { Benchmark, Outcome } from './types.js';

/** A 20-session pass: revenue allocates the price over every session, so packages stay realistic. */
const SESSIONS = 20;
const DRAIN_TIMEOUT_MS = 180_000;

/** Lag of each key from `from` to its arrival in `watch`, ms; events seen before the response count 0. */
function lags(from: Map<string, number>, watch: EventWatch) {
  const out: number[] = [];
  let early = 0;
  for (const [k, t0] of from) {
    const t1 = watch.seen.get(k);
    if (t1 === undefined) continue;
    if (t1 < t0) early++;
    out.push(Math.max(0, t1 - t0));
  }
  return { latency: summarise(out), seenBeforeResponse: early };
}

export const eventLag: Benchmark = {
  name: 'event-lag',
  unavailable: () =>
    existsSync(path.join(REPO_ROOT, 'services/revenue-recognition/src/service.ts')) ? undefined : 'needs services/revenue-recognition (not landed yet)',
  async run(flags: Flags): Promise<Outcome> {
    const progress = new Progress('event-lag');
    const env = await createEnv('event_lag', flags.autovacuumEveryMs);
    try {
      progress.note('starting entitlement-ledger and revenue-recognition (own database and bus namespace)');
      const ledger = await startServiceProcess({ service: 'entitlement-ledger', env, logLevel: flags.logLevel, ...profileDir(flags) });
      const revenue = await startServiceProcess({ service: 'revenue-recognition', env, logLevel: flags.logLevel, ...profileDir(flags) });
      const client = await seedTenant(env, ledger, { pass: terms({ paidSessions: SESSIONS, price: { currencyCode: 'SGD', amountMinor: 150_000n } }) });

      // The relay's leg: the ledger's event as any subscriber sees it (Nats-Msg-Id = entry id).
      const relayed = await EventWatch.start(env, 'LEDGER', `punchcard.ledger.*.${client.tenantId}`, (_d, h) => h.get('Nats-Msg-Id') || undefined);
      // The whole way: revenue's journal entry for that ledger entry, published once it committed.
      const recognised = await EventWatch.start(env, 'REVENUE', `punchcard.revenue.journal_posted.${client.tenantId}`, (d) => fromBinary(JournalPostedSchema, d).entry?.sourceId);

      const rates = [...flags.rates].sort((a, b) => a - b);
      const total = rates.reduce((sum, rate) => sum + Math.ceil((rate * (flags.durationMs + flags.warmupMs)) / 1000), 0);
      const count = Math.ceil(total / (SESSIONS - 1)) + 1;
      progress.note(`purchasing ${count} ${SESSIONS}-session packages; waiting until revenue has booked each sale`);
      const first = await client.purchaseWhenKnown('pass');
      const rest = await client.purchaseMany('pass', count - 1);
      const entitlements = [first, ...rest];
      const purchaseEntries = await Promise.all(entitlements.map(async (e) => (await client.entries(e.entitlementId))[0]!.entryId));
      const unbooked = await recognised.waitFor(purchaseEntries, DRAIN_TIMEOUT_MS, (n) => progress.update(`revenue booking sales: ${n} to go`));
      if (unbooked.length > 0) throw new Error(`revenue-recognition did not book ${unbooked.length} of ${count} sales within ${DRAIN_TIMEOUT_MS / 1000} s`);

      ledger.resetPeakRss();
      revenue.resetPeakRss();
      const { meter: cpu, note: cpuGroups } = await systemCpuMeter(env, { 'entitlement-ledger': ledger, 'revenue-recognition': revenue });
      let next = 0;
      const steps = [];
      for (const rate of rates) {
        const committed = new Map<string, number>();
        // From the first measured consume until revenue has posted the last: what each costs on the way.
        let metering: Promise<void> | undefined;
        const result = await openLoop({
          rate,
          onMeasureStart: () => (metering = cpu.start()),
          durationMs: flags.durationMs,
          warmupMs: flags.warmupMs,
          progress,
          label: `consuming at ${rate}/s`,
          op: async (_seq, measured) => {
            try {
              const r = await client.consume(entitlements[next++ % entitlements.length]!.entitlementId);
              if (measured) committed.set(r.entry!.entryId, performance.now());
              return 'ok';
            } catch (err) {
              return String((err as { code?: number }).code ?? (err as Error).message);
            }
          },
        });
        progress.note(`consumed at ${result.throughput}/s (target ${rate}/s); waiting for the events of all ${committed.size}`);
        const t0 = performance.now();
        const missingRelay = await relayed.waitFor(committed.keys(), DRAIN_TIMEOUT_MS, (n) => progress.update(`ledger events: ${n} to go`));
        const missingRevenue = await recognised.waitFor(committed.keys(), DRAIN_TIMEOUT_MS, (n) => progress.update(`revenue entries: ${n} to go`));
        const drainSeconds = round((performance.now() - t0) / 1000);
        await metering;
        const cpuSeconds = await cpu.stop();
        const consumes = result.ok + Object.values(result.failures).reduce((a, b) => a + b, 0);
        const cpuMsPerConsume = Object.fromEntries(Object.entries(cpuSeconds).map(([k, sec]) => [k, consumes > 0 ? round((sec * 1000) / consumes, 3) : 0]));
        const relay = lags(committed, relayed);
        const revenueLag = lags(committed, recognised);
        progress.note(`at ${rate}/s: ledger event p99 ${relay.latency.p99} ms, revenue p99 ${revenueLag.latency.p99} ms`);
        steps.push({
          rate,
          consumes: result,
          relayLag: { ...relay, missing: missingRelay.length },
          revenueLag: { ...revenueLag, missing: missingRevenue.length },
          drainSeconds,
          cpuSeconds,
          cpuMsPerConsume,
        });
      }
      const peakRss = { 'entitlement-ledger': ledger.peakRssMb(), 'revenue-recognition': revenue.peakRssMb() };

      const top = steps.at(-1)!;
      const targets: Target[] = [
        {
          what: `consume committed → revenue recognised, p99 at ${top.rate}/s`,
          target: '≤ 250 ms',
          actual: `${top.revenueLag.latency.p99} ms${top.revenueLag.missing ? ` (${top.revenueLag.missing} never arrived)` : ''}`,
          met: top.revenueLag.latency.p99 <= 250 && top.revenueLag.missing === 0,
        },
        {
          what: `consumes sustained at ${top.rate}/s`,
          target: `${top.rate}/s`,
          actual: `${top.consumes.throughput}/s`,
          met: top.consumes.throughput >= top.rate * 0.98,
        },
      ];
      const ms = (l: { latency: { p50: number; p95: number; p99: number; max: number } }) => [l.latency.p50, l.latency.p95, l.latency.p99, l.latency.max];
      return {
        params: { rates, durationSeconds: flags.durationMs / 1000, warmupSeconds: flags.warmupMs / 1000, packages: count, sessionsPerPackage: SESSIONS, logLevel: flags.logLevel },
        figures: { steps },
        peakRssMb: peakRss,
        targets,
        notes: [
          'Consumes at a fixed rate (open loop) over gRPC; "committed" is when the client holds the Consume response.',
          'ledger event: until the ledger.session_consumed event reaches a plain JetStream subscriber (outbox → relay → JetStream → subscriber).',
          'revenue recognised: until revenue.journal_posted for that ledger entry reaches the subscriber (revenue-recognition consumed the event, posted the journal entry and relayed its own event).',
          'Events seen before the client had its response count as 0 ms. Each rate runs after the previous one drained.',
          'CPU per consume: each process group from the end of the warm-up until revenue had posted the last consume, over the consumes measured.',
          cpuGroups,
        ],
        tables: [
          {
            title: `event-lag (ms; ${flags.durationMs / 1000} s per rate)`,
            columns: ['rate', 'leg', 'count', 'p50', 'p95', 'p99', 'max', 'note'],
            rows: steps.flatMap((st) => [
              [`${st.rate}/s`, 'Consume RPC (from schedule)', st.consumes.ok, ...ms(st.consumes), `${st.consumes.throughput}/s done${st.consumes.skipped ? `, ${st.consumes.skipped} not sent` : ''}`],
              ['', 'committed → ledger event', st.relayLag.latency.count, ...ms(st.relayLag), st.relayLag.missing ? `${st.relayLag.missing} missing` : ''],
              ['', 'committed → revenue recognised', st.revenueLag.latency.count, ...ms(st.revenueLag), st.revenueLag.missing ? `${st.revenueLag.missing} missing` : ''],
            ]),
          },
          {
            title: 'CPU per consume (ms), from the end of the warm-up until revenue posted the last',
            columns: ['rate', ...Object.keys(steps[0]?.cpuMsPerConsume ?? {}), 'in all'],
            rows: steps.map((st) => [`${st.rate}/s`, ...Object.values(st.cpuMsPerConsume), round(Object.values(st.cpuMsPerConsume).reduce((a, b) => a + b, 0), 3)]),
          },
        ],
      };
    } finally {
      progress.stop();
      await env.close();
    }
  },
};
