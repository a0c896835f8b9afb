import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { MachineInfo } from './machine.js';
import type { AutovacuumReport } from './autovacuum.js';
import { REPO_ROOT } from './service-process.js';

export interface Target {
  what: string;
  target: string;
  actual: string;
  met: boolean;
}

export interface BenchmarkResult {
  benchmark: string;
  startedAt: string;
  seconds: number;
  machine: MachineInfo;
  /** 1-minute load average before and after: other work on the machine skews the figures. */
  loadAverage: { before: number; after: number };
  params: Record<string, unknown>;
  /** Whether the server's autovacuum vacuumed and analyzed the tables, or the bench in its place. */
  autovacuum: AutovacuumReport;
  figures: Record<string, unknown>;
  /** Peak resident set size of each service process during the benchmark, MiB. */
  peakRssMb: Record<string, number>;
  targets: Target[];
  notes: string[];
  tables: Table[];
}

export interface Table {
  title: string;
  columns: string[];
  rows: Array<Array<string | number>>;
}

export const RESULTS_DIR = path.join(REPO_ROOT, 'bench', 'results');

export function writeResult(result: BenchmarkResult): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${result.benchmark}.json`);
  writeFileSync(file, `${JSON.stringify(result, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
  return file;
}

export function formatTable(t: Table): string {
  const cells = [t.columns, ...t.rows.map((r) => r.map(String))];
  const widths = t.columns.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  // Numbers line up on the right, words on the left.
  const numeric = t.columns.map((_, i) => t.rows.every((r) => r[i] === undefined || r[i] === '' || r[i] === '-' || typeof r[i] === 'number'));
  const line = (r: string[]) => r.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  return [t.title, line(t.columns), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function formatTargets(targets: Target[]): string {
  return targets.map((t) => `  ${t.met ? 'met ' : 'MISS'}  ${t.what}: ${t.actual} (target ${t.target})`).join('\n');
}
