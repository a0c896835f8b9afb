import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { ConsumedEvent } from '@punchcard/bus';
import type { VisitCancelled, VisitCompleted } from '@punchcard/contracts/punchcard/events/v1/visit_events_pb';
import { isKnownCurrency } from '@punchcard/money';
import type { Kysely } from 'kysely';
import { CAUSE } from '../domain/contract.js';
import { RevenueRuleError } from '../domain/errors.js';
import { oneOffVisit, oneOffVisitCancelled } from '../domain/visits.js';
import { findJournalEntry } from '../store/journal.js';
import type { RevenueDb } from '../store/schema.js';
import { postingContext, requireCurrency, requireTenant, type HandlerDeps } from './context.js';
import { postEntries } from './publish.js';

export const VISITS_DURABLE = 'revenue_visits';
export const VISITS_SUBJECTS = ['punchcard.visits.>'];

function sameTenant(event: ConsumedEvent<unknown>, tenantId: string): void {
  if (tenantId !== event.tenantId) {
    throw new RevenueRuleError('tenant_id', `${event.type} for tenant ${tenantId || '(none)'} arrived on tenant ${event.tenantId}'s subject`);
  }
}

/**
 * A one-off visit (paid outside any package) is visit revenue at once: Dr Cash, Cr Visit revenue at
 * its branch. Package visits are the ledger's: their sessions arrive as ledger events. One entry per
 * visit id, whatever event id it came under.
 */
export async function onVisitCompleted(tx: Kysely<RevenueDb>, event: ConsumedEvent<VisitCompleted>, deps: HandlerDeps): Promise<void> {
  const v = event.data;
  sameTenant(event, v.tenantId);
  if (!v.oneOff) return;
  if (!v.price || !isKnownCurrency(v.price.currencyCode)) throw new RevenueRuleError('price', `one-off visit ${v.visitId} has no price in a known currency`);
  if (await findJournalEntry(tx, v.tenantId, CAUSE.ONE_OFF_VISIT, v.visitId)) return;
  const tenant = await requireTenant(tx, v.tenantId, deps);
  requireCurrency(tenant, v.price.currencyCode, 'price.currency_code');
  const ctx = await postingContext(tx, v.tenantId, tenant.earningRule, [v.branchId], {}, deps);
  const at = v.occurredTime ? timestampDate(v.occurredTime) : event.time;
  const draft = oneOffVisit({
    tenantId: v.tenantId,
    visitId: v.visitId,
    branchId: v.branchId,
    currency: v.price.currencyCode,
    price: v.price.amountMinor,
    accountingDate: ctx.accountingDate(v.branchId, at),
  });
  const now = deps.now();
  await postEntries(tx, [draft], now);
}

/** A cancelled one-off visit posts the mirror of its entry; a package visit's cancellation is the ledger's. */
export async function onVisitCancelled(tx: Kysely<RevenueDb>, event: ConsumedEvent<VisitCancelled>, deps: HandlerDeps): Promise<void> {
  const v = event.data;
  sameTenant(event, v.tenantId);
  const original = await findJournalEntry(tx, v.tenantId, CAUSE.ONE_OFF_VISIT, v.visitId);
  if (!original) return;
  if (await findJournalEntry(tx, v.tenantId, CAUSE.ONE_OFF_VISIT_CANCELLED, v.visitId)) return;
  const branchId = original.lines[0]?.branchId ?? '';
  const tenant = await requireTenant(tx, v.tenantId, deps);
  const ctx = await postingContext(tx, v.tenantId, tenant.earningRule, [branchId], {}, deps);
  const at = v.occurredTime ? timestampDate(v.occurredTime) : event.time;
  const recognitions = original.lines
    .filter((l) => l.account === 'VISIT_REVENUE')
    .map((l) => ({ kind: 'one_off_visit' as const, branchId: l.branchId, amount: l.credit - l.debit }));
  const draft = oneOffVisitCancelled({ ...original, recognitions }, ctx.accountingDate(branchId, at), v.reason);
  const now = deps.now();
  await postEntries(tx, [draft], now);
}
