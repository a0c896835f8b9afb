import { parseArgs } from 'node:util';

export interface Flags {
  benchmarks: string[];
  /** Measured time per step. */
  durationMs: number;
  warmupMs: number;
  concurrency: number[];
  /** Pool size of the raw-SQL driver; the ledger's default pool is 10. */
  rawPool: number;
  pgbench: boolean;
  /** consume-throughput without the raw-SQL and pgbench columns (for profiling the service alone). */
  serviceOnly: boolean;
  /** consume-throughput's open-loop runs, one after another (default: half of the peak, where the p99 target is judged). */
  openRates: OpenRate[];
  /** Consumes per second for event-lag, one step each; the targets apply to the highest. */
  rates: number[];
  hotSessions: number;
  hotWorkers: number;
  expiryCount: number;
  reportEntries: number;
  /** Write V8 CPU profiles of the service processes to bench/profiles/. */
  cpuProf: boolean;
  logLevel: string;
  /** With the server's autovacuum off: how often the bench vacuums and analyzes in its place; 0 never. */
  autovacuumEveryMs: number;
}

export const USAGE = `pnpm bench [benchmark …] [flags]

benchmarks (default: all): consume-throughput, hot-row, event-lag, expiry-sweep, report

flags:
  --duration S          measured seconds per step (default 10)
  --warmup S            unmeasured warm-up seconds per step (default 2)
  --quick               --duration 3 --warmup 1 (a smoke run)
  --concurrency LIST    consume-throughput levels (default 1,4,16,64)
  --raw-pool N          pool size of the raw-SQL driver (default 10, the ledger's)
  --no-pgbench          skip the pgbench column
  --service-only        consume-throughput without the raw-SQL and pgbench runs (profiling)
  --open-rate LIST      consume-throughput's open-loop runs, each N/s or N% of the peak
                        (default 50%, where the p99 target is judged; e.g. 6%,12%,25%,50% for
                        the tail against the rate, or 300 to compare configurations at one rate)
  --rate LIST           event-lag consumes per second, one step each (default 100,500)
  --hot-sessions N      hot-row: sessions in the shared entitlement (default 1000)
  --hot-workers N       hot-row: concurrent consumers (default 64)
  --expiry N            expiry-sweep: due entitlements (default 100000); --expiry-1m = 1000000
  --report-entries N    report: journal entries to roll forward (default 1000000); --report-10m = 10000000
  --cpu-prof            write V8 CPU profiles of the services to bench/profiles/
  --log-level L         services' LOG_LEVEL (default info, as in production)
  --autovacuum-every S  with the server's autovacuum off, vacuum and analyze in its place every S s (default 10; 0 never)
  --help`;

/** An open-loop run's rate: consumes per second, or a share of the peak the closed-loop steps found. */
export type OpenRate = { perSecond: number } | { shareOfPeak: number };

export const HALF_OF_PEAK = { shareOfPeak: 0.5 } as const satisfies OpenRate;

/** `300` (consumes/s, at least 1) or `25%` (of the peak, above 0). */
export function parseOpenRate(value: string): OpenRate {
  const share = /^(\d+(?:\.\d+)?)%$/.exec(value);
  if (share) {
    const percent = Number(share[1]);
    if (percent > 0) return { shareOfPeak: percent / 100 };
  } else if (/^\d+(?:\.\d+)?$/.test(value) && Number(value) >= 1) {
    return { perSecond: Number(value) };
  }
  throw new Error(`--open-rate takes consumes per second (at least 1) or a share of the peak above 0 %, such as 300 or 25%, got ${JSON.stringify(value)}`);
}

export const ALL_BENCHMARKS = ['consume-throughput', 'hot-row', 'event-lag', 'expiry-sweep', 'report'];

export function parseFlags(argv: string[]): Flags | 'help' {
  const { values, positionals } = parseArgs({
    args: argv.filter((a) => a !== '--'),
    allowPositionals: true,
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      quick: { type: 'boolean' },
      concurrency: { type: 'string' },
      'raw-pool': { type: 'string' },
      'no-pgbench': { type: 'boolean' },
      'service-only': { type: 'boolean' },
      'open-rate': { type: 'string' },
      rate: { type: 'string' },
      'hot-sessions': { type: 'string' },
      'hot-workers': { type: 'string' },
      expiry: { type: 'string' },
      'expiry-1m': { type: 'boolean' },
      'report-entries': { type: 'string' },
      'report-10m': { type: 'boolean' },
      'cpu-prof': { type: 'boolean' },
      'log-level': { type: 'string' },
      'autovacuum-every': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  for (const name of positionals) {
    if (!ALL_BENCHMARKS.includes(name)) throw new Error(`unknown benchmark ${JSON.stringify(name)} (known: ${ALL_BENCHMARKS.join(', ')})`);
  }
  const num = (flag: string, value: string | undefined, fallback: number, min = 0) => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${flag} must be a number ≥ ${min}, got ${JSON.stringify(value)}`);
    return n;
  };
  const quick = values.quick === true;
  return {
    benchmarks: positionals.length > 0 ? positionals : ALL_BENCHMARKS,
    durationMs: num('duration', values.duration, quick ? 3 : 10, 1) * 1000,
    warmupMs: num('warmup', values.warmup, quick ? 1 : 2) * 1000,
    concurrency: values.concurrency
      ? values.concurrency.split(',').map((s) => num('concurrency', s.trim(), 1, 1))
      : [1, 4, 16, 64],
    rawPool: num('raw-pool', values['raw-pool'], 10, 1),
    pgbench: values['no-pgbench'] !== true && values['service-only'] !== true,
    serviceOnly: values['service-only'] === true,
    openRates: values['open-rate'] !== undefined ? values['open-rate'].split(',').map((r) => parseOpenRate(r.trim())) : [HALF_OF_PEAK],
    rates: values.rate ? values.rate.split(',').map((r) => num('rate', r.trim(), 1, 1)) : [100, 500],
    hotSessions: num('hot-sessions', values['hot-sessions'], 1000, 1),
    hotWorkers: num('hot-workers', values['hot-workers'], 64, 1),
    expiryCount: values['expiry-1m'] ? 1_000_000 : num('expiry', values.expiry, 100_000, 1),
    reportEntries: values['report-10m'] ? 10_000_000 : num('report-entries', values['report-entries'], 1_000_000, 1),
    cpuProf: values['cpu-prof'] === true,
    logLevel: values['log-level'] ?? 'info',
    autovacuumEveryMs: num('autovacuum-every', values['autovacuum-every'], 10) * 1000,
  };
}
