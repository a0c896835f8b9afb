import { sql, type Kysely } from 'kysely';

const MARK = 'housekeeping-check';

/** Each spent-row table: a row long past any retention ('spent') and one written now ('fresh'). */
const TABLES = {
  inbox: {
    insert: (key: string, at: Date) => sql`insert into inbox (consumer, event_id, subject, applied_at) values (${MARK}, ${key}, 'check', ${at})`,
    left: sql<{ key: string }>`select event_id as key from inbox where consumer = ${MARK} order by 1`,
    clear: sql`delete from inbox where consumer = ${MARK}`,
  },
  idempotency_keys: {
    insert: (key: string, at: Date) =>
      sql`insert into idempotency_keys (tenant_id, method, key, request_hash, response, created_at) values (${MARK}, 'check', ${key}, 'check', '\\x00', ${at})`,
    left: sql<{ key: string }>`select key from idempotency_keys where tenant_id = ${MARK} order by 1`,
    clear: sql`delete from idempotency_keys where tenant_id = ${MARK}`,
  },
};

/**
 * For a service's housekeeping test: puts a row 60 days old and a fresh one into each of the
 * inbox and idempotency_keys tables its schema has (`db` is its connection), runs
 * `housekeep`, and returns which of them are left, by table, then removes its rows. A service that
 * prunes both as it should leaves `['fresh']` in each table it has.
 */
export async function spentRowsLeftAfter(db: Kysely<any>, housekeep: () => Promise<unknown>): Promise<Record<string, string[]>> {
  const present = [];
  for (const [table, rows] of Object.entries(TABLES)) {
    const found = await sql<{ oid: string | null }>`select to_regclass(${table})::text as oid`.execute(db);
    if (found.rows[0]?.oid) present.push({ table, rows });
  }
  for (const { rows } of present) {
    await rows.insert('spent', new Date(Date.now() - 60 * 86_400_000)).execute(db);
    await rows.insert('fresh', new Date()).execute(db);
  }
  await housekeep();
  const left: Record<string, string[]> = {};
  for (const { table, rows } of present) {
    left[table] = (await rows.left.execute(db)).rows.map((r) => r.key);
    await rows.clear.execute(db);
  }
  return left;
}
