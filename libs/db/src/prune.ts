import { sql, type Kysely } from 'kysely';

/** Rows deleted per statement when pruning: short transactions and bounded WAL bursts. */
export const PRUNE_BATCH_SIZE = 5_000;

/**
 * Deletes the rows of `table` whose `column` is before `before`, `batchSize` rows per statement
 * (each its own transaction), so the first prune of a long backlog neither holds one long
 * transaction nor writes all its WAL at once. Returns how many rows went.
 */
export async function deleteOlderThan(
  db: Kysely<any>,
  table: string,
  column: string,
  before: Date,
  batchSize = PRUNE_BATCH_SIZE,
): Promise<number> {
  const t = sql.table(table);
  const c = sql.ref(column);
  let deleted = 0;
  for (;;) {
    const result = await sql`delete from ${t} where ctid = any(array(select ctid from ${t} where ${c} < ${before} limit ${batchSize}))`.execute(db);
    const n = Number(result.numAffectedRows ?? 0n);
    deleted += n;
    if (n < batchSize) return deleted;
  }
}
