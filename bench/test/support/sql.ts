import pg from 'pg';

/**
 * One statement on a connection of its own: its backend reports the table counters when it exits,
 * so `pg_stat_user_tables` catches up without waiting for an idle backend's report.
 */
export async function sqlOnOwnConnection<R extends pg.QueryResultRow>(url: string, text: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text)).rows;
  } finally {
    await client.end();
  }
}
