import pg from 'pg';
import { pgErrorCode, SqlState } from './errors.js';
import { assertIdentifier, quoteIdentifier } from './identifiers.js';

export interface SchemaRole {
  name: string;
  /** Set (or reset) the role's login password; omitted leaves an existing password unchanged. */
  password?: string;
}

/** One key for every ensureSchema call in a database: role and grant DDL must not interleave. */
const ENSURE_SCHEMA_LOCK = 7_301_447_220_001n;

/**
 * Creates `schema` and, when given, a login role that may use and create objects only in that schema
 * (and read/write what the admin creates there). Runs as an admin (a superuser or a role with
 * CREATEROLE and ownership of the database). Idempotent and safe to call concurrently.
 */
export async function ensureSchema(adminUrl: string, schema: string, role?: SchemaRole): Promise<void> {
  assertIdentifier(schema, 'schema');
  if (role) assertIdentifier(role.name, 'role name');
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [ENSURE_SCHEMA_LOCK.toString()]);
    const s = quoteIdentifier(schema);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    if (role) {
      const r = quoteIdentifier(role.name);
      await ensureRole(client, role);
      await client.query(`GRANT USAGE, CREATE ON SCHEMA ${s} TO ${r}`);
      await client.query(`GRANT ALL ON ALL TABLES IN SCHEMA ${s} TO ${r}`);
      await client.query(`GRANT ALL ON ALL SEQUENCES IN SCHEMA ${s} TO ${r}`);
      await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${s} GRANT ALL ON TABLES TO ${r}`);
      await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${s} GRANT ALL ON SEQUENCES TO ${r}`);
      await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${s} GRANT EXECUTE ON FUNCTIONS TO ${r}`);
      // Nobody writes to public (the Postgres 15 default, enforced on older servers too).
      await client.query(`REVOKE CREATE ON SCHEMA public FROM PUBLIC`);
      await client.query(`REVOKE ALL ON SCHEMA public FROM ${r}`);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await client.end();
  }
}

async function ensureRole(client: pg.Client, role: SchemaRole): Promise<void> {
  const r = quoteIdentifier(role.name);
  const password = role.password === undefined ? '' : ` PASSWORD ${client.escapeLiteral(role.password)}`;
  const { rowCount } = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role.name]);
  if (rowCount === 0) {
    // Roles are cluster-wide while the advisory lock is per database: another database's
    // ensureSchema may create the same role first, which is as good as creating it here.
    await client.query('SAVEPOINT create_role');
    try {
      await client.query(`CREATE ROLE ${r} LOGIN${password}`);
      return;
    } catch (err) {
      const code = pgErrorCode(err);
      if (code !== SqlState.duplicateObject && code !== SqlState.uniqueViolation) throw err;
      await client.query('ROLLBACK TO SAVEPOINT create_role');
    }
  }
  if (role.password !== undefined) await client.query(`ALTER ROLE ${r} WITH LOGIN${password}`);
}
