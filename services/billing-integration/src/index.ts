export { billingService, billingEnv, migrateSchema, type BillingEnv, type BillingServiceOptions, type BillingState } from './service.js';
