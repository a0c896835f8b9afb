import { sql, type Kysely } from 'kysely';
import { sqlWrite, type OwnWrite } from '@punchcard/bus';
import { IdempotencyKeyReused } from '@punchcard/db';
import { hex, jsonRows } from './bulk.js';
import type { LedgerDb } from './schema.js';

type Db = Kysely<LedgerDb>;

/** One idempotency key of a batch: the single RPC it stands for, and the digest of that request. */
export interface KeyClaim {
  method: string;
  key: string;
  requestHash: string;
}

interface StoredKey {
  requestHash: string;
  /** Null only while the transaction that claimed it runs. */
  response: Uint8Array | null;
}

const ref = (method: string, key: string) => `${method}\u0000${key}`;

/**
 * The keys as bounds on every column of the primary key, beside the join with the rows that name
 * them: planned without statistics (a new table, or autovacuum off), a join on the tenant alone
 * looked cheapest to the planner, and it read all the tenant's keys for each batch.
 */
function keyBounds(keys: readonly { method: string; key: string }[]) {
  return sql`k.method = any(${[...new Set(keys.map((k) => k.method))]}::text[]) and k.key = any(${keys.map((k) => k.key)}::text[])`;
}

/**
 * `withIdempotency`'s claim for many keys in one statement, in the same table and with the same rows,
 * so a key answers alike whether it came alone or in a batch. A key claimed by a concurrent
 * transaction blocks here until that one ends (then it is taken, or not). Claims go in key order,
 * so two batches sharing keys queue instead of deadlocking. Returns the claimed keys and, for the
 * others, what is stored.
 */
async function claimKeys(
  tx: Db,
  tenantId: string,
  claims: readonly KeyClaim[],
): Promise<{ claimed: Set<string>; stored: Map<string, StoredKey> }> {
  const sorted = [...claims].sort((a, b) => (ref(a.method, a.key) < ref(b.method, b.key) ? -1 : 1));
  const rows = jsonRows(sorted.map((c) => ({ method: c.method, key: c.key, request_hash: c.requestHash })));
  const inserted = await sql<{ method: string; key: string }>`
    insert into idempotency_keys (tenant_id, key, method, request_hash, response)
    select ${tenantId}, v.key, v.method, v.request_hash, null
    from rows from (jsonb_to_recordset(${rows}::jsonb) as (method text, key text, request_hash text)) with ordinality as v (method, key, request_hash, n)
    order by v.n
    on conflict (tenant_id, method, key) do nothing
    returning method, key`.execute(tx);
  const claimed = new Set(inserted.rows.map((r) => ref(r.method, r.key)));
  const stored = new Map<string, StoredKey>();
  const taken = sorted.filter((c) => !claimed.has(ref(c.method, c.key)));
  if (taken.length > 0) {
    const existing = await sql<{ method: string; key: string; request_hash: string; response: Uint8Array | null }>`
      select k.method, k.key, k.request_hash, k.response
      from idempotency_keys k
      join jsonb_to_recordset(${jsonRows(taken.map((c) => ({ method: c.method, key: c.key })))}::jsonb) as v (method text, key text)
        on k.method = v.method and k.key = v.key
      where k.tenant_id = ${tenantId} and ${keyBounds(taken)}`.execute(tx);
    for (const r of existing.rows) {
      stored.set(ref(r.method, r.key), {
        requestHash: r.request_hash,
        response: r.response && new Uint8Array(r.response.buffer, r.response.byteOffset, r.response.byteLength),
      });
    }
  }
  return { claimed, stored };
}

type Response = KeyClaim & { response: Uint8Array };

/**
 * Stores the responses of claimed keys (a replay returns these bytes). Written as an upsert of the
 * claimed rows so that Postgres finds each through the primary key itself, whatever the plan: an
 * update joined with the batch was planned, and its plan cached, while the table was small, and
 * kept reading all of the tenant's keys as they grew when nothing analyzed the table.
 */
function responsesUpdate(tenantId: string, responses: readonly Response[]) {
  return sql`
    insert into idempotency_keys (tenant_id, key, method, request_hash, response)
    select ${tenantId}, v.key, v.method, v.request_hash, v.response
    from jsonb_to_recordset(${jsonRows(responses.map((r) => ({ method: r.method, key: r.key, request_hash: r.requestHash, response: hex(r.response) })))}::jsonb)
      as v (method text, key text, request_hash text, response bytea)
    on conflict (tenant_id, method, key) do update set response = excluded.response`;
}

/** Releases claims whose request was refused: nothing is stored, so the same key may run again. */
async function releaseKeys(tx: Db, tenantId: string, keys: readonly { method: string; key: string }[]): Promise<void> {
  if (keys.length === 0) return;
  await sql`
    delete from idempotency_keys k
    using jsonb_to_recordset(${jsonRows(keys.map((k) => ({ method: k.method, key: k.key })))}::jsonb) as v (method text, key text)
    where k.tenant_id = ${tenantId} and k.method = v.method and k.key = v.key and ${keyBounds(keys)}`.execute(tx);
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
 * the keys are claimed together (see claimKeys), a key answered before replays its stored answer, a
 * key used before for another request is refused, and `apply` gets the positions of the claimed
 * ones. Their answers are stored, with apply's own writes if it uses `answersWrite`, else after it;
 * the claims of refused ones are released (nothing is stored, so the same key may run again, as
 * after a failed single call).
 */
export async function onceEach<R>(
  tx: Db,
  tenantId: string,
  claims: readonly KeyClaim[],
  apply: (fresh: readonly number[], answersWrite: AnswersWrite) => Promise<readonly KeyedOutcome<R>[]>,
): Promise<KeyedOutcome<R | IdempotencyKeyReused>[]> {
  const { claimed, stored } = await claimKeys(tx, tenantId, claims);
  const out = new Array<KeyedOutcome<R | IdempotencyKeyReused>>(claims.length);
  const fresh: number[] = [];
  for (const [n, claim] of claims.entries()) {
    const at = ref(claim.method, claim.key);
    if (claimed.has(at)) {
      fresh.push(n);
      continue;
    }
    const prior = stored.get(at);
    if (!prior || prior.response === null) throw new Error(`idempotency key ${claim.key} is neither claimed nor stored`);
    out[n] = prior.requestHash === claim.requestHash ? { encoded: prior.response } : { refused: new IdempotencyKeyReused(claim.key, claim.method) };
  }
  let written: readonly (Uint8Array | undefined)[] = [];
  const outcomes = await apply(fresh, (answers) => {
    const responses = answers.flatMap((response, k) => (response ? [{ ...claims[fresh[k]!]!, response }] : []));
    if (responses.length === 0) return undefined;
    // Counted as written once the statement is built: it runs as soon as it is (see answerWrite).
    return sqlWrite(() => {
      written = answers;
      return responsesUpdate(tenantId, responses);
    });
  });
  if (outcomes.length !== fresh.length) throw new Error(`${fresh.length} claimed requests answered ${outcomes.length} outcomes`);
  const responses: Response[] = [];
  const released: KeyClaim[] = [];
  for (const [k, outcome] of outcomes.entries()) {
    const n = fresh[k]!;
    out[n] = outcome;
    if ('refused' in outcome) released.push(claims[n]!);
    else if (written[k] !== outcome.encoded) responses.push({ ...claims[n]!, response: outcome.encoded });
  }
  if (responses.length > 0) await responsesUpdate(tenantId, responses).execute(tx);
  await releaseKeys(tx, tenantId, released);
  return out;
}
