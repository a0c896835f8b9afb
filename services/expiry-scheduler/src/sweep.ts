import type { DescMessage } from '@bufbuild/protobuf';
import { enqueueMany, type EnqueueInput } from '@punchcard/bus';
import { inTransaction } from '@punchcard/db';
import type { Kysely, Transaction } from 'kysely';
import { pino, type Logger } from 'pino';
import { afterFailure, firingFor, idempotencyKeyFor } from './domain/firing.js';
import { progressMessage, rate } from './domain/progress.js';
import { expiryFired, reminderDue } from './events/expiry-events.js';
import { LedgerCallError, MAX_EXPIRY_BATCH, type ExpiryCall, type LedgerOutcome, type LedgerPort } from './ledger/port.js';
import { laterDue, type DueCursor, type TimerKind } from './domain/schedule.js';
import type { ExpiryDb } from './store/schema.js';
import { claimDue, countDue, markFailed, markFired, markRetry, type ClaimedTimer } from './store/store.js';

export interface SweepDeps {
  db: Kysely<ExpiryDb>;
  ledger: LedgerPort;
  clock: () => Date;
  logger?: Logger;
  /** Timers claimed per transaction; default 500. */
  batchSize?: number;
  /** Batches in flight (each its own transaction and ledger request); default 4. */
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
  /** Stop between batches (shutdown): batches in hand commit, the rest waits for the next sweep. */
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
 * ledger with keys derived from the timer ids (one ExpireBatch per tenant for grace and expiry),
 * mark what became of each timer and enqueue the events, commit. A crash before the commit leaves
 * the timers pending; the next sweep calls the ledger again with the same keys, which changes
 * nothing there. `concurrency` batches run side by side; they, like replicas, skip each other's rows.
 */
export async function sweepDue(deps: SweepDeps, options: SweepOptions = {}): Promise<SweepResult> {
  const log = deps.logger ?? pino({ level: 'silent' });
  const batchSize = deps.batchSize ?? 500;
  const limit = options.limit && options.limit > 0 ? options.limit : Number.POSITIVE_INFINITY;
  const progressEvery = deps.progressIntervalMs ?? 5_000;
  const started = performance.now();
  let lastProgress = started;
  let batches = 0;
  // Timers claimed or about to be, so concurrent batches never take more than `limit` between them.
  let reserved = 0;
  const total: SweepResult = { fired: 0, failed: 0, retried: 0 };
  // Counted once while draining, then less what was taken since: a count walks the whole backlog.
  let counted: { remaining: number; taken: number } | undefined;
  const progress = async (recount: boolean) => {
    const taken = total.fired + total.failed;
    if (recount || !counted) counted = { remaining: await countDue(deps.db, deps.clock(), options.tenantId), taken };
    const p = { done: total.fired, failed: total.failed, remaining: Math.max(0, counted.remaining - (taken - counted.taken)), elapsedMs: performance.now() - started };
    return { ...p, ratePerSecond: rate(p) };
  };
  // The furthest any claim of this sweep reached. Each claim starts after it, not after its own
  // worker's last: what lies before it is fired or held by batches in flight, which a claim would
  // walk past and skip one by one (three batches' worth per claim with four in flight).
  let frontier: DueCursor | undefined;
  const reached = (last: DueCursor) => {
    frontier = laterDue(frontier, last);
  };
  const worker = async () => {
    // Rows a claim passed that were not claimable then (held by another replica, or a timer waiting
    // for an earlier one of its entitlement) are found by a claim from the start, made before the
    // worker stops.
    let fromStart = false;
    while (!options.signal?.aborted && !failure) {
      const want = Math.min(batchSize, limit - reserved);
      if (want <= 0) break;
      reserved += want;
      // Read when the claim is sent: other batches' claims may return while this one's BEGIN runs.
      const startAfter = () => (fromStart ? undefined : frontier);
      const batch = await inTransaction(deps.db, (tx) => fireBatch(deps, tx, want, options.tenantId, startAfter, reached)).finally(() => {
        reserved -= want;
      });
      if (batch.claimed === 0) {
        // Rows other batches hold are skipped, so an empty claim from the start means this worker's part is done.
        if (batch.claimedFromStart) break;
        fromStart = true;
        continue;
      }
      fromStart = false;
      reserved += batch.fired + batch.failed;
      // Counted once committed: a batch that rolled back fires again.
      for (const [kind, outcome] of batch.observed) deps.observe?.(kind, outcome);
      total.fired += batch.fired;
      total.failed += batch.failed;
      total.retried += batch.retried;
      batches += 1;
      if (performance.now() - lastProgress >= progressEvery) {
        lastProgress = performance.now();
        const p = await progress(false);
        log.info(p, progressMessage(p));
      }
    }
  };
  // A batch that fails stops the others after their batch in hand; the sweep ends when all have.
  let failure: { error: unknown } | undefined;
  await Promise.all(
    Array.from({ length: Math.max(1, deps.concurrency ?? 4) }, () =>
      worker().catch((error: unknown) => {
        failure ??= { error };
      }),
    ),
  );
  if (failure) throw failure.error;
  if (batches > 1) {
    const p = await progress(true);
    log.info(p, `${progressMessage(p)} (sweep finished)`);
  }
  return total;
}

async function fireBatch(
  deps: SweepDeps,
  tx: Transaction<ExpiryDb>,
  limit: number,
  tenantId: string | undefined,
  startAfter: () => DueCursor | undefined,
  reached: (last: DueCursor) => void,
): Promise<SweepResult & { claimed: number; claimedFromStart: boolean; observed: [TimerKind, TimerOutcome][] }> {
  const now = deps.clock();
  const after = startAfter();
  const claimed = await claimDue(tx, { now, limit, ...(tenantId !== undefined ? { tenantId } : {}), ...(after ? { after } : {}) });
  const end = claimed.at(-1);
  // Told before the ledger call, so the claims of other workers meanwhile start after this batch.
  if (end) reached({ dueTime: end.due_time, rank: end.rank, timerId: end.timer_id });
  const outcomes = await fire(deps, claimed, now);
  const result = {
    claimed: claimed.length,
    claimedFromStart: after === undefined,
    fired: 0,
    failed: 0,
    retried: 0,
    observed: [] as [TimerKind, TimerOutcome][],
  };
  const fired: { timerId: string; noOp: boolean; attempts: number }[] = [];
  const retries: { timerId: string; attempts: number; nextAttempt: Date; error: string }[] = [];
  const failures: { timerId: string; attempts: number; error: string }[] = [];
  const events: EnqueueInput<DescMessage>[] = [];
  for (const [i, t] of claimed.entries()) {
    const o = outcomes[i]!;
    const attempts = t.attempts + (o.called ? 1 : 0);
    if (o.kind === 'fired') {
      fired.push({ timerId: t.timer_id, noOp: o.noOp, attempts });
      const announced = { timerId: t.timer_id, tenantId: t.tenant_id, entitlementId: t.entitlement_id, dueTime: t.due_time, ...(t.expiry_time ? { expiryTime: t.expiry_time } : {}) };
      if (o.announce === 'reminder_due') {
        events.push(reminderDue({ ...announced, memberId: t.member_id, offsetDays: t.offset_days, remaining: t.remaining }, now) as EnqueueInput<DescMessage>);
      } else if (o.announce) {
        events.push(expiryFired(o.announce, announced, now) as EnqueueInput<DescMessage>);
      }
      result.fired += 1;
      result.observed.push([t.kind, o.noOp ? 'no_op' : 'fired']);
    } else if (o.kind === 'retry') {
      retries.push({ timerId: t.timer_id, attempts, nextAttempt: new Date(now.getTime() + o.delayMs), error: o.error });
      deps.logger?.warn({ timerId: t.timer_id, kind: t.kind, attempts, error: o.error }, 'ledger call failed; will retry');
      result.retried += 1;
      result.observed.push([t.kind, 'retry']);
    } else {
      failures.push({ timerId: t.timer_id, attempts, error: o.error });
      deps.logger?.error({ timerId: t.timer_id, kind: t.kind, entitlementId: t.entitlement_id, attempts, error: o.error }, 'timer failed');
      result.failed += 1;
      result.observed.push([t.kind, 'failed']);
    }
  }
  await markFired(tx, fired, now);
  await markRetry(tx, retries, now);
  await markFailed(tx, failures, now);
  await enqueueMany(tx, events);
  return result;
}

/**
 * What became of each claimed timer, in order. Grace and expiry go to the ledger as one ExpireBatch
 * per tenant (a batch claims at most one timer per entitlement: its earliest, so one entitlement's
 * timers never reorder); unfreezes are single calls, side by side.
 */
async function fire(deps: SweepDeps, claimed: readonly ClaimedTimer[], now: Date): Promise<Outcome[]> {
  const outcomes = new Array<Outcome>(claimed.length);
  const byTenant = new Map<string, { index: number; call: ExpiryCall }[]>();
  const unfreezes: number[] = [];
  for (const [i, t] of claimed.entries()) {
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
    const base = { idempotencyKey: idempotencyKeyFor(t.timer_id), entitlementId: t.entitlement_id };
    switch (firing.action) {
      case 'skip':
        outcomes[i] = { kind: 'fired', called: false, noOp: true };
        break;
      case 'remind':
        outcomes[i] = { kind: 'fired', called: false, noOp: false, announce: 'reminder_due' };
        break;
      case 'unfreeze':
        unfreezes.push(i);
        break;
      case 'enterGrace':
      case 'expire': {
        const call: ExpiryCall =
          firing.action === 'expire'
            ? { action: 'expire', ...base, dueTime: firing.dueTime, reason: `expiry due ${firing.dueTime.toISOString()}` }
            : { action: 'enterGrace', ...base, expiryTime: firing.expiryTime, graceEndTime: firing.graceEndTime };
        const calls = byTenant.get(t.tenant_id) ?? [];
        calls.push({ index: i, call });
        byTenant.set(t.tenant_id, calls);
        break;
      }
    }
  }
  const requests = [...byTenant].flatMap(([tenantId, calls]) => chunk(calls, MAX_EXPIRY_BATCH).map((part) => ({ tenantId, part })));
  const concurrency = deps.concurrency ?? 4;
  await mapLimit(requests, concurrency, async ({ tenantId, part }) => {
    let results: (LedgerOutcome | LedgerCallError)[];
    try {
      results = await deps.ledger.expireBatch(
        tenantId,
        part.map((p) => p.call),
      );
    } catch (err) {
      results = part.map(() => asCallError(err));
    }
    for (const [k, { index, call }] of part.entries()) {
      const r = results[k]!;
      const kind = claimed[index]!.kind;
      outcomes[index] =
        r instanceof LedgerCallError
          ? afterError(kind, r, claimed[index]!.attempts)
          : r.changed
            ? { kind: 'fired', called: true, noOp: false, announce: call.action === 'expire' ? 'expired' : 'grace_started' }
            : { kind: 'fired', called: true, noOp: true };
    }
  });
  await mapLimit(unfreezes, concurrency, async (i) => {
    const t = claimed[i]!;
    try {
      const { changed } = await deps.ledger.unfreeze({ tenantId: t.tenant_id, idempotencyKey: idempotencyKeyFor(t.timer_id), entitlementId: t.entitlement_id, reason: 'freeze period ended' });
      outcomes[i] = { kind: 'fired', called: true, noOp: !changed };
    } catch (err) {
      outcomes[i] = afterError(t.kind, asCallError(err), t.attempts);
    }
  });
  return outcomes;
}

function asCallError(err: unknown): LedgerCallError {
  return err instanceof LedgerCallError ? err : new LedgerCallError('unknown', (err as Error).message, { cause: err });
}

function afterError(kind: TimerKind, err: LedgerCallError, previousAttempts: number): Outcome {
  const next = afterFailure(kind, err.code, previousAttempts + 1);
  if (next.outcome === 'done') return { kind: 'fired', called: true, noOp: true };
  return next.outcome === 'retry' ? { kind: 'retry', called: true, delayMs: next.delayMs, error: err.message } : { kind: 'failed', called: true, error: err.message };
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
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
