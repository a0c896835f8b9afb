import { precondition } from './errors.js';
import type { Feature, RefundMethod, TenantFacts } from './types.js';

/**
 * The policies of a definition version that transfer, sharing, top-up, upgrade and refunds read,
 * with every amount in the entitlement's currency (an amount in another currency counts as unset).
 */
export interface Policies {
  currency: string;
  /** Standalone (list) price of one session; 0 = none. */
  standalonePrice: bigint;
  transfer: { scope: 'NONE' | 'HOUSEHOLD' | 'ANYONE'; maxTransfers: number; undoWindowHours: number };
  sharing: { householdPool: boolean; maxMembers: number; perMemberSessionCap: number };
  refund: { method: RefundMethod; adminFee: bigint; windowDays: number };
  upgrade: { targetDefinitionIds: readonly string[] };
  topUp: { enabled: boolean; pricePerSession: bigint; extendExpiryDays: number };
}

/** The lowest plan tier that includes each feature (catalogue's tier table). */
const TIER: Record<Feature, string> = {
  AUTO_DEDUCTION: 'ADVANCED',
  SOFT_EXPIRY: 'ADVANCED',
  TRANSFER: 'EXPERT',
  SHARING: 'EXPERT',
  TOP_UP: 'EXPERT',
  UPGRADE: 'EXPERT',
  MULTI_BRANCH: 'ENTERPRISE',
  REFUNDS: 'ENTERPRISE',
};

/** Refuses an operation the tenant's plan does not include, naming the feature and the tier. */
export function requireFeature(tenant: TenantFacts, feature: Feature, what: string): void {
  if (!tenant.features.has(feature)) {
    throw precondition(`${what} needs FEATURE_${feature} (${TIER[feature]} plan or higher); tenant ${tenant.tenantId} does not have it`);
  }
}
