export { expirySchedulerService, expiryEnv, type ExpiryState, type ExpirySchedulerOptions, type ExpiryEnv } from './service.js';
export type { LedgerPort, LedgerOutcome } from './ledger/port.js';
