import { RetryLater } from '@punchcard/bus';
import type { Kysely } from 'kysely';
import { accountingDate } from '../domain/calendar.js';
import type { PostingContext } from '../domain/contract.js';
import { RevenueRuleError } from '../domain/errors.js';
import type { EarningRule } from '../domain/types.js';
import { branchTimeZones, getTenant, type TenantRow } from '../store/catalogue.js';
import type { RevenueDb } from '../store/schema.js';

export interface HandlerDeps {
  /** The service's clock: posting times. */
  now: () => Date;
  /** How long to wait before retrying an event that arrived before what it depends on. */
  retryDelayMs: number;
}

/**
 * The tenant as the catalogue last described it. Revenue waits for it rather than guessing: the
 * earning rule decides which branch recognises, and its currency is the only one reports speak.
 */
export async function requireTenant(db: Kysely<RevenueDb>, tenantId: string, deps: HandlerDeps): Promise<TenantRow> {
  return knownTenant(await getTenant(db, tenantId), tenantId, deps);
}

/** {@link requireTenant} with the tenant already read. */
export function knownTenant(tenant: TenantRow | undefined, tenantId: string, deps: HandlerDeps): TenantRow {
  if (!tenant) throw new RetryLater(`tenant ${tenantId} is not known yet (waiting for catalogue.tenant_changed)`, deps.retryDelayMs);
  return tenant;
}

export function requireCurrency(tenant: TenantRow, currency: string, field: string): void {
  if (currency !== tenant.currency) {
    throw new RevenueRuleError(field, `currency ${currency || '(none)'} is not tenant ${tenant.tenantId}'s currency ${tenant.currency}`);
  }
}

/**
 * A posting context whose accounting dates use each branch's time zone. Zones come from the catalogue's
 * branches; `fallbacks` (the purchase branch's zone the ledger snapshotted) cover a branch not heard of
 * yet. A branch with neither waits for catalogue.branch_changed.
 */
export async function postingContext(
  db: Kysely<RevenueDb>,
  tenantId: string,
  earningRule: EarningRule,
  branchIds: readonly string[],
  fallbacks: Readonly<Record<string, string>>,
  deps: HandlerDeps,
): Promise<PostingContext> {
  return postingContextFrom(await branchTimeZones(db, tenantId, branchIds), tenantId, earningRule, branchIds, fallbacks, deps);
}

/** {@link postingContext} from the zones of the tenant's branches already read (branch id → zone). */
export function postingContextFrom(
  known: ReadonlyMap<string, string>,
  tenantId: string,
  earningRule: EarningRule,
  branchIds: readonly string[],
  fallbacks: Readonly<Record<string, string>>,
  deps: HandlerDeps,
): PostingContext {
  const zones = new Map<string, string>();
  for (const id of branchIds) {
    if (!id) continue;
    const zone = known.get(id) ?? fallbacks[id];
    if (!zone) throw new RetryLater(`branch ${id} of tenant ${tenantId} is not known yet (waiting for catalogue.branch_changed)`, deps.retryDelayMs);
    zones.set(id, zone);
  }
  return {
    earningRule,
    accountingDate(branchId, at) {
      const zone = zones.get(branchId);
      if (zone === undefined) throw new RevenueRuleError('branch_id', `no time zone resolved for branch ${branchId || '(none)'}`);
      return accountingDate(at, zone);
    },
  };
}
