import type { MessageInitShape } from '@bufbuild/protobuf';
import {
  DefinitionTermsSchema,
  ExpiryAnchor,
  ExpiryMode,
  PlanTier,
  type Branch,
  type DefinitionTerms,
  type Tenant,
} from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { randomBytes } from 'node:crypto';
import { admin, type CatalogueClient } from './harness.js';

/** The plain-object form of DefinitionTerms init (not a built message), so tests can spread it. */
export type TermsInit = Exclude<MessageInitShape<typeof DefinitionTermsSchema>, DefinitionTerms>;

let keys = 0;
/** A fresh idempotency key. */
export const key = (label = 'k') => `${label}-${++keys}-${randomBytes(4).toString('hex')}`;

export const sgd = (amountMinor: bigint) => ({ currencyCode: 'SGD', amountMinor });

/** Terms any tier may sell: 10 paid sessions, 6 months hard expiry, one branch. */
export function basicTerms(branchId: string, overrides: Partial<TermsInit> = {}): TermsInit {
  return {
    code: `PACK-${randomBytes(3).toString('hex').toUpperCase()}`,
    name: '10-session pass',
    price: sgd(50_000n),
    paidSessions: 10,
    serviceCodes: ['CHIRO_ADJUST'],
    expiry: { anchor: ExpiryAnchor.PURCHASE, durationMonths: 6, mode: ExpiryMode.HARD },
    branches: { branchIds: [branchId] },
    ...overrides,
  };
}

export interface Setup {
  tenant: Tenant;
  branch: Branch;
}

/** Creates a tenant (SGD) with one branch. */
export async function setupTenant(client: CatalogueClient, tenantId: string, planTier = PlanTier.BASIC): Promise<Setup> {
  const { tenant } = await client.call('createTenant', { idempotencyKey: key(), name: 'Spine & Joint', planTier, defaultCurrency: 'SGD' }, admin(tenantId));
  const { branch } = await client.call(
    'createBranch',
    { idempotencyKey: key(), code: 'ORCHARD', name: 'Orchard', timeZone: 'Asia/Singapore' },
    admin(tenantId),
  );
  return { tenant: tenant!, branch: branch! };
}
