import type { IsolationLevel, Kysely, Transaction } from 'kysely';
import { isRetryableTransactionError } from './errors.js';

export interface TransactionOptions {
  /** How many times to run `fn` again after a serialization failure or deadlock; default 5. */
  retries?: number;
  /** Default: the server's (read committed). */
  isolation?: IsolationLevel;
  /** Called before each retry, e.g. to count or log contention. */
  onRetry?: (err: unknown, attempt: number) => void;
}

/**
 * Runs `fn` in a transaction and commits; rolls back when it throws. Serialization failures (40001)
 * and deadlocks (40P01) run `fn` again from the start after a short jittered backoff, so `fn` must
 * keep its side effects inside the transaction.
 */
export async function inTransaction<DB, T>(
  db: Kysely<DB>,
  fn: (tx: Transaction<DB>) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  const retries = options.retries ?? 5;
  for (let attempt = 0; ; attempt++) {
    try {
      const builder = options.isolation ? db.transaction().setIsolationLevel(options.isolation) : db.transaction();
      return await builder.execute(fn);
    } catch (err) {
      if (attempt >= retries || !isRetryableTransactionError(err)) throw err;
      options.onRetry?.(err, attempt + 1);
      await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt)));
    }
  }
}

/** Exponential with jitter in [half, full], capped at 250 ms, so colliding transactions drift apart. */
export function backoffMs(attempt: number): number {
  const ceiling = Math.min(250, 5 * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}
