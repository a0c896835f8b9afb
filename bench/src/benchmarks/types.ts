import type { Flags } from '../flags.js';
import type { BenchmarkResult } from '../results.js';

export type Outcome = Omit<BenchmarkResult, 'benchmark' | 'startedAt' | 'seconds' | 'machine' | 'loadAverage' | 'autovacuum'>;

export interface Benchmark {
  name: string;
  /** Why it cannot run on this checkout (a service it needs has not landed), or undefined. */
  unavailable?(): string | undefined;
  run(flags: Flags): Promise<Outcome>;
}
