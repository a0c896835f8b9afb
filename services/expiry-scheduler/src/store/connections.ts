import type pg from 'pg';
import type { Logger } from 'pino';

/**
 * pg-pool listens for errors only on idle clients: a checked-out client whose server connection dies
 * between queries (a failover, an idle-in-transaction timeout, an operator's pg_terminate_backend)
 * emits an 'error' nobody handles, which crashes the process. A sweep holds its transaction open
 * across ledger calls, so this is a real window here. With a listener the error is logged, the
 * transaction's next query fails, and the pool discards the client on release.
 */
export function guardCheckedOutClients(pool: pg.Pool, logger?: Logger): void {
  pool.on('connect', (client) => {
    client.on('error', (err) => logger?.warn({ err: err.message }, 'database connection lost'));
  });
}
