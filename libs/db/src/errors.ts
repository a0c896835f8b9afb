/** SQLSTATE codes this library and its callers branch on. */
export const SqlState = {
  uniqueViolation: '23505',
  foreignKeyViolation: '23503',
  checkViolation: '23514',
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  lockNotAvailable: '55P03',
  duplicateObject: '42710',
  insufficientPrivilege: '42501',
  featureNotSupported: '0A000',
} as const;

const SQLSTATE = /^[0-9A-Z]{5}$/;

/** The primary key of every service's idempotency_keys (idempotencyMigration). */
export const IDEMPOTENCY_KEYS_PKEY = 'idempotency_keys_pkey';

/** The Postgres error in `err`, looking through `cause` chains (kysely and callers may wrap the pg error). */
function pgError(err: unknown): { code: string; constraint?: unknown } | undefined {
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 8; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && SQLSTATE.test(code)) return e as { code: string; constraint?: unknown };
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The SQLSTATE of a Postgres error (see pgError); undefined for anything else. */
export function pgErrorCode(err: unknown): string | undefined {
  return pgError(err)?.code;
}

export function isUniqueViolation(err: unknown): boolean {
  return pgErrorCode(err) === SqlState.uniqueViolation;
}

/**
 * Serialization failures, deadlocks, a prepared statement whose plan a migration made stale (it is
 * prepared afresh on the next run), and an idempotency key another transaction stored first (run
 * again, the request replays that answer): the transaction did nothing and may simply be run again.
 */
export function isRetryableTransactionError(err: unknown): boolean {
  const code = pgErrorCode(err);
  return code === SqlState.serializationFailure || code === SqlState.deadlockDetected || isStalePreparedStatement(err) || isIdempotencyKeyTaken(err);
}

/**
 * An insert of an idempotency key that a concurrent transaction inserted and committed first. Only
 * writes that insert a key with its answer, after reading that none is stored, meet it: claims
 * (withIdempotency) skip a taken key.
 */
export function isIdempotencyKeyTaken(err: unknown): boolean {
  const e = pgError(err);
  return e?.code === SqlState.uniqueViolation && e.constraint === IDEMPOTENCY_KEYS_PKEY;
}

/** A table behind a prepared `select *` changed shape (a migration ran) since this connection prepared it. */
export function isStalePreparedStatement(err: unknown): boolean {
  return pgErrorCode(err) === SqlState.featureNotSupported && /cached plan must not change result type/.test((err as Error).message ?? '');
}
