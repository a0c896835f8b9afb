import { sql, type Kysely, type RawBuilder } from 'kysely';
import { sqlWrite, type OwnWrite } from '@punchcard/bus';
import { IdempotencyKeyReused, PackedBytes } from '@punchcard/db';
import { jsonRows } from './bulk.js';
import type { LedgerDb } from './schema.js';

type Db = Kysely<LedgerDb>;

/** One idempotency key of a batch: the single RPC it stands for, and the digest of that request. */
export interface KeyClaim {
  method: string;
  key: string;
  requestHash: string;
}

const ref = (method: string, key: string) => `${method}\u0000${key}`;

/** A stored answer as the lookup returns it (columns named apart from the rows it may be read beside). */
export interface StoredKeyRow {
  stored_method: string;
  stored_key: string;
  stored_request_hash: string;
  /** Null only while the transaction that claimed it runs. */
  stored_response: Uint8Array | null;
}

/**
 * The answers stored under these keys by committed requests, one row per key found. A key absent
 * here is run, and its answer inserted with the effect (see answersInsert): one write per key, where
 * a claim inserted first and answered later took two.
 */
function storedKeysLookup(tenantId: string, claims: readonly KeyClaim[]): RawBuilder<StoredKeyRow> {
  // One primary-key lookup per key, whatever the plan: a join was planned, and its plan cached, while
  // the table was small, and went on reading all the tenant's keys for each batch as they grew when
  // nothing analyzed the table. The `offset 0` keeps the lookup from being pulled up into a join.
  return sql<StoredKeyRow>`
    select v.method as stored_method, v.key as stored_key, k.request_hash as stored_request_hash, k.response as stored_response
    from jsonb_to_recordset(${jsonRows(claims.map((c) => ({ method: c.method, key: c.key })))}::jsonb) as v (method text, key text)
    cross join lateral (
      select k.request_hash, k.response from idempotency_keys k
      where k.tenant_id = ${tenantId} and k.method = v.method and k.key = v.key
      offset 0) k`;
}

/**
 * How `apply` learns which requests of a batch to run: the stored answers' lookup goes into the
 * first statement it runs anyway (lockEntitlements: one round trip less), or runs on its own.
 */
export interface KeyLookup {
  /** Rows of the keys stored before, for that first statement. */
  readonly query: RawBuilder<StoredKeyRow>;
  /** The positions of the requests to run, given the rows `query` returned. Once per batch. */
  settle(rows: readonly StoredKeyRow[]): readonly number[];
  /** `query` as a statement of its own, then `settle`. */
  read(): Promise<readonly number[]>;
}

type Response = KeyClaim & { response: Uint8Array };

/** Built key by key, not as `{ ...claim, response }` (see entryRecord). */
const answer = ({ method, key, requestHash }: KeyClaim, response: Uint8Array): Response => ({ method, key, requestHash, response });

/**
 * Inserts the keys with their answers (a replay returns these bytes), in key order. A key that a
 * concurrent transaction inserted waits for it to end; if it committed, this statement fails with a
 * unique violation of the key, which `inTransaction` runs again, and the run again replays its answer
 * (isRetryableTransactionError). Sorted, two batches sharing keys queue instead of deadlocking.
 */
function answersInsert(tenantId: string, responses: readonly Response[]) {
  const sorted = [...responses].sort((a, b) => (ref(a.method, a.key) < ref(b.method, b.key) ? -1 : 1));
  // The answers go apart from the rows, packed into one binary parameter (see PackedBytes).
  const answers = new PackedBytes();
  const rows = jsonRows(
    sorted.map((r) => {
      const { at, length } = answers.add(r.response);
      return { method: r.method, key: r.key, request_hash: r.requestHash, response_at: at, response_length: length };
    }),
  );
  return sql`
    insert into idempotency_keys (tenant_id, key, method, request_hash, response)
    select ${tenantId}, v.key, v.method, v.request_hash, substring(${answers.bytes()}::bytea from v.response_at for v.response_length)
    from rows from (jsonb_to_recordset(${rows}::jsonb)
      as (method text, key text, request_hash text, response_at int, response_length int)) with ordinality as v (method, key, request_hash, response_at, response_length, n)
    order by v.n`;
}

/** An item's outcome under its key: its answer (applied now, or stored by an earlier run), or a refusal. */
export type KeyedOutcome<R> = { encoded: Uint8Array } | { refused: R };

/**
 * The write that stores the answers of `apply`'s requests (by position; none for a refused one), for
 * the statement that makes their effect: one statement less.
 */
export type AnswersWrite = (answers: readonly (Uint8Array | undefined)[]) => OwnWrite | undefined;

/**
 * Many requests of one tenant, each exactly once per idempotency key, in the caller's transaction:
 * a key answered before replays its stored answer, a key used before for another request is refused,
 * and `apply` runs the others, which it learns from `keys` (it returns their outcomes in that order).
 * Their answers are inserted with their keys, with apply's own writes if it uses `answersWrite`, else
 * after it. A refused request stores nothing, so the same key may run again, as after a failed single
 * call. Keys run at once by two transactions are settled when the second inserts its answer (see
 * answersInsert).
 */
export async function onceEach<R>(
  tx: Db,
  tenantId: string,
  claims: readonly KeyClaim[],
  apply: (keys: KeyLookup, answersWrite: AnswersWrite) => Promise<readonly KeyedOutcome<R>[]>,
): Promise<KeyedOutcome<R | IdempotencyKeyReused>[]> {
  const out = new Array<KeyedOutcome<R | IdempotencyKeyReused>>(claims.length);
  let fresh: number[] | undefined;
  const settle = (rows: readonly StoredKeyRow[]): number[] => {
    if (fresh) throw new Error('a batch\'s idempotency keys were settled twice');
    const stored = new Map(rows.map((r) => [ref(r.stored_method, r.stored_key), r]));
    fresh = [];
    for (const [n, claim] of claims.entries()) {
      const prior = stored.get(ref(claim.method, claim.key));
      if (!prior) {
        fresh.push(n);
        continue;
      }
      if (prior.stored_response === null) throw new Error(`idempotency key ${claim.key} is stored without an answer`);
      const response = new Uint8Array(prior.stored_response.buffer, prior.stored_response.byteOffset, prior.stored_response.byteLength);
      out[n] = prior.stored_request_hash === claim.requestHash ? { encoded: response } : { refused: new IdempotencyKeyReused(claim.key, claim.method) };
    }
    return fresh;
  };
  const query = storedKeysLookup(tenantId, claims);
  const keys: KeyLookup = { query, settle, read: async () => settle((await query.execute(tx)).rows) };
  let written: readonly (Uint8Array | undefined)[] = [];
  const outcomes = await apply(keys, (answers) => {
    const responses = answers.flatMap((response, k) => (response ? [answer(claims[fresh![k]!]!, response)] : []));
    if (responses.length === 0) return undefined;
    // Counted as written once the statement is built: it runs as soon as it is (see answerWrite).
    return sqlWrite(() => {
      written = answers;
      return answersInsert(tenantId, responses);
    });
  });
  if (!fresh) throw new Error('a batch was applied without settling its idempotency keys');
  if (outcomes.length !== fresh.length) throw new Error(`${fresh.length} requests run answered ${outcomes.length} outcomes`);
  const responses: Response[] = [];
  for (const [k, outcome] of outcomes.entries()) {
    const n = fresh[k]!;
    out[n] = outcome;
    if (!('refused' in outcome) && written[k] !== outcome.encoded) responses.push(answer(claims[n]!, outcome.encoded));
  }
  if (responses.length > 0) await answersInsert(tenantId, responses).execute(tx);
  return out;
}
