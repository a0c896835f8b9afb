import pg from 'pg';

/** What the bench did in place of autovacuum, for the results: set by the last benchmark's environment. */
export interface AutovacuumReport {
  /** The server's `autovacuum` setting. */
  autovacuum: string;
  /** Seconds between the bench's own rounds, when it stood in for autovacuum; 0 when it did not. */
  standInEverySeconds: number;
  /** Tables the bench vacuumed, and analyzed. */
  vacuums: number;
  analyzes: number;
}

export const lastAutovacuum: AutovacuumReport = { autovacuum: 'unknown', standInEverySeconds: 0, vacuums: 0, analyzes: 0 };

const setting = (name: string) => `current_setting('${name}')::float8`;

/**
 * Stands in for autovacuum when the server runs without it (this machine's CI configuration turns it
 * off; production keeps it on, see deploy/README). A benchmark fills its tables from empty and
 * updates the same rows thousands of times. Never analyzed, the tables keep the plans the services'
 * prepared statements made for empty tables, and a batch statement then reads all of a tenant's rows
 * to find a few; never vacuumed, their dead rows and index entries are walked by every later read.
 *
 * Every `everyMs`, each table of the database past one of autovacuum's own thresholds is vacuumed
 * (dead rows over `autovacuum_vacuum_threshold` + `autovacuum_vacuum_scale_factor` of its rows, or
 * rows inserted since the last vacuum over the insert threshold and scale factor) and analyzed
 * (changed rows over `autovacuum_analyze_threshold` + `autovacuum_analyze_scale_factor`), as an
 * autovacuum worker would with a shorter nap, and with its cost-based delay. Returns the function
 * that stops it.
 */
export async function standInForAutovacuum(url: string, everyMs: number): Promise<() => Promise<void>> {
  const client = new pg.Client({ connectionString: url, application_name: 'bench-autovacuum' });
  await client.connect();
  const autovacuum = (await client.query<{ setting: string }>("select current_setting('autovacuum') as setting")).rows[0]!.setting;
  Object.assign(lastAutovacuum, { autovacuum, standInEverySeconds: 0, vacuums: 0, analyzes: 0 });
  if (autovacuum === 'on' || everyMs <= 0) {
    await client.end();
    return async () => undefined;
  }
  lastAutovacuum.standInEverySeconds = everyMs / 1000;
  // An autovacuum worker's throttle (a manual VACUUM has none): its delay, and its limit where set.
  await client.query(`
    select set_config('vacuum_cost_delay', current_setting('autovacuum_vacuum_cost_delay'), false)
      where current_setting('autovacuum_vacuum_cost_delay') not like '-1%'`);
  await client.query(`
    select set_config('vacuum_cost_limit', current_setting('autovacuum_vacuum_cost_limit'), false)
      where current_setting('autovacuum_vacuum_cost_limit') <> '-1'`);
  const round = async () => {
    const { rows } = await client.query<{ name: string; vacuum: boolean; analyze: boolean }>(`
      select format('%I.%I', s.schemaname, s.relname) as name,
        s.n_dead_tup > ${setting('autovacuum_vacuum_threshold')} + ${setting('autovacuum_vacuum_scale_factor')} * t.rows
          or s.n_ins_since_vacuum > ${setting('autovacuum_vacuum_insert_threshold')} + ${setting('autovacuum_vacuum_insert_scale_factor')} * t.rows
          as vacuum,
        s.n_mod_since_analyze > ${setting('autovacuum_analyze_threshold')} + ${setting('autovacuum_analyze_scale_factor')} * t.rows as analyze
      from pg_stat_user_tables s
      join pg_class c on c.oid = s.relid
      cross join lateral (select greatest(c.reltuples, 0) as rows) t
      -- Temporary tables belong to their session (the sweep's loader makes one): autovacuum leaves
      -- them, a vacuum from here only skips them, and one dropped meanwhile failed the whole round.
      where c.relpersistence <> 't'`);
    for (const { name, vacuum, analyze } of rows) {
      if (stopping) return;
      if (vacuum) await client.query(`vacuum ${analyze ? '(analyze) ' : ''}${name}`);
      else if (analyze) await client.query(`analyze ${name}`);
      if (vacuum) lastAutovacuum.vacuums++;
      if (analyze) lastAutovacuum.analyzes++;
    }
  };
  const pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
  let stopping = false;
  // The round in hand, if any: a tick while one runs (a long vacuum) is skipped, not queued behind it.
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (running) return;
    running = round()
      .catch((err: Error) => {
        if (!stopping) process.stderr.write(`autovacuum stand-in: ${err.message}\n`);
      })
      .finally(() => {
        running = undefined;
      });
  }, everyMs);
  return async () => {
    stopping = true;
    clearInterval(timer);
    const inHand = running;
    if (inHand) {
      // A vacuum of a large table takes minutes at autovacuum's pace: the benchmark is over, so cancel
      // it. Again until the round ends: a cancel that reaches the backend before its statement does is lost.
      const canceller = new pg.Client({ connectionString: url, application_name: 'bench-autovacuum-stop' });
      await canceller.connect();
      try {
        const ended = inHand.then(() => true);
        do await canceller.query('select pg_cancel_backend($1)', [pid]);
        while (!(await Promise.race([ended, new Promise<boolean>((r) => setTimeout(() => r(false), 100))])));
      } finally {
        await canceller.end();
      }
    }
    await client.end();
  };
}
