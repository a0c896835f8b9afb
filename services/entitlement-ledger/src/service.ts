import type { ConsumeOutcome } from '@punchcard/bus';
import { LedgerService } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { z } from 'zod';
import { callerOf, connectStores, defineService, migrateDatabase, pruneSpentRows, storeReadiness, type ServiceDefinition, type Stores } from '@punchcard/platform';
import { ledgerHandlers } from './api/handlers.js';
import { consumeGroupMetrics } from './metrics.js';
import { startLedgerEvents, type LedgerEvents } from './events/wiring.js';
import { migrations, type LedgerDb } from './store/index.js';

/** The ledger's own environment variables. */
export const ledgerEnv = z.object({
  /**
   * Transactions of grouped Consume RPCs (named entitlement, no visit) running at once; consumes that
   * arrive meanwhile wait and share the next. 0 = every consume in a transaction of its own.
   */
  LEDGER_CONSUME_GROUPS: z.coerce.number().int().min(0).max(64).default(2),
  /** Consumes per grouped transaction at most. */
  LEDGER_CONSUME_GROUP_MAX: z.coerce.number().int().min(1).max(1000).default(100),
  /**
   * Milliseconds a grouped transaction runs before another may start beside it: until then
   * consumes wait for the next one (larger groups, less CPU each); after it, one held up by a row
   * lock does not hold back the rest. 0 = start beside it at once.
   */
  LEDGER_CONSUME_GROUP_STALL_MS: z.coerce.number().int().min(0).max(10_000).default(20),
});

export type LedgerEnv = z.infer<typeof ledgerEnv>;

export interface LedgerState extends Stores<LedgerDb> {
  clock: () => Date;
  /** Set once the start hook ran: the relay (tests flush it) and the consumers. */
  events?: LedgerEvents;
}

export interface LedgerServiceOptions {
  /** The service's clock; tests inject one. Default: the system clock. */
  clock?: () => Date;
  /** Outbox relay poll fallback (NOTIFY wakes it sooner). */
  relayPollMs?: number;
  /** Called after each consumed event settles (metrics, tests waiting for an effect). */
  onOutcome?: (outcome: ConsumeOutcome) => void;
}

/** The entitlement-ledger service: LedgerService API, outbox relay, catalogue and visits consumers. */
export function ledgerService(options: LedgerServiceOptions = {}): ServiceDefinition<LedgerState, LedgerEnv> {
  const clock = options.clock ?? (() => new Date());
  return defineService<LedgerState, LedgerEnv>({
    name: 'entitlement-ledger',
    defaultPorts: { api: 7102, ops: 7202 },
    requires: ['database', 'nats'],
    env: ledgerEnv,

    async setup(ctx) {
      return { ...(await connectStores<LedgerDb>(ctx)), clock };
    },

    register(router, ctx) {
      const { LEDGER_CONSUME_GROUPS: concurrency, LEDGER_CONSUME_GROUP_MAX: maxBatch, LEDGER_CONSUME_GROUP_STALL_MS: stalledAfterMs } = ctx.config.env;
      router.service(
        LedgerService,
        ledgerHandlers({
          db: ctx.state.database.db,
          clock: ctx.state.clock,
          callerOf,
          consumeBatching: concurrency > 0 ? { concurrency, maxBatch, stalledAfterMs, observe: consumeGroupMetrics(ctx.metrics) } : undefined,
          logger: ctx.logger.child({ component: 'consume-groups' }),
        }),
      );
    },

    readiness: (ctx) => storeReadiness(ctx.state),

    async start(ctx) {
      const events = await startLedgerEvents({
        db: ctx.state.database.db,
        pool: ctx.state.database.pool,
        js: ctx.state.bus.js,
        nc: ctx.state.bus.nc,
        namespace: ctx.config.busNamespace,
        clock: ctx.state.clock,
        logger: ctx.logger.child({ component: 'events' }),
        ...(options.relayPollMs ? { relayPollMs: options.relayPollMs } : {}),
        ...(options.onOutcome ? { onOutcome: options.onOutcome } : {}),
      });
      ctx.state.events = events;
      return () => events.stop();
    },

    housekeep: (ctx) => pruneSpentRows(ctx.state.database.db, ['inbox', 'idempotencyKeys']),

    migrate: (ctx) => migrateDatabase(ctx, migrations),
  });
}
