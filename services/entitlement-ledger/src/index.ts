export { ledgerService, type LedgerServiceOptions, type LedgerState } from './service.js';
export { SCHEMA } from './store/index.js';
