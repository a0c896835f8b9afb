import { Migrator, type Kysely, type MigrationProvider } from 'kysely';
import { createDb } from './create-db.js';
import { assertIdentifier } from './identifiers.js';
import { ensureSchema } from './schema.js';

/** Forward-only: there is no `down`; a mistake is corrected by a new migration. */
export interface Migration {
  up(db: Kysely<any>): Promise<void>;
}

export type Migrations = Record<string, Migration>;

export class MigrationFailed extends Error {
  override readonly name = 'MigrationFailed';
  constructor(
    readonly migrationName: string | undefined,
    readonly schema: string,
    cause: unknown,
  ) {
    const what = migrationName ? `migration ${migrationName}` : 'migrating';
    super(`${what} failed in schema ${schema}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

export function migrationProvider(migrations: Migrations): MigrationProvider {
  return { getMigrations: async () => ({ ...migrations }) };
}

/**
 * Applies the migrations not yet applied, in name order, in one transaction, with kysely's migration
 * tables inside `schema`. A migration whose name sorts before one already applied is refused (add
 * new migrations at the end). Returns the names applied by this call (empty when up to date).
 */
export async function migrateToLatest(db: Kysely<any>, schema: string, migrations: Migrations): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: migrationProvider(migrations),
    migrationTableSchema: assertIdentifier(schema, 'schema'),
    allowUnorderedMigrations: false,
  });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results.find((r) => r.status === 'Error');
    throw new MigrationFailed(failed?.migrationName, schema, error);
  }
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

export interface MigrateSchemaOptions {
  /** Shown in pg_stat_activity while migrating, e.g. `catalogue-migrate`; default the schema name. */
  applicationName?: string;
  /**
   * Called when the server runs with autovacuum off. Without its analyze, tables never get
   * statistics, and the plans the services' prepared statements cache while a table is small stay
   * in use as it grows: batch statements then read a tenant's every row to find a few.
   */
  onAutovacuumOff?: () => void;
}

/**
 * A service's `migrate` command: creates `schema` only when it is missing (the service role may lack
 * CREATE on the database, and need not have it once an admin made the schema), then
 * {@link migrateToLatest} over one connection. Returns the names applied by this call.
 */
export async function migrateSchema(url: string, schema: string, migrations: Migrations, options: MigrateSchemaOptions = {}): Promise<string[]> {
  const database = createDb({ url, schema, poolMax: 1, ...(options.applicationName ? { applicationName: options.applicationName } : {}) });
  try {
    const { rowCount } = await database.pool.query('select 1 from pg_namespace where nspname = $1', [schema]);
    if (rowCount === 0) await ensureSchema(url, schema);
    const applied = await migrateToLatest(database.db, schema, migrations);
    if (options.onAutovacuumOff) {
      const { rows } = await database.pool.query<{ setting: string }>("select current_setting('autovacuum') as setting");
      if (rows[0]?.setting === 'off') options.onAutovacuumOff();
    }
    return applied;
  } finally {
    await database.close();
  }
}
