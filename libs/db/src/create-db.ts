import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { assertIdentifier } from './identifiers.js';
import { prepareStatements } from './prepared.js';
import { parseTimestamptz } from './timestamptz.js';

export interface CreateDbOptions {
  /** Postgres connection URL (the service's own role in production). */
  url: string;
  /** The service's schema; every connection gets `search_path=<schema>`, so queries name tables unqualified. */
  schema: string;
  /** Pool size; default 10. */
  poolMax?: number;
  /** Shown in pg_stat_activity; default the schema name. */
  applicationName?: string;
  /** Idle-client errors (e.g. the server restarted); the pool drops the client. Default: a process warning. */
  onError?: (err: Error) => void;
  /** Run parameterised statements prepared (see prepared.ts); default true. Off for a transaction-mode pooler. */
  preparedStatements?: boolean;
}

export interface Database<DB> {
  db: Kysely<DB>;
  pool: pg.Pool;
  /** Ends the pool: waits for checked-out connections to be released and every connection to close. */
  close(): Promise<void>;
}

const OID = { int8: 20, int8Array: 1016, date: 1082, dateArray: 1182, textArray: 1009, timestamptz: 1184 } as const;

/**
 * Result parsing, per pool rather than through pg's global registry so other pools are unaffected:
 * - int8 (bigint, and so `count(*)`) -> JS `bigint`, never a lossy number;
 * - numeric stays a decimal `string` (pg's default), never a float;
 * - date stays the `'YYYY-MM-DD'` string, because a JS Date would pin a calendar day to the process's zone;
 * - timestamptz is pg's Date, read without its regular expressions (timestamptz.ts).
 */
/** pg-types' own text parsers, typed by plain OIDs (its `TypeId` union omits the array types). */
const builtinParser = pg.types.getTypeParser as (oid: number) => (text: string) => unknown;

export function parseResultValue(oid: number, text: string): unknown {
  switch (oid) {
    case OID.int8:
      return BigInt(text);
    case OID.int8Array:
      return mapArray(builtinParser(OID.textArray)(text), BigInt);
    case OID.date:
      return text;
    case OID.dateArray:
      return builtinParser(OID.textArray)(text);
    case OID.timestamptz:
      return parseTimestamptz(text);
    default:
      return builtinParser(oid)(text);
  }
}

function mapArray(value: unknown, fn: (s: string) => unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => mapArray(v, fn));
  return value === null ? null : fn(value as string);
}

const typeParsers = {
  getTypeParser: (oid: number, format?: string) =>
    format === 'binary' ? pg.types.getTypeParser(oid, 'binary') : (text: string) => parseResultValue(oid, text),
} as unknown as pg.CustomTypesConfig;

/** A kysely instance over a pg pool whose connections all live in one service schema. */
export function createDb<DB>(options: CreateDbOptions): Database<DB> {
  const schema = assertIdentifier(options.schema, 'schema');
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolMax ?? 10,
    application_name: options.applicationName ?? schema,
    options: `-c search_path=${schema}`,
    types: typeParsers,
    connectionTimeoutMillis: 10_000,
  });
  const onError = options.onError ?? ((err: Error) => process.emitWarning(`postgres pool: ${err.message}`));
  pool.on('error', onError);
  // pool.end() resolves once its clients are told to end, not when their sockets close; tracking
  // each client's 'end' lets close() mean "no connection left" (tests drop the database right after).
  const open = new Set<Promise<void>>();
  pool.on('connect', (client) => {
    // pg-pool only listens for errors on idle clients; a checked-out client whose connection dies
    // between queries (failover, pg_terminate_backend) would otherwise crash the process. With a
    // listener the next query fails and the pool discards the client on release.
    client.on('error', onError);
    if (options.preparedStatements !== false) prepareStatements(client);
    const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
    open.add(ended);
    void ended.then(() => open.delete(ended));
  });
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  let closing: Promise<void> | undefined;
  return {
    db,
    pool,
    // Kysely.destroy() ends the pool only if kysely ever used it; a pool used directly is ended here.
    close: () =>
      (closing ??= db
        .destroy()
        .then(() => (pool.ending ? undefined : pool.end()))
        .then(() => Promise.all(open))
        .then(() => undefined)),
  };
}
