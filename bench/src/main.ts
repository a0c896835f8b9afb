import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { connectBus } from '@punchcard/bus';
import { testNats, testPostgres } from '@punchcard/testing';
import { BENCHMARKS } from './benchmarks/index.js';
import { cleanUpOnSignal } from './env.js';
import { parseFlags, USAGE } from './flags.js';
import { installLeanBind } from './lean-bind.js';
import { machineInfo } from './machine.js';
import { surviveClosedOutput } from './output.js';
import { formatTable, formatTargets, writeResult } from './results.js';
import { lastAutovacuum } from './autovacuum.js';
import { round } from './stats.js';

/** `pnpm bench`: runs the chosen benchmarks one after another, each in its own database and namespace. */
export async function main(argv: string[]): Promise<number> {
  let flags;
  try {
    flags = parseFlags(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (flags === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const clientLeanBind = installLeanBind();
  cleanUpOnSignal();
  surviveClosedOutput(process.stdout);
  surviveClosedOutput(process.stderr);
  const bus = await connectBus({ url: await testNats(), name: 'bench-machine-info' });
  const machine = await machineInfo(await testPostgres(), bus, clientLeanBind);
  await bus.close();
  process.stderr.write(`${machine.cpuModel} × ${machine.cores}, ${machine.memoryGiB} GiB, Node ${machine.node}, Postgres ${machine.postgres}, NATS ${machine.nats}\n`);
  const { busyMicros, afterSleepMicros, sleepMs, factor } = machine.idlePenalty;
  process.stderr.write(`a wake-up here: ${busyMicros} µs of work back to back took ${afterSleepMicros} µs after ${sleepMs} ms asleep (${factor}×)\n`);
  if (clientLeanBind) process.stderr.write("the bench's gRPC client runs with a lean AsyncResource#bind: Node 20's keeps each call alive through the scavenges (bench/src/lean-bind.ts)\n");

  let failed = 0;
  const pending: string[] = [];
  for (const name of flags.benchmarks) {
    const benchmark = BENCHMARKS.find((b) => b.name === name);
    if (!benchmark) {
      pending.push(`${name}: not implemented`);
      continue;
    }
    const missing = benchmark.unavailable?.();
    if (missing) {
      pending.push(`${name}: ${missing}`);
      continue;
    }
    const startedAt = new Date();
    const t0 = performance.now();
    const loadBefore = os.loadavg()[0]!;
    try {
      const outcome = await benchmark.run(flags);
      const seconds = Math.round((performance.now() - t0) / 100) / 10;
      const loadAverage = { before: round(loadBefore), after: round(os.loadavg()[0]!) };
      const file = writeResult({ benchmark: name, startedAt: startedAt.toISOString(), seconds, machine, loadAverage, autovacuum: { ...lastAutovacuum }, ...outcome });
      const rss = Object.entries(outcome.peakRssMb).map(([svc, mb]) => `${svc} ${mb} MiB`).join(', ');
      for (const table of outcome.tables) process.stdout.write(`\n${formatTable(table)}\n`);
      if (outcome.targets.length > 0) process.stdout.write(`targets:\n${formatTargets(outcome.targets)}\n`);
      process.stdout.write(`peak RSS: ${rss || '-'}   (${seconds} s, load average ${loadAverage.before} → ${loadAverage.after}, ${file.slice(file.indexOf('bench/'))})\n`);
      process.stdout.write(`${describeAutovacuum()}\n`);
    } catch (err) {
      failed++;
      process.stderr.write(`\n[${name}] failed: ${(err as Error).stack ?? String(err)}\n`);
    }
  }
  if (pending.length > 0) process.stdout.write(`\nnot run (pending):\n${pending.map((p) => `  ${p}`).join('\n')}\n`);
  return failed > 0 ? 1 : 0;
}

function describeAutovacuum(): string {
  const { autovacuum, standInEverySeconds, vacuums, analyzes } = lastAutovacuum;
  if (standInEverySeconds === 0) return `autovacuum ${autovacuum}${autovacuum === 'on' ? '' : '; nothing vacuumed or analyzed (--autovacuum-every 0)'}`;
  return `autovacuum ${autovacuum}; the bench stood in for it every ${standInEverySeconds} s (${vacuums} vacuums, ${analyzes} analyzes)`;
}
