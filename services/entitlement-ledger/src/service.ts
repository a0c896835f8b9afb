import type { ConsumeOutcome } from '@punchcard/bus';
import { LedgerService } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { callerOf, connectStores, defineService, migrateDatabase, storeReadiness, type ServiceDefinition, type Stores } from '@punchcard/platform';
import { ledgerHandlers } from './api/handlers.js';
import { startLedgerEvents, type LedgerEvents } from './events/wiring.js';
import { migrations, type LedgerDb } from './store/index.js';

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
export function ledgerService(options: LedgerServiceOptions = {}): ServiceDefinition<LedgerState> {
  const clock = options.clock ?? (() => new Date());
  return defineService<LedgerState>({
    name: 'entitlement-ledger',
    defaultPorts: { api: 7102, ops: 7202 },
    requires: ['database', 'nats'],

    async setup(ctx) {
      return { ...(await connectStores<LedgerDb>(ctx)), clock };
    },

    register(router, ctx) {
      router.service(LedgerService, ledgerHandlers({ db: ctx.state.database.db, clock: ctx.state.clock, callerOf }));
    },

    readiness: (ctx) => storeReadiness(ctx.state),

    async start(ctx) {
      const events = await startLedgerEvents({
        db: ctx.state.database.db,
        pool: ctx.state.database.pool,
        js: ctx.state.bus.js,
        namespace: ctx.config.busNamespace,
        clock: ctx.state.clock,
        logger: ctx.logger.child({ component: 'events' }),
        ...(options.relayPollMs ? { relayPollMs: options.relayPollMs } : {}),
        ...(options.onOutcome ? { onOutcome: options.onOutcome } : {}),
      });
      ctx.state.events = events;
      return () => events.stop();
    },

    migrate: (ctx) => migrateDatabase(ctx, migrations),
  });
}
