import { Code, ConnectError } from '@connectrpc/connect';
import type { ConsumeOutcome } from '@punchcard/bus';
import { ExpiryService } from '@punchcard/contracts/punchcard/expiry/v1/expiry_pb';
import {
  callerOf,
  connectStores,
  defineService,
  DEV_JWT_SECRET,
  migrateDatabase,
  storeReadiness,
  type AuthConfig,
  type ServiceDefinition,
  type Stores,
} from '@punchcard/platform';
import { z } from 'zod';
import { expiryHandlers } from './api/handlers.js';
import { housekeep } from './housekeeping.js';
import { grpcLedger } from './ledger/grpc-ledger.js';
import { expiryMetrics } from './metrics.js';
import type { LedgerPort } from './ledger/port.js';
import { systemTokens } from './ledger/tokens.js';
import { startRuntime, type Runtime } from './runtime.js';
import { migrations } from './store/migrations.js';
import type { ExpiryDb } from './store/schema.js';

/** The scheduler's own environment variables. */
export const expiryEnv = z.object({
  /** The entitlement ledger's API (gRPC). */
  LEDGER_URL: z.url().default('http://127.0.0.1:7102'),
  /** HS256 secret for the `system` tokens it calls the ledger with; default AUTH_JWT_SECRET (or the dev secret in dev mode). */
  LEDGER_JWT_SECRET: z.string().min(32).optional(),
  /** Pause between background sweeps; 0 = none (RunDue only). */
  EXPIRY_SWEEP_INTERVAL_MS: z.coerce.number().int().min(0).default(1_000),
  /** Timers claimed per transaction (and per ExpireBatch request to the ledger, up to its 1000). */
  EXPIRY_BATCH_SIZE: z.coerce.number().int().min(1).max(5_000).default(500),
  /** Batches in flight: each its own transaction and ledger request. */
  EXPIRY_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  /** Minimum time between backlog progress log lines. */
  EXPIRY_PROGRESS_INTERVAL_MS: z.coerce.number().int().min(0).default(5_000),
});

export type ExpiryEnv = z.infer<typeof expiryEnv>;

export interface ExpiryState extends Stores<ExpiryDb> {
  clock: () => Date;
  ledger: LedgerPort;
  /** Set once the start hook ran: consumer, relay and sweeper (tests flush the relay, run sweeps). */
  runtime?: Runtime;
}

export interface ExpirySchedulerOptions {
  /** Business time; tests inject a clock they move. Default: the system clock. */
  clock?: () => Date;
  /** A ledger other than the gRPC one at LEDGER_URL. */
  ledger?: LedgerPort;
  /** Outbox relay poll fallback (NOTIFY wakes it sooner). */
  relayPollMs?: number;
  /** Redelivery delay of a ledger event that arrived before its predecessor. */
  gapRetryMs?: number;
  /** Called after each consumed ledger event settles (metrics, tests waiting for an effect). */
  onConsumed?: (outcome: ConsumeOutcome) => void;
}

/** The secret the ledger verifies `system` tokens with. */
export function ledgerTokenSecret(auth: AuthConfig, explicit: string | undefined): string {
  if (explicit) return explicit;
  if (auth.mode === 'secret') return auth.secret;
  if (auth.mode === 'dev') return DEV_JWT_SECRET;
  throw new Error('LEDGER_JWT_SECRET is required with AUTH_JWKS_URL: the scheduler must sign the system tokens it calls the ledger with');
}

/** The expiry scheduler: ExpiryService API, ledger event consumer, outbox relay and the timer sweep. */
export function expirySchedulerService(options: ExpirySchedulerOptions = {}): ServiceDefinition<ExpiryState, ExpiryEnv> {
  const clock = options.clock ?? (() => new Date());
  return defineService<ExpiryState, ExpiryEnv>({
    name: 'expiry-scheduler',
    defaultPorts: { api: 7103, ops: 7203 },
    requires: ['database', 'nats'],
    env: expiryEnv,

    async setup(ctx) {
      // A sweep holds a connection per batch in flight besides the consumer's and the relay's.
      const stores = await connectStores<ExpiryDb>(ctx, { poolMax: 10 });
      let ledger = options.ledger;
      if (!ledger) {
        const grpc = grpcLedger({
          baseUrl: ctx.config.env.LEDGER_URL,
          tokenFor: systemTokens(ledgerTokenSecret(ctx.config.auth, ctx.config.env.LEDGER_JWT_SECRET)),
        });
        ctx.onClose(() => grpc.close());
        ledger = grpc;
      }
      return { ...stores, clock, ledger };
    },

    register(router, ctx) {
      const handlers = expiryHandlers({
        db: ctx.state.database.db,
        clock: ctx.state.clock,
        runDue: (o) => {
          const runtime = ctx.state.runtime;
          if (!runtime) throw new ConnectError('the scheduler is starting; try again', Code.Unavailable);
          return runtime.sweeper.runNow(o);
        },
        logger: ctx.logger,
      });
      router.service(ExpiryService, {
        getSchedule: (req, c) => handlers.getSchedule(callerOf(c), req),
        listDue: (req, c) => handlers.listDue(callerOf(c), req),
        runDue: (req, c) => handlers.runDue(callerOf(c), req),
      });
    },

    readiness: (ctx) => storeReadiness(ctx.state),

    async start(ctx) {
      const env = ctx.config.env;
      const { observeTimer } = expiryMetrics(ctx.metrics, ctx.state.database.db, ctx.state.clock);
      const runtime = await startRuntime({
        db: ctx.state.database,
        bus: ctx.state.bus,
        namespace: ctx.config.busNamespace,
        ledger: ctx.state.ledger,
        clock: ctx.state.clock,
        logger: ctx.logger,
        sweepIntervalMs: env.EXPIRY_SWEEP_INTERVAL_MS,
        batchSize: env.EXPIRY_BATCH_SIZE,
        concurrency: env.EXPIRY_CONCURRENCY,
        progressIntervalMs: env.EXPIRY_PROGRESS_INTERVAL_MS,
        observeTimer,
        ...(options.relayPollMs !== undefined ? { relayPollIntervalMs: options.relayPollMs } : {}),
        ...(options.gapRetryMs !== undefined ? { gapRetryMs: options.gapRetryMs } : {}),
        ...(options.onConsumed ? { onConsumed: options.onConsumed } : {}),
      });
      ctx.state.runtime = runtime;
      return () => runtime.stop();
    },

    housekeep: (ctx) => housekeep(ctx.state.database.db, ctx.state.clock()),

    migrate: (ctx) => migrateDatabase(ctx, migrations),
  });
}
