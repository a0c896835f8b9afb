import { createHash } from 'node:crypto';
import type pg from 'pg';
import { isStalePreparedStatement } from './errors.js';

/**
 * Statements with parameters run as named (prepared) statements: Postgres parses and plans each
 * statement once per connection instead of on every call, which was a large share of the cost of a
 * short transaction. Names are a digest of the text, so every connection and process agrees on them.
 *
 * Needs a session-level connection (direct, or a pooler in session mode, or PgBouncer >= 1.21 with
 * `max_prepared_statements`); `createDb({ preparedStatements: false })` turns it off.
 */

/** At most this many distinct statement texts get names (in a process); the rest run unprepared. */
export const MAX_PREPARED_STATEMENTS = 2000;
/** Longer texts (large multi-row inserts, whose shapes vary) are not worth keeping on every connection. */
export const MAX_PREPARED_TEXT_LENGTH = 8192;

const names = new Map<string, string>();

/** The name a statement text is prepared under, or undefined if it runs unprepared. */
export function statementName(text: string): string | undefined {
  const known = names.get(text);
  if (known !== undefined) return known;
  if (text.length > MAX_PREPARED_TEXT_LENGTH || names.size >= MAX_PREPARED_STATEMENTS) return undefined;
  const name = `pc_${createHash('sha1').update(text).digest('base64url')}`;
  names.set(text, name);
  return name;
}

type Query = pg.ClientBase['query'];

/**
 * Makes `client` prepare the parameterised statements kysely sends (text + values, promise style).
 * A statement whose cached plan went stale is prepared again under a new name on this connection;
 * outside a transaction the call is then repeated, inside one the error rolls it back and
 * `inTransaction` runs it again.
 */
export function prepareStatements(client: pg.ClientBase): void {
  const original = client.query.bind(client) as (...args: unknown[]) => unknown;
  // Per connection: statements re-prepared after a stale plan, and how often.
  const renamed = new Map<string, number>();
  const nameOn = (text: string): string | undefined => {
    const name = statementName(text);
    const generation = renamed.get(text);
    return name !== undefined && generation !== undefined ? `${name}_${generation}` : name;
  };
  const run = async (text: string, values: unknown[]): Promise<unknown> => {
    const name = nameOn(text);
    if (name === undefined) return original(text, values);
    try {
      return await original({ name, text, values });
    } catch (err) {
      if (!isStalePreparedStatement(err)) throw err;
      renamed.set(text, (renamed.get(text) ?? 0) + 1);
      if (client.getTransactionStatus() !== 'I') throw err;
      return original({ name: nameOn(text), text, values });
    }
  };
  client.query = ((config: unknown, values?: unknown, callback?: unknown) => {
    if (typeof config === 'string' && Array.isArray(values) && values.length > 0 && callback === undefined) return run(config, values);
    return original(config, values, callback);
  }) as Query;
}
