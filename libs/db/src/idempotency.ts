import { createHash } from 'node:crypto';
import { sql, type Generated, type Kysely, type QueryCreator, type UpdateQueryBuilder, type UpdateResult } from 'kysely';
import { IDEMPOTENCY_KEYS_PKEY } from './errors.js';
import { deleteOlderThan } from './prune.js';
import type { Migration } from './migrate.js';

/** Add to a service's migrations (e.g. as `'0000_idempotency_keys'`) so its schema gets the table. */
export const idempotencyMigration: Migration = {
  async up(db) {
    await db.schema
      .createTable('idempotency_keys')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('key', 'text', (c) => c.notNull())
      .addColumn('method', 'text', (c) => c.notNull())
      .addColumn('request_hash', 'text', (c) => c.notNull())
      // NULL only while the claiming transaction runs the effect; never committed NULL.
      .addColumn('response', 'bytea')
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addPrimaryKeyConstraint(IDEMPOTENCY_KEYS_PKEY, ['tenant_id', 'method', 'key'])
      .execute();
    await db.schema.createIndex('idempotency_keys_created_at').on('idempotency_keys').column('created_at').execute();
  },
};

export interface IdempotencyKeysTable {
  tenant_id: string;
  key: string;
  method: string;
  request_hash: string;
  response: Uint8Array | null;
  created_at: Generated<Date>;
}

export interface IdempotencyTables {
  idempotency_keys: IdempotencyKeysTable;
}

/** Base of the errors an API maps to InvalidArgument on the `idempotency_key` field. */
export class IdempotencyKeyError extends Error {
  readonly field = 'idempotency_key';
}

export class IdempotencyKeyReused extends IdempotencyKeyError {
  override readonly name = 'IdempotencyKeyReused';
  constructor(
    readonly key: string,
    readonly method: string,
  ) {
    super(`idempotency_key ${JSON.stringify(key)} was already used for a different ${method} request`);
  }
}

export class IdempotencyKeyInvalid extends IdempotencyKeyError {
  override readonly name = 'IdempotencyKeyInvalid';
}

export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

export interface IdempotencyRequest {
  tenantId: string;
  key: string;
  /** The RPC, e.g. `punchcard.ledger.v1.LedgerService/ConsumeSession`. */
  method: string;
  /** A digest of the request without the key, e.g. {@link requestHash} of its protobuf bytes. */
  requestHash: string;
}

export interface IdempotentResult {
  response: Uint8Array;
  replayed: boolean;
}

/** sha256 hex of the request's bytes. */
export function requestHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

type KeyOf = Pick<IdempotencyKeysTable, 'tenant_id' | 'method' | 'key'>;

/** A claim being applied: its key, and the answer already written with the effect if any. */
interface OpenClaim {
  key: KeyOf;
  stored?: Uint8Array;
}

/** The open claim of each transaction inside withIdempotency's `run`. */
const openClaims = new WeakMap<object, OpenClaim>();

type StoreAnswer = UpdateQueryBuilder<IdempotencyTables, 'idempotency_keys', 'idempotency_keys', UpdateResult>;

/** A write that stores a request's answer (see {@link answerWrite}). */
export type AnswerWrite = (q: QueryCreator<any>) => UpdateQueryBuilder<any, 'idempotency_keys', 'idempotency_keys', UpdateResult>;

/** The update that stores `response` as the answer of the claimed key. */
function storeAnswer(q: QueryCreator<IdempotencyTables>, key: KeyOf, response: Uint8Array): StoreAnswer {
  return q.updateTable('idempotency_keys').set({ response }).where('tenant_id', '=', key.tenant_id).where('method', '=', key.method).where('key', '=', key.key);
}

/**
 * Inside {@link withIdempotency}'s `run`: the write that stores `response` as the request's answer,
 * for the statement that makes the effect (a bus `alongside`, say). When `run` then returns these same
 * bytes, withIdempotency has nothing left to write: a statement less. Undefined outside a claim. Use
 * it only in a statement that runs as soon as it is built: the answer counts as written once built.
 */
export function answerWrite(tx: Kysely<any>, response: Uint8Array): AnswerWrite | undefined {
  const claim = openClaims.get(tx);
  if (!claim) return undefined;
  return (q) => {
    claim.stored = response;
    return storeAnswer(q as QueryCreator<IdempotencyTables>, claim.key, response) as unknown as ReturnType<AnswerWrite>;
  };
}

/**
 * Runs a mutating request at most once per (tenant, method, key), inside the caller's transaction.
 *
 * The key is claimed with an insert before `run`, so a concurrent first call with the same key blocks
 * on the primary key until this transaction ends: after a commit it replays the stored response; after
 * a rollback it runs itself. (Under repeatable read or serializable the waiter gets a serialization
 * failure instead, and `inTransaction` retries it into a replay.) When `run` throws nothing is stored,
 * so a retry with the same key runs again. The answer is stored after `run`, unless `run` wrote it
 * with its effect ({@link answerWrite}).
 */
export async function withIdempotency(
  tx: Kysely<any>,
  request: IdempotencyRequest,
  run: () => Promise<Uint8Array>,
): Promise<IdempotentResult> {
  if (!tx.isTransaction) throw new Error('withIdempotency must run inside the transaction that applies the effect');
  checkIdempotencyKey(request.key);
  const db = tx as unknown as Kysely<IdempotencyTables>;
  const where = { tenant_id: request.tenantId, method: request.method, key: request.key };
  const claimed = await db
    .insertInto('idempotency_keys')
    .values({ ...where, request_hash: request.requestHash, response: null })
    .onConflict((oc) => oc.columns(['tenant_id', 'method', 'key']).doNothing())
    .returning('key')
    .executeTakeFirst();
  if (!claimed) {
    const existing = await db
      .selectFrom('idempotency_keys')
      .select(['request_hash', 'response'])
      .where('tenant_id', '=', where.tenant_id)
      .where('method', '=', where.method)
      .where('key', '=', where.key)
      .executeTakeFirstOrThrow();
    if (existing.request_hash !== request.requestHash) throw new IdempotencyKeyReused(request.key, request.method);
    if (existing.response === null) {
      throw new Error(`idempotency_key ${JSON.stringify(request.key)} is already being applied in this transaction (nested call?)`);
    }
    return { response: asUint8Array(existing.response), replayed: true };
  }
  const keyRow = db
    .deleteFrom('idempotency_keys')
    .where('tenant_id', '=', where.tenant_id)
    .where('method', '=', where.method)
    .where('key', '=', where.key);
  const claim: OpenClaim = { key: where };
  const outer = openClaims.get(tx);
  openClaims.set(tx, claim);
  let response: Uint8Array;
  try {
    response = await run();
  } catch (err) {
    // Release the claim in case the caller catches and commits; after a database error the
    // transaction is aborted anyway and this delete fails harmlessly.
    await keyRow.execute().catch(() => undefined);
    throw err;
  } finally {
    if (outer) openClaims.set(tx, outer);
    else openClaims.delete(tx);
  }
  if (claim.stored !== response) await storeAnswer(db, where, response).execute();
  return { response, replayed: false };
}

/** Throws IdempotencyKeyInvalid unless `key` is a usable idempotency key (present, not too long). */
export function checkIdempotencyKey(key: string): void {
  if (key.length === 0) throw new IdempotencyKeyInvalid('idempotency_key is required');
  if (key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw new IdempotencyKeyInvalid(`idempotency_key must be at most ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`);
  }
}

/** pg returns bytea as a Buffer; callers get a plain Uint8Array over the same memory. */
function asUint8Array(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Deletes keys older than `before` (run periodically; a key only needs to outlive client retries); returns how many. */
export function pruneIdempotencyKeys(db: Kysely<any>, before: Date): Promise<number> {
  return deleteOlderThan(db, 'idempotency_keys', 'created_at', before);
}
