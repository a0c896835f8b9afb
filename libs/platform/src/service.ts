import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import type { Tracer } from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { Health } from '@punchcard/contracts/grpc/health/v1/health_pb';
import { ServerReflection } from '@punchcard/contracts/grpc/reflection/v1/reflection_pb';
import { ServerReflection as ServerReflectionV1alpha } from '@punchcard/contracts/grpc/reflection/v1alpha/reflection_pb';
import type { DestinationStream, Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import { authInterceptor, createTokenVerifier } from './auth.js';
import { ConfigError, loadConfig, type Requirement, type ServiceConfig } from './config.js';
import { healthService } from './health.js';
import { startHousekeeping, type Housekeeping, type Pruned } from './housekeeping.js';
import { createLogger } from './logger.js';
import { jsonAnswersInterceptor } from './json-answers.js';
import { createMetrics } from './metrics.js';
import { observabilityInterceptor } from './observability.js';
import { listenOps, type OpsServer } from './ops.js';
import { Readiness, type ReadinessCheck } from './readiness.js';
import { ReflectionIndex, reflectionService, reflectionServiceV1alpha } from './reflection.js';
import { listenApi, type ApiServer } from './server.js';
import { shutdownSignal } from './shutdown-signal.js';
import { createTracing } from './tracing.js';

export type StopHook = () => Promise<void> | void;

/** What every lifecycle hook of a service gets. */
export interface ServiceContext<Env = {}> {
  config: ServiceConfig<Env>;
  logger: Logger;
  /** This service's tracer; spans started inside an RPC are children of its server span. */
  tracer: Tracer;
  /** The registry /metrics serves; register the service's own metrics here. */
  metrics: Registry;
  /** Registers cleanup for shutdown, run last-registered-first after RPCs drained and stop hooks ran: close pools here. */
  onClose(hook: StopHook): void;
}

/** The context after `setup`, with what it returned. */
export type RunContext<S, Env = {}> = ServiceContext<Env> & { state: S };

export interface MigrateContext<Env = {}> {
  config: ServiceConfig<Env>;
  logger: Logger;
}

/**
 * A service: its routes and lifecycle. Order at start: `setup` (open pools, connect the bus) →
 * `register` (routes) → servers listen → `start` (consumers, relays) → ready. At shutdown:
 * not ready → stop accepting → drain RPCs → `start`'s stop hook → `onClose` hooks.
 */
export interface ServiceDefinition<S = undefined, Env = {}> {
  /** Kebab-case service name; also the default SERVICE_NAME and (snake_cased) DATABASE_SCHEMA. */
  name: string;
  defaultPorts: { api: number; ops: number };
  /** Makes DATABASE_URL / NATS_URL required at start. */
  requires?: readonly Requirement[];
  /** The service's own environment variables, validated with the platform's. */
  env?: z.ZodType<Env>;
  setup?(ctx: ServiceContext<Env>): Promise<S> | S;
  register(router: ConnectRouter, ctx: RunContext<S, Env>): void;
  /** Dependency checks behind /readyz and grpc.health.v1, e.g. `{ postgres: () => pool.query('select 1') }`. */
  readiness?(ctx: RunContext<S, Env>): Record<string, ReadinessCheck>;
  /** Starts background work once the API serves; returns how to stop it. */
  start?(ctx: RunContext<S, Env>): Promise<StopHook | void> | StopHook | void;
  /**
   * One round of housekeeping: deletes rows that have served their purpose (`pruneSpentRows` for the
   * bus's and idempotency's tables), so tables do not grow without bound. Run every
   * HOUSEKEEPING_INTERVAL_MS while the service serves; returns how many rows of each kind went.
   */
  housekeep?(ctx: RunContext<S, Env>): Promise<Pruned>;
  /** `node dist/main.js migrate`: apply migrations and exit. */
  migrate?(ctx: MigrateContext<Env>): Promise<void>;
}

/** Identity, for type inference of `state` and `env` across the definition's hooks. */
export function defineService<S = undefined, Env = {}>(definition: ServiceDefinition<S, Env>): ServiceDefinition<S, Env> {
  return definition;
}

export interface StartOptions {
  /** Also export spans here, synchronously (tests pass an InMemorySpanExporter). */
  spanExporter?: SpanExporter;
  /** Where JSON logs go; stdout by default. */
  logDestination?: DestinationStream;
  /** How often a grpc.health.v1 Watch re-runs the readiness checks. */
  healthWatchIntervalMs?: number;
}

export interface RunningService<S> {
  /** Base URL of the API port, e.g. http://127.0.0.1:7102. */
  apiUrl: string;
  /** Base URL of the ops port. */
  opsUrl: string;
  state: S;
  logger: Logger;
  /** Runs one round of the definition's housekeeping now, beside the scheduled ones; `{}` without it. */
  housekeep(): Promise<Pruned>;
  /** Graceful shutdown; safe to call more than once. */
  stop(): Promise<void>;
}

// After the grace period, how long cancelled RPCs get to send their Unavailable status.
const CANCEL_GRACE_MS = 1000;

/** Health and reflection answer without a token: probes and grpcurl carry none. */
const OPEN_SERVICES: ReadonlySet<string> = new Set([Health.typeName, ServerReflection.typeName, ServerReflectionV1alpha.typeName]);

/** Starts the service's API and ops servers with the given configuration (ports may be 0). */
export async function startService<S, Env>(
  definition: ServiceDefinition<S, Env>,
  config: ServiceConfig<Env>,
  options: StartOptions = {},
): Promise<RunningService<S>> {
  const logger = createLogger({
    serviceName: config.serviceName,
    level: config.logLevel,
    ...(options.logDestination ? { destination: options.logDestination } : {}),
  });
  if (config.auth.mode === 'dev') {
    logger.warn('AUTH_DEV_MODE=1: accepting tokens signed with the public development secret; never run this in production');
  }
  const tracing = createTracing({
    serviceName: config.serviceName,
    ...(config.otlpEndpoint ? { otlpEndpoint: config.otlpEndpoint } : {}),
    ...(options.spanExporter ? { spanExporter: options.spanExporter } : {}),
  });
  const metrics = createMetrics(config.serviceName);
  const readiness = new Readiness();
  const closeHooks: StopHook[] = [];
  const cancelRpcs = new AbortController();
  const base: ServiceContext<Env> = {
    config,
    logger,
    tracer: tracing.tracer,
    metrics: metrics.registry,
    onClose: (hook) => void closeHooks.push(hook),
  };

  let api: ApiServer | undefined;
  let ops: OpsServer | undefined;
  let stopHook: StopHook | void = undefined;
  let housekeeping: Housekeeping | undefined;

  const runHook = async (what: string, hook: StopHook) => {
    try {
      await hook();
    } catch (err) {
      logger.error({ err }, `${what} failed during shutdown`);
    }
  };
  const release = async () => {
    const rounds = housekeeping;
    if (rounds) await runHook('housekeeping', () => rounds.stop());
    if (stopHook) await runHook('stop hook', stopHook);
    for (const hook of closeHooks.reverse()) await runHook('close hook', hook);
    await ops?.close();
    await tracing.shutdown();
  };

  try {
    const state = (await definition.setup?.(base)) as S;
    const ctx: RunContext<S, Env> = { ...base, state };
    readiness.setChecks(definition.readiness?.(ctx) ?? {});

    let index = new ReflectionIndex([]);
    const handler = connectNodeAdapter({
      routes(router) {
        definition.register(router, ctx);
        router.service(Health, healthService(readiness, () => new Set(index.services), options.healthWatchIntervalMs));
        router.service(ServerReflection, reflectionService(() => index));
        router.service(ServerReflectionV1alpha, reflectionServiceV1alpha(() => index));
        index = new ReflectionIndex(router.handlers.map((h) => h.service));
      },
      shutdownSignal: shutdownSignal(cancelRpcs.signal),
      interceptors: [
        observabilityInterceptor({ tracer: tracing.tracer, metrics, logger, untracedServices: new Set([Health.typeName]) }),
        authInterceptor(createTokenVerifier(config.auth), OPEN_SERVICES),
        jsonAnswersInterceptor(),
      ],
    });

    ops = await listenOps({ readiness, registry: metrics.registry, logger }, config.host, config.opsPort);
    api = await listenApi(handler, config.host, config.port);
    stopHook = await definition.start?.(ctx);
    const { housekeep } = definition;
    if (housekeep && config.housekeepingIntervalMs > 0) {
      housekeeping = startHousekeeping(() => housekeep(ctx), config.housekeepingIntervalMs, {
        logger: logger.child({ component: 'housekeeping' }),
        registry: metrics.registry,
      });
    }
    readiness.setPhase('serving');

    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host.includes(':') ? `[${config.host}]` : config.host;
    const apiUrl = `http://${host}:${api.port}`;
    const opsUrl = `http://${host}:${ops.port}`;
    logger.info({ api: apiUrl, ops: opsUrl, services: index.services }, 'serving');

    const server = api;
    let stopping: Promise<void> | undefined;
    const stop = async () => {
      readiness.setPhase('draining');
      logger.info({ inFlight: server.inFlight, graceMs: config.shutdownGraceMs }, 'draining');
      server.stopAccepting();
      if (!(await server.drained(config.shutdownGraceMs))) {
        logger.warn({ inFlight: server.inFlight }, 'grace period over: cancelling the remaining RPCs');
        cancelRpcs.abort(new ConnectError('server is shutting down', Code.Unavailable));
        await server.drained(CANCEL_GRACE_MS);
      }
      await server.close();
      await release();
      logger.info('stopped');
    };
    return {
      apiUrl,
      opsUrl,
      state,
      logger,
      housekeep: async () => (definition.housekeep ? definition.housekeep(ctx) : {}),
      stop: () => (stopping ??= stop()),
    };
  } catch (err) {
    readiness.setPhase('draining');
    await api?.close();
    await release();
    throw err;
  }
}

/** Exits once buffered log lines are written, so the last lines (why it exited) are not lost or reordered. */
function exitAfterFlush(logger: Logger, code: number): Promise<never> {
  return new Promise(() => logger.flush(() => process.exit(code)));
}

/**
 * The entry point of a service binary: reads the environment, then either `migrate` (argv) and
 * exits, or serves until SIGTERM/SIGINT and exits 0 after a graceful shutdown. Invalid
 * configuration exits 1 with a message naming the variables.
 */
export async function runService<S, Env>(definition: ServiceDefinition<S, Env>, argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  let config: ServiceConfig<Env>;
  try {
    config = loadConfig(definition);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }

  const command = argv[0];
  if (command === 'migrate') {
    const logger = createLogger({ serviceName: config.serviceName, level: config.logLevel });
    if (!definition.migrate) {
      logger.info('no migrations');
    } else {
      try {
        await definition.migrate({ config, logger });
      } catch (err) {
        logger.fatal({ err }, 'migration failed');
        return exitAfterFlush(logger, 1);
      }
    }
    return exitAfterFlush(logger, 0);
  }
  if (command !== undefined) {
    process.stderr.write(`unknown command ${JSON.stringify(command)}: run without arguments to serve, or "migrate"\n`);
    process.exit(2);
  }

  let running: RunningService<S>;
  try {
    running = await startService(definition, config);
  } catch (err) {
    const logger = createLogger({ serviceName: config.serviceName, level: config.logLevel });
    logger.fatal({ err }, 'failed to start');
    return exitAfterFlush(logger, 1);
  }
  const { logger } = running;
  const fatal = (err: unknown) => {
    logger.fatal({ err }, 'unexpected failure, exiting');
    void exitAfterFlush(logger, 1);
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting without waiting for the drain');
      void exitAfterFlush(logger, 1);
      return;
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    running.stop().then(() => exitAfterFlush(logger, 0), fatal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
