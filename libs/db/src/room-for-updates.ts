import { sql } from 'kysely';
import { assertIdentifier } from './identifiers.js';
import type { Migration } from './migrate.js';

/**
 * A migration that has `table` fill its pages to 80 %, for a table whose rows are updated again and
 * again without a change to an indexed column. Such an update that finds room on its row's page is
 * HOT: it writes no index entry. On a full page Postgres logs a lock of the old row, moves the new
 * one to another page and writes every index entry again (bench/JOURNAL.md, 7 December from 19:03).
 */
export function roomForUpdatesMigration(table: string): Migration {
  const name = assertIdentifier(table, 'table');
  return {
    async up(db) {
      await sql`alter table ${sql.table(name)} set (fillfactor = 80)`.execute(db);
    },
  };
}
