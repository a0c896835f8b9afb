export { billingService, billingEnv, type BillingEnv, type BillingServiceOptions, type BillingState } from './service.js';
