import pg from 'pg';

/** What the bench did about table statistics, for the results: set by the last benchmark's environment. */
export interface StatisticsReport {
  /** The server's `autovacuum` setting. */
  autovacuum: string;
  /** Seconds between the bench's own checks, when it stood in for autovacuum's analyze; 0 when it did not. */
  standInEverySeconds: number;
  /** Tables the bench analyzed. */
  analyzes: number;
}

export const lastStatistics: StatisticsReport = { autovacuum: 'unknown', standInEverySeconds: 0, analyzes: 0 };

/**
 * Stands in for autovacuum's analyze when the server runs without it (this machine's CI
 * configuration turns it off; production keeps it on, see deploy/README). A benchmark fills its
 * tables from empty; never analyzed, they keep the plans the services' prepared statements made for
 * empty tables, and a batch statement then reads all of a tenant's rows to find a few. Every
 * `everyMs`, each table changed by more than autovacuum's own threshold since its last analyze
 * (`autovacuum_analyze_threshold` rows plus `autovacuum_analyze_scale_factor` of its rows) is
 * analyzed, as an autovacuum worker would with a shorter nap. Returns the function that stops it.
 */
export async function keepStatistics(url: string, everyMs: number): Promise<() => Promise<void>> {
  const client = new pg.Client({ connectionString: url, application_name: 'bench-statistics' });
  await client.connect();
  const autovacuum = (await client.query<{ setting: string }>("select current_setting('autovacuum') as setting")).rows[0]!.setting;
  Object.assign(lastStatistics, { autovacuum, standInEverySeconds: 0, analyzes: 0 });
  if (autovacuum === 'on' || everyMs <= 0) {
    await client.end();
    return async () => undefined;
  }
  lastStatistics.standInEverySeconds = everyMs / 1000;
  const analyzeDue = async () => {
    const { rows } = await client.query<{ name: string }>(`
      select format('%I.%I', s.schemaname, s.relname) as name
      from pg_stat_user_tables s join pg_class c on c.oid = s.relid
      where s.n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8
        + current_setting('autovacuum_analyze_scale_factor')::float8 * greatest(c.reltuples, 0)`);
    for (const { name } of rows) {
      await client.query(`analyze ${name}`);
      lastStatistics.analyzes++;
    }
  };
  let running = Promise.resolve();
  const timer = setInterval(() => {
    running = running.then(analyzeDue).catch((err: Error) => void process.stderr.write(`statistics: ${err.message}\n`));
  }, everyMs);
  return async () => {
    clearInterval(timer);
    await running;
    await client.end();
  };
}
