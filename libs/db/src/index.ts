export { createDb, parseResultValue, type CreateDbOptions, type Database } from './create-db.js';
export { inTransaction, backoffMs, type TransactionOptions } from './transaction.js';
export { ensureSchema, type SchemaRole } from './schema.js';
export { migrateSchema, migrateToLatest, migrationProvider, MigrationFailed, type MigrateSchemaOptions, type Migration, type Migrations } from './migrate.js';
export {
  idempotencyMigration,
  withIdempotency,
  requestHash,
  pruneIdempotencyKeys,
  IdempotencyKeyError,
  IdempotencyKeyReused,
  IdempotencyKeyInvalid,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  type IdempotencyRequest,
  type IdempotentResult,
  type IdempotencyKeysTable,
  type IdempotencyTables,
} from './idempotency.js';
export { pgErrorCode, isUniqueViolation, isRetryableTransactionError, SqlState } from './errors.js';
export { assertIdentifier } from './identifiers.js';
