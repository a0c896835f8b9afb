import { Counter, Gauge, type Registry } from 'prom-client';
import type { Kysely } from 'kysely';
import type { ExpiryDb } from './store/schema.js';
import { countDue } from './store/store.js';
import type { SweepDeps } from './sweep.js';

/**
 * The scheduler's own series on the platform's /metrics: what fired, and the due backlog (read on
 * scrape: pending timers due by the service clock, including ones backing off after a failure).
 */
export function expiryMetrics(registry: Registry, db: Kysely<ExpiryDb>, clock: () => Date): { observeTimer: NonNullable<SweepDeps['observe']> } {
  const timers = new Counter({
    name: 'punchcard_expiry_timers_total',
    help: 'Timers taken by a sweep, by kind and outcome (fired, no_op, retry, failed)',
    labelNames: ['kind', 'outcome'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'punchcard_expiry_timers_due',
    help: 'Pending timers already due (the backlog a sweep has yet to fire)',
    registers: [registry],
    async collect() {
      this.set(await countDue(db, clock()));
    },
  });
  return { observeTimer: (kind, outcome) => timers.inc({ kind, outcome }) };
}
