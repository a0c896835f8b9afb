export { revenueService, type RevenueServiceOptions, type RevenueState } from './service.js';
export { SCHEMA } from './store/schema.js';
