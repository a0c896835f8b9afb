import { connectBus, deleteStreams, type Bus } from '@punchcard/bus';
import { createTestDatabase, testNamespace, testNats, type TestDatabase } from '@punchcard/testing';
import { keepStatistics } from './statistics.js';

/** One benchmark's own database and bus namespace, removed afterwards (also on Ctrl-C). */
export interface BenchEnv {
  database: TestDatabase;
  natsUrl: string;
  namespace: string;
  /** The bench's own NATS connection (catalogue feed, event subscribers). */
  bus: Bus;
  /** Registers cleanup, run last-registered-first by `close()`. */
  defer(fn: () => Promise<void> | void): void;
  close(): Promise<void>;
}

const open = new Set<BenchEnv>();

/**
 * `analyzeEveryMs`: when the server runs without autovacuum, how often the bench analyzes the tables
 * that changed enough in its place (see keepStatistics); 0 never.
 */
export async function createEnv(label: string, analyzeEveryMs: number): Promise<BenchEnv> {
  const database = await createTestDatabase(`bench_${label.replace(/-/g, '_')}`);
  const stopStatistics = await keepStatistics(database.url, analyzeEveryMs);
  const natsUrl = await testNats();
  const namespace = testNamespace('bench');
  const bus = await connectBus({ url: natsUrl, name: `bench-${label}` });
  const hooks: Array<() => Promise<void> | void> = [];
  let closing: Promise<void> | undefined;
  const env: BenchEnv = {
    database,
    natsUrl,
    namespace,
    bus,
    defer: (fn) => void hooks.push(fn),
    close: () =>
      (closing ??= (async () => {
        for (const fn of hooks.reverse()) {
          try {
            await fn();
          } catch (err) {
            process.stderr.write(`cleanup failed: ${(err as Error).message}\n`);
          }
        }
        await deleteStreams(bus.jsm, namespace).catch(() => undefined);
        await bus.close();
        await stopStatistics();
        await database.drop();
        open.delete(env);
      })()),
  };
  open.add(env);
  return env;
}

/** Ctrl-C: stop the services, drop the databases and streams, then exit. */
export function cleanUpOnSignal(): void {
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: cleaning up…\n`);
    void Promise.allSettled([...open].map((e) => e.close())).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}
