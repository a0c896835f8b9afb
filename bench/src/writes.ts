import pg from 'pg';

/**
 * A backend reports its table counters at the end of a transaction at most once a second, else after
 * 10 s idle (PGSTAT_IDLE_INTERVAL) or when it exits; the services' pooled connections stay open, so the
 * counters of their last transactions arrive up to that long after the work.
 */
export const COUNTERS_SETTLE_MS = 11_000;

/** Row writes to one table, as Postgres counts them (`pg_stat_user_tables`). */
export interface TableWrites {
  inserted: number;
  updated: number;
  /** Updates that wrote no index entry (heap-only tuples): the row's new version stayed on its page. */
  hotUpdated: number;
  deleted: number;
}

export interface Writes {
  /** `schema.table` → writes; only tables that were written. */
  tables: Record<string, TableWrites>;
  /**
   * The whole server's WAL (other databases' work too, if any ran), and its checkpoints: the first
   * change to a page after each one logs the whole page (a full-page image).
   */
  wal: { bytes: number; records: number; fullPageImages: number; checkpoints: number };
}

interface Snapshot {
  tables: Map<string, TableWrites>;
  lsn: string;
  records: number;
  fullPageImages: number;
  checkpoints: number;
}

async function snapshot(url: string): Promise<Snapshot> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const tables = await client.query<{ name: string; ins: string; upd: string; hot: string; del: string }>(
      `select schemaname || '.' || relname as name, n_tup_ins as ins, n_tup_upd as upd, n_tup_hot_upd as hot, n_tup_del as del
       from pg_stat_user_tables`,
    );
    const wal = await client.query<{ lsn: string; records: string; fpi: string; checkpoints: string }>(
      `select pg_current_wal_lsn()::text as lsn, w.wal_records as records, w.wal_fpi as fpi, b.checkpoints_timed + b.checkpoints_req as checkpoints
       from pg_stat_wal w, pg_stat_bgwriter b`,
    );
    return {
      tables: new Map(
        tables.rows.map((r) => [r.name, { inserted: Number(r.ins), updated: Number(r.upd), hotUpdated: Number(r.hot), deleted: Number(r.del) }]),
      ),
      lsn: wal.rows[0]!.lsn,
      records: Number(wal.rows[0]!.records),
      fullPageImages: Number(wal.rows[0]!.fpi),
      checkpoints: Number(wal.rows[0]!.checkpoints),
    };
  } finally {
    await client.end();
  }
}

/** A WAL position (`16/B374D848`) as a byte offset. */
export function lsnBytes(lsn: string): bigint {
  const [high, low] = lsn.split('/');
  return (BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`);
}

/**
 * What a stretch of work wrote in one database: rows per table and the server's WAL. Deterministic
 * where timings are not: the same work writes the same rows on any machine, so a change that writes
 * less shows plainly through a noisy machine's timings. Call `stop` once the work has ended and
 * `COUNTERS_SETTLE_MS` have passed (or every backend that did it has exited).
 */
export async function startWriteMeter(url: string): Promise<{ stop(): Promise<Writes> }> {
  const before = await snapshot(url);
  return {
    async stop() {
      const after = await snapshot(url);
      const tables: Record<string, TableWrites> = {};
      for (const [name, a] of [...after.tables].sort(([x], [y]) => (x < y ? -1 : 1))) {
        const b = before.tables.get(name) ?? { inserted: 0, updated: 0, hotUpdated: 0, deleted: 0 };
        const d = { inserted: a.inserted - b.inserted, updated: a.updated - b.updated, hotUpdated: a.hotUpdated - b.hotUpdated, deleted: a.deleted - b.deleted };
        if (d.inserted + d.updated + d.deleted > 0) tables[name] = d;
      }
      return {
        tables,
        wal: {
          bytes: Number(lsnBytes(after.lsn) - lsnBytes(before.lsn)),
          records: after.records - before.records,
          fullPageImages: after.fullPageImages - before.fullPageImages,
          checkpoints: after.checkpoints - before.checkpoints,
        },
      };
    },
  };
}

/** Rows written per schema (a service's tables), every kind of write counted once. */
export function rowsWrittenBySchema(writes: Writes): Record<string, TableWrites> {
  const out: Record<string, TableWrites> = {};
  for (const [name, w] of Object.entries(writes.tables)) {
    const schema = name.slice(0, name.indexOf('.'));
    const s = (out[schema] ??= { inserted: 0, updated: 0, hotUpdated: 0, deleted: 0 });
    s.inserted += w.inserted;
    s.updated += w.updated;
    s.hotUpdated += w.hotUpdated;
    s.deleted += w.deleted;
  }
  return out;
}
