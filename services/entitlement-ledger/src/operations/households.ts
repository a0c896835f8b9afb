import type { Kysely } from 'kysely';
import { invalid, notFound, precondition } from '../domain/errors.js';
import { enqueueHouseholdChanged } from '../events/ledger-events.js';
import { addMember, bumpHousehold, insertHousehold, lockHousehold, removeMember, type HouseholdRecord } from '../store/households.js';
import type { HouseholdKind, LedgerDb } from '../store/schema.js';
import { newId, requireText, requireUuid, tenantFacts, type Caller, type OperationContext } from './ledger.js';

type Tx = Kysely<LedgerDb>;

/** Most members one household may have (a family or a corporate member group). */
export const MAX_HOUSEHOLD_MEMBERS = 200;

/** Households scope transfers and shared pools, so either feature (EXPERT plan) allows them. */
async function requireHouseholdFeature(tx: Tx, tenantId: string): Promise<void> {
  const tenant = await tenantFacts(tx, tenantId);
  if (!tenant) throw precondition(`tenant ${tenantId} is not known to the ledger yet (no catalogue.tenant_changed received)`);
  if (!tenant.features.has('SHARING') && !tenant.features.has('TRANSFER')) {
    throw precondition(`households need FEATURE_SHARING or FEATURE_TRANSFER (EXPERT plan or higher); tenant ${tenantId} has neither`);
  }
}

export async function createHousehold(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  req: { name: string; kind: HouseholdKind; ownerMemberId: string; memberIds: readonly string[] },
): Promise<HouseholdRecord> {
  const now = ctx.clock();
  const name = requireText('name', req.name);
  const owner = requireText('owner_member_id', req.ownerMemberId);
  const members = [owner];
  for (const m of req.memberIds) {
    requireText('member_ids', m);
    if (!members.includes(m)) members.push(m);
  }
  if (members.length > MAX_HOUSEHOLD_MEMBERS) throw invalid('member_ids', `a household has at most ${MAX_HOUSEHOLD_MEMBERS} members`);
  await requireHouseholdFeature(tx, caller.tenantId);
  const householdId = newId(ctx);
  await insertHousehold(tx, { tenantId: caller.tenantId, householdId, name, kind: req.kind, ownerMemberId: owner }, members, now);
  const h = (await lockHousehold(tx, caller.tenantId, householdId))!;
  await enqueueHouseholdChanged(tx, h, now);
  return h;
}

async function lockedHousehold(tx: Tx, caller: Caller, householdId: string): Promise<HouseholdRecord> {
  const id = requireUuid('household_id', householdId);
  const h = await lockHousehold(tx, caller.tenantId, id);
  if (!h) throw notFound('household', id);
  return h;
}

export async function addHouseholdMember(tx: Tx, ctx: OperationContext, caller: Caller, req: { householdId: string; memberId: string }): Promise<HouseholdRecord> {
  const now = ctx.clock();
  const memberId = requireText('member_id', req.memberId);
  await requireHouseholdFeature(tx, caller.tenantId);
  const h = await lockedHousehold(tx, caller, req.householdId);
  if (h.members.some((m) => m.memberId === memberId)) throw precondition(`member ${memberId} is already in household ${h.householdId}`);
  if (h.members.length >= MAX_HOUSEHOLD_MEMBERS) throw precondition(`household ${h.householdId} has the most members allowed (${MAX_HOUSEHOLD_MEMBERS})`);
  await addMember(tx, caller.tenantId, h.householdId, memberId, now);
  return changed(tx, caller, h.householdId, now);
}

/**
 * A member who leaves can no longer consume from the household's pools; the packages they hold and
 * shared stay theirs but are no longer usable by the others (consumes check both memberships).
 */
export async function removeHouseholdMember(tx: Tx, ctx: OperationContext, caller: Caller, req: { householdId: string; memberId: string }): Promise<HouseholdRecord> {
  const now = ctx.clock();
  const memberId = requireText('member_id', req.memberId);
  const h = await lockedHousehold(tx, caller, req.householdId);
  if (memberId === h.ownerMemberId) throw precondition(`member ${memberId} owns household ${h.householdId}; the owner cannot be removed`);
  if (!h.members.some((m) => m.memberId === memberId)) throw precondition(`member ${memberId} is not in household ${h.householdId}`);
  await removeMember(tx, caller.tenantId, h.householdId, memberId);
  return changed(tx, caller, h.householdId, now);
}

async function changed(tx: Tx, caller: Caller, householdId: string, now: Date): Promise<HouseholdRecord> {
  await bumpHousehold(tx, caller.tenantId, householdId, now);
  const h = (await lockHousehold(tx, caller.tenantId, householdId))!;
  await enqueueHouseholdChanged(tx, h, now);
  return h;
}
