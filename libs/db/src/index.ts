export { createDb, parseResultValue, type CreateDbOptions, type Database } from './create-db.js';
export { inTransaction, backoffMs, type TransactionOptions } from './transaction.js';
export { ensureSchema, type SchemaRole } from './schema.js';
export { migrateSchema, migrateToLatest, migrationProvider, MigrationFailed, type MigrateSchemaOptions, type Migration, type Migrations } from './migrate.js';
export {
  idempotencyMigration,
  withIdempotency,
  checkIdempotencyKey,
  answerWrite,
  type AnswerWrite,
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
export { pgErrorCode, isUniqueViolation, isRetryableTransactionError, isStalePreparedStatement, isIdempotencyKeyTaken, SqlState } from './errors.js';
export { statementName, MAX_PREPARED_STATEMENTS, MAX_PREPARED_TEXT_LENGTH } from './prepared.js';
export { assertIdentifier } from './identifiers.js';
export { deleteOlderThan, PRUNE_BATCH_SIZE } from './prune.js';
export { uuidv7, isUuid } from './uuid.js';
export { PackedBytes } from './packed-bytes.js';
export { roomForUpdatesMigration } from './room-for-updates.js';
