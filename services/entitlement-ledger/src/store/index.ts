export { migrations } from './migrations.js';
export type { LedgerDb } from './schema.js';

/** The service's own Postgres schema. */
export const SCHEMA = 'entitlement_ledger';
