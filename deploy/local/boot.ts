import { performance } from 'node:perf_hooks';
import { clientsFor, devToken } from './clients.js';
import { startInfra, type Infra } from './infra.js';
import { DATA_DIR, localSecrets, statePath, writeState } from './local-state.js';
import { DEMO_TENANT, seedBilling, seedCatalogue, seedMember, type DemoCatalogue } from './seed.js';
import { migrateAll, startStack, type RunningStack } from './stack.js';
import { rmSync } from 'node:fs';

export interface BootOptions {
  /** Progress of the launcher itself. */
  say(line: string): void;
  /** Every line the services and their migrations write (pino JSON). */
  onServiceLine(service: string, line: string): void;
  dataDir?: string;
}

export interface Booted {
  infra: Infra;
  stack: RunningStack;
  demo: DemoCatalogue;
  token: string;
  member: string;
  /** Seconds from the call to the seeded, ready system. */
  seconds: number;
}

export interface Booting {
  ready: Promise<Booted>;
  /** Stops whatever has started so far (also while booting): services first, then NATS and Postgres. */
  stop(): Promise<void>;
}

/**
 * Postgres + NATS, migrations, the services, the demo tenant: what `pnpm start` (and `pnpm demo`
 * when nothing runs yet) brings up. Cleans up what it started if any step fails.
 */
export function bootLocal(o: BootOptions): Booting {
  const startedAt = performance.now();
  const dataDir = o.dataDir ?? DATA_DIR;
  const elapsed = () => `${((performance.now() - startedAt) / 1000).toFixed(1)} s`;
  let infra: Infra | undefined;
  let stack: RunningStack | undefined;
  let stopped = false;
  let stopping: Promise<void> | undefined;
  // The step in progress: a stop waits for it, so what it starts is stopped too.
  let step: Promise<unknown> = Promise.resolve();
  const run = <T>(p: Promise<T>): Promise<T> => {
    step = p.catch(() => undefined);
    return p;
  };
  const stop = () =>
    (stopping ??= (async () => {
      stopped = true;
      await step;
      await stack?.stop();
      await infra?.stop();
      rmSync(statePath(dataDir), { force: true });
    })());
  const ensureRunning = () => {
    if (stopped) throw new Error('stopped while starting');
  };
  const ready = (async (): Promise<Booted> => {
    const servers = await run(startInfra(dataDir, o.say).then((i) => (infra = i)));
    ensureRunning();
    const options = {
      databaseUrl: servers.databaseUrl,
      natsUrl: servers.natsUrl,
      auth: 'dev' as const,
      ports: 'default' as const,
      secrets: localSecrets(dataDir),
      env: {
        LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
        ...(process.env.OTEL_EXPORTER_OTLP_ENDPOINT ? { OTEL_EXPORTER_OTLP_ENDPOINT: process.env.OTEL_EXPORTER_OTLP_ENDPOINT } : {}),
      },
      onLine: (service: string, line: string) => o.onServiceLine(service, line),
      pidFile: `${dataDir}/services.pid.json`,
      dataDir,
    };
    o.say('running migrations…');
    await run(migrateAll(options));
    o.say(`migrations applied (${elapsed()})`);
    ensureRunning();
    const services = await run(startStack(options).then((s) => (stack = s)));
    ensureRunning();
    o.say(`all services ready (${elapsed()})`);

    const urls = Object.fromEntries(Object.values(services.services).map((s) => [s.name, s.apiUrl]));
    const token = await devToken(DEMO_TENANT);
    const clients = clientsFor(urls, token);
    const demo = await seedCatalogue(clients, (line) => o.say(`seed: ${line}`));
    await seedBilling(clients, (line) => o.say(`seed: ${line}`));
    const member = await seedMember(clients, demo, (line) => o.say(`seed: ${line}`));
    writeState(
      {
        pid: process.pid,
        natsUrl: servers.natsUrl,
        busNamespace: '',
        services: Object.fromEntries(Object.values(services.services).map((s) => [s.name, { apiUrl: s.apiUrl, opsUrl: s.opsUrl }])),
        demo,
      },
      dataDir,
    );
    return { infra: servers, stack: services, demo, token, member, seconds: (performance.now() - startedAt) / 1000 };
  })();
  ready.catch(() => stop());
  return { ready, stop };
}
