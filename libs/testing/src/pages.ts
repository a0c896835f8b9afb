import { sql, type Kysely, type RawBuilder } from 'kysely';

/**
 * The share of `table`'s rows that `where` selects which `update` left on the page they were on. An
 * update that keeps its row's page and changes no indexed column is HOT: it writes no index entry.
 * Whether the page has room decides it, and the table's fillfactor decides that.
 */
export async function shareKeptOnTheirPages(
  db: Kysely<any>,
  table: string,
  key: string,
  where: RawBuilder<boolean>,
  update: () => Promise<unknown>,
): Promise<number> {
  const pages = async () => {
    const { rows } = await sql<{ key: string; page: number }>`
      select ${sql.ref(key)}::text as key, (ctid::text::point)[0]::int as page from ${sql.table(table)} where ${where}`.execute(db);
    return new Map(rows.map((r) => [r.key, r.page]));
  };
  const before = await pages();
  if (before.size === 0) throw new Error(`no rows of ${table} to update`);
  await update();
  const after = await pages();
  let kept = 0;
  for (const [k, page] of before) if (after.get(k) === page) kept++;
  return kept / before.size;
}
