import { connectBus, deleteStreams, type Bus } from '@punchcard/bus';
import { createTestDatabase, testNamespace, testNats, type TestDatabase } from '@punchcard/testing';
import { standInForAutovacuum } from './autovacuum.js';

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
 * `autovacuumEveryMs`: when the server runs without autovacuum, how often the bench does its work on
 * the benchmark's database in its place (see standInForAutovacuum); 0 never.
 */
export async function createEnv(label: string, autovacuumEveryMs: number): Promise<BenchEnv> {
  const database = await createTestDatabase(`bench_${label.replace(/-/g, '_')}`);
  const stopAutovacuum = await standInForAutovacuum(database.url, autovacuumEveryMs);
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
        await stopAutovacuum().catch((err: Error) => void process.stderr.write(`stopping the autovacuum stand-in failed: ${err.message}\n`));
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
