import { sql, type Kysely } from 'kysely';
import type { LedgerDb } from './schema.js';

type Db = Kysely<LedgerDb>;

/** One idempotency key of a batch: the single RPC it stands for, and the digest of that request. */
export interface KeyClaim {
  method: string;
  key: string;
  requestHash: string;
}

export interface StoredKey {
  requestHash: string;
  /** Null only while the transaction that claimed it runs. */
  response: Uint8Array | null;
}

const ref = (method: string, key: string) => `${method}\u0000${key}`;

/**
 * `withIdempotency`'s claim for many keys in one statement, in the same table and with the same rows,
 * so a key answers alike whether it came alone or in a batch. A key claimed by a concurrent
 * transaction blocks here until that one ends (then it is taken, or not). Claims go in key order,
 * so two batches sharing keys queue instead of deadlocking. Returns the claimed keys and, for the
 * others, what is stored.
 */
export async function claimKeys(
  tx: Db,
  tenantId: string,
  claims: readonly KeyClaim[],
): Promise<{ claimed: Set<string>; stored: Map<string, StoredKey> }> {
  const sorted = [...claims].sort((a, b) => (ref(a.method, a.key) < ref(b.method, b.key) ? -1 : 1));
  const rows = await tx
    .insertInto('idempotency_keys')
    .values(sorted.map((c) => ({ tenant_id: tenantId, key: c.key, method: c.method, request_hash: c.requestHash, response: null })))
    .onConflict((oc) => oc.columns(['tenant_id', 'method', 'key']).doNothing())
    .returning(['method', 'key'])
    .execute();
  const claimed = new Set(rows.map((r) => ref(r.method, r.key)));
  const stored = new Map<string, StoredKey>();
  const taken = sorted.filter((c) => !claimed.has(ref(c.method, c.key)));
  if (taken.length > 0) {
    const existing = await sql<{ method: string; key: string; request_hash: string; response: Uint8Array | null }>`
      select k.method, k.key, k.request_hash, k.response from idempotency_keys k
      join (values ${sql.join(taken.map((c) => sql`(${c.method}::text, ${c.key}::text)`))}) as v (method, key)
        on k.method = v.method and k.key = v.key
      where k.tenant_id = ${tenantId}`.execute(tx);
    for (const r of existing.rows) stored.set(ref(r.method, r.key), { requestHash: r.request_hash, response: r.response && new Uint8Array(r.response.buffer, r.response.byteOffset, r.response.byteLength) });
  }
  return { claimed, stored };
}

export function keyRef(method: string, key: string): string {
  return ref(method, key);
}

/** Stores the responses of claimed keys (a replay returns these bytes). */
export async function storeResponses(tx: Db, tenantId: string, responses: readonly { method: string; key: string; response: Uint8Array }[]): Promise<void> {
  if (responses.length === 0) return;
  await sql`
    update idempotency_keys k set response = v.response
    from (values ${sql.join(responses.map((r) => sql`(${r.method}::text, ${r.key}::text, ${Buffer.from(r.response.buffer, r.response.byteOffset, r.response.byteLength)}::bytea)`))}) as v (method, key, response)
    where k.tenant_id = ${tenantId} and k.method = v.method and k.key = v.key`.execute(tx);
}

/** Releases claims whose request was refused: nothing is stored, so the same key may run again. */
export async function releaseKeys(tx: Db, tenantId: string, keys: readonly { method: string; key: string }[]): Promise<void> {
  if (keys.length === 0) return;
  await sql`
    delete from idempotency_keys k
    using (values ${sql.join(keys.map((r) => sql`(${r.method}::text, ${r.key}::text)`))}) as v (method, key)
    where k.tenant_id = ${tenantId} and k.method = v.method and k.key = v.key`.execute(tx);
}
