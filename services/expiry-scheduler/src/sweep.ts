import { inTransaction } from '@punchcard/db';
import type { Kysely, Transaction } from 'kysely';
import { pino, type Logger } from 'pino';
import { afterFailure, firingFor, idempotencyKeyFor } from './domain/firing.js';
import { progressMessage, rate } from './domain/progress.js';
import { enqueueExpiryFired, enqueueReminderDue } from './events/expiry-events.js';
import { LedgerCallError, type LedgerPort } from './ledger/port.js';
import type { TimerKind } from './domain/schedule.js';
import type { ExpiryDb } from './store/schema.js';
import { claimDue, countDue, markFailed, markFired, markRetry, type ClaimedTimer } from './store/store.js';

export interface SweepDeps {
  db: Kysely<ExpiryDb>;
  ledger: LedgerPort;
  clock: () => Date;
  logger?: Logger;
  /** Timers claimed per transaction; default 100. */
  batchSize?: number;
  /** Ledger calls in flight within a batch (different entitlements); default 8. */
  concurrency?: number;
  /** Minimum real time between progress log lines while draining; default 5000 (0 = every batch). */
  progressIntervalMs?: number;
  /** Told what became of each claimed timer (metrics). */
  observe?: (kind: TimerKind, outcome: TimerOutcome) => void;
}

/** What became of a claimed timer: fired (with an effect), fired as a no-op, retried later, failed. */
export type TimerOutcome = 'fired' | 'no_op' | 'retry' | 'failed';

export interface SweepOptions {
  /** Only this tenant's timers (RunDue); default every tenant (the background sweep). */
  tenantId?: string;
  /** Stop after this many timers; default all that are due. */
  limit?: number;
  /** Stop between batches (shutdown): a batch in hand commits, the rest waits for the next sweep. */
  signal?: AbortSignal;
}

export interface SweepResult {
  fired: number;
  failed: number;
  /** Attempts that failed transiently and will be retried later. */
  retried: number;
}

/** `called`: the ledger was called (counts as an attempt). */
type Outcome =
  | { kind: 'fired'; called: boolean; noOp: boolean; announce?: 'reminder_due' | 'grace_started' | 'expired' }
  | { kind: 'retry'; called: true; delayMs: number; error: string }
  | { kind: 'failed'; called: true; error: string };

/**
 * Fires due timers in due order, a batch per transaction: claim (FOR UPDATE SKIP LOCKED), call the
 * ledger with a key derived from the timer id, mark fired and enqueue the event, commit. A crash
 * before the commit leaves the timers pending; the next sweep calls the ledger again with the same
 * keys, which changes nothing there. Replicas running sweeps at once skip each other's rows.
 */
export async function sweepDue(deps: SweepDeps, options: SweepOptions = {}): Promise<SweepResult> {
  const log = deps.logger ?? pino({ level: 'silent' });
  const batchSize = deps.batchSize ?? 100;
  const limit = options.limit && options.limit > 0 ? options.limit : Number.POSITIVE_INFINITY;
  const progressEvery = deps.progressIntervalMs ?? 5_000;
  const started = performance.now();
  let lastProgress = started;
  let batches = 0;
  const total: SweepResult = { fired: 0, failed: 0, retried: 0 };
  while (total.fired + total.failed < limit && !options.signal?.aborted) {
    const want = Math.min(batchSize, limit - total.fired - total.failed);
    const batch = await inTransaction(deps.db, (tx) => fireBatch(deps, tx, want, options.tenantId));
    if (batch.claimed === 0) break;
    // Counted once committed: a batch that rolled back fires again.
    for (const [kind, outcome] of batch.observed) deps.observe?.(kind, outcome);
    total.fired += batch.fired;
    total.failed += batch.failed;
    total.retried += batch.retried;
    batches += 1;
    if (performance.now() - lastProgress >= progressEvery) {
      lastProgress = performance.now();
      const progress = { done: total.fired, failed: total.failed, remaining: await countDue(deps.db, deps.clock(), options.tenantId), elapsedMs: lastProgress - started };
      log.info({ ...progress, ratePerSecond: rate(progress) }, progressMessage(progress));
    }
  }
  if (batches > 1) {
    const progress = { done: total.fired, failed: total.failed, remaining: await countDue(deps.db, deps.clock(), options.tenantId), elapsedMs: performance.now() - started };
    log.info({ ...progress, ratePerSecond: rate(progress) }, `${progressMessage(progress)} (sweep finished)`);
  }
  return total;
}

async function fireBatch(
  deps: SweepDeps,
  tx: Transaction<ExpiryDb>,
  limit: number,
  tenantId: string | undefined,
): Promise<SweepResult & { claimed: number; observed: [TimerKind, TimerOutcome][] }> {
  const now = deps.clock();
  const claimed = await claimDue(tx, { now, limit, ...(tenantId !== undefined ? { tenantId } : {}) });
  // Each entitlement has at most one timer in a batch (the claim takes only its earliest), so the
  // calls may run side by side without reordering one entitlement's timers.
  const outcomes = await mapLimit(claimed, deps.concurrency ?? 8, (t) => fire(deps, t, now));
  const result = { claimed: claimed.length, fired: 0, failed: 0, retried: 0, observed: [] as [TimerKind, TimerOutcome][] };
  const firedRows: { timerId: string; noOp: boolean; attempts: number }[] = [];
  for (const [i, t] of claimed.entries()) {
    const o = outcomes[i]!;
    const attempts = t.attempts + (o.called ? 1 : 0);
    if (o.kind === 'fired') {
      firedRows.push({ timerId: t.timer_id, noOp: o.noOp, attempts });
      const fired = { timerId: t.timer_id, tenantId: t.tenant_id, entitlementId: t.entitlement_id, dueTime: t.due_time, ...(t.expiry_time ? { expiryTime: t.expiry_time } : {}) };
      if (o.announce === 'reminder_due') {
        await enqueueReminderDue(tx, { ...fired, memberId: t.member_id, offsetDays: t.offset_days, remaining: t.remaining }, now);
      } else if (o.announce) {
        await enqueueExpiryFired(tx, o.announce, fired, now);
      }
      result.fired += 1;
      result.observed.push([t.kind, o.noOp ? 'no_op' : 'fired']);
    } else if (o.kind === 'retry') {
      await markRetry(tx, t.timer_id, attempts, new Date(now.getTime() + o.delayMs), o.error, now);
      deps.logger?.warn({ timerId: t.timer_id, kind: t.kind, attempts, error: o.error }, 'ledger call failed; will retry');
      result.retried += 1;
      result.observed.push([t.kind, 'retry']);
    } else {
      await markFailed(tx, t.timer_id, attempts, o.error, now);
      deps.logger?.error({ timerId: t.timer_id, kind: t.kind, entitlementId: t.entitlement_id, attempts, error: o.error }, 'timer failed');
      result.failed += 1;
      result.observed.push([t.kind, 'failed']);
    }
  }
  await markFired(tx, firedRows, now);
  return result;
}

async function fire(deps: SweepDeps, t: ClaimedTimer, now: Date): Promise<Outcome> {
  const firing = firingFor(
    {
      timerId: t.timer_id,
      kind: t.kind,
      dueTime: t.due_time,
      ...(t.expiry_time ? { expiryTime: t.expiry_time } : {}),
      ...(t.grace_end_time ? { graceEndTime: t.grace_end_time } : {}),
    },
    now,
  );
  const base = { tenantId: t.tenant_id, idempotencyKey: idempotencyKeyFor(t.timer_id), entitlementId: t.entitlement_id };
  try {
    switch (firing.action) {
      case 'skip':
        return { kind: 'fired', called: false, noOp: true };
      case 'remind':
        return { kind: 'fired', called: false, noOp: false, announce: 'reminder_due' };
      case 'enterGrace': {
        const { changed } = await deps.ledger.enterGrace({ ...base, expiryTime: firing.expiryTime, graceEndTime: firing.graceEndTime });
        return changed ? { kind: 'fired', called: true, noOp: false, announce: 'grace_started' } : { kind: 'fired', called: true, noOp: true };
      }
      case 'expire': {
        const { changed } = await deps.ledger.expire({ ...base, dueTime: firing.dueTime, reason: `expiry due ${firing.dueTime.toISOString()}` });
        return changed ? { kind: 'fired', called: true, noOp: false, announce: 'expired' } : { kind: 'fired', called: true, noOp: true };
      }
      case 'unfreeze': {
        const { changed } = await deps.ledger.unfreeze({ ...base, reason: 'freeze period ended' });
        return { kind: 'fired', called: true, noOp: !changed };
      }
    }
  } catch (err) {
    const code = err instanceof LedgerCallError ? err.code : 'unknown';
    const error = (err as Error).message;
    const next = afterFailure(t.kind, code, t.attempts + 1);
    if (next.outcome === 'done') return { kind: 'fired', called: true, noOp: true };
    return next.outcome === 'retry' ? { kind: 'retry', called: true, delayMs: next.delayMs, error } : { kind: 'failed', called: true, error };
  }
}

/** Runs `fn` over `items` with at most `limit` in flight; results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return results;
}

export interface Sweeper {
  /** Runs a sweep now (outside the schedule), waiting for one in progress first. */
  runNow(options?: SweepOptions): Promise<SweepResult>;
  stop(): Promise<void>;
}

/**
 * The background sweep: every `intervalMs` of real time, fire what the (injected) clock says is due
 * (0 = only when asked, e.g. by RunDue). Sweeps of one process never overlap; replicas share the
 * work through row claims.
 */
export function startSweeper(deps: SweepDeps, intervalMs: number): Sweeper {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<unknown> = Promise.resolve();
  const stopping = new AbortController();
  const run = (options?: SweepOptions): Promise<SweepResult> => {
    const next = chain.then(() => sweepDue(deps, { ...options, signal: stopping.signal }));
    chain = next.catch(() => undefined);
    return next;
  };
  const tick = () => {
    run()
      .catch((err) => deps.logger?.error({ err }, 'expiry sweep failed'))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, intervalMs);
      });
  };
  if (intervalMs > 0) timer = setTimeout(tick, 0);
  return {
    runNow: run,
    async stop() {
      stopped = true;
      stopping.abort();
      clearTimeout(timer);
      await chain;
    },
  };
}
