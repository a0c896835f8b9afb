import { sql, type Selectable } from 'kysely';
import { summarise, type RefundPart, type SourcePayment } from '../domain/refund.js';
import type { RefundPayoutPartsTable, RefundPayoutsTable, Tx } from './schema.js';
import { isUuid } from '@punchcard/db';

/** Transfers and upgrades in a row are few (the definition caps transfers); this only stops a loop. */
const MAX_LINEAGE = 64;

/**
 * Records where an entitlement came from (a transfer or an upgrade of `origin`). The ledger's event
 * and the upgrade saga's answer may both report it; the first wins, a repeat changes nothing.
 */
export async function recordOrigin(
  tx: Tx,
  o: { tenantId: string; entitlementId: string; originEntitlementId: string; kind: 'transfer' | 'upgrade'; paymentReference: string },
  at: Date,
): Promise<void> {
  await tx
    .insertInto('entitlement_origins')
    .values({ tenant_id: o.tenantId, entitlement_id: o.entitlementId, origin_entitlement_id: o.originEntitlementId, kind: o.kind, payment_reference: o.paymentReference, recorded_at: at })
    .onConflict((oc) => oc.columns(['tenant_id', 'entitlement_id']).doNothing())
    .execute();
}

/**
 * The payments behind an entitlement, newest first: its own, then those of the entitlements it came
 * from, followed back through transfers and upgrades to the original purchase (an upgrade's payment
 * belongs to the entitlement the upgrade created). Locks them, so two refunds planned at once cannot
 * both count on what a payment has left.
 */
export async function sourcePayments(tx: Tx, tenantId: string, entitlementId: string): Promise<SourcePayment[]> {
  const chain = [entitlementId];
  /** Upgrade payment id -> the position in the chain of the entitlement it paid for. */
  const upgradePayments = new Map<string, number>();
  for (let current = entitlementId; chain.length < MAX_LINEAGE; ) {
    const origin = await tx
      .selectFrom('entitlement_origins')
      .select(['origin_entitlement_id', 'kind', 'payment_reference'])
      .where('tenant_id', '=', tenantId)
      .where('entitlement_id', '=', current)
      .executeTakeFirst();
    if (!origin || chain.includes(origin.origin_entitlement_id)) break;
    if (origin.kind === 'upgrade' && isUuid(origin.payment_reference)) upgradePayments.set(origin.payment_reference.toLowerCase(), chain.length - 1);
    current = origin.origin_entitlement_id;
    chain.push(current);
  }
  const rows = await tx
    .selectFrom('payments')
    .select(['payment_id', 'provider', 'status', 'currency', 'amount_minor', 'entitlement_id'])
    .where('tenant_id', '=', tenantId)
    .where((eb) => {
      const mine = eb.and([eb('entitlement_id', 'in', chain), eb('entitlement_id', '<>', '')]);
      return upgradePayments.size > 0 ? eb.or([mine, eb.and([eb('kind', '=', 'upgrade'), eb('payment_id', 'in', [...upgradePayments.keys()])])]) : mine;
    })
    .orderBy('payment_id')
    .forUpdate()
    .execute();
  if (rows.length === 0) return [];
  const position = (r: (typeof rows)[number]) => {
    const at = chain.indexOf(r.entitlement_id);
    return at >= 0 ? at : (upgradePayments.get(r.payment_id) ?? chain.length);
  };
  rows.sort((a, b) => position(a) - position(b));
  const refunded = await tx
    .selectFrom('refund_payout_parts')
    .select(['payment_id', (eb) => eb.fn.sum<string>('amount_minor').as('total')])
    .where('tenant_id', '=', tenantId)
    .where(
      'payment_id',
      'in',
      rows.map((r) => r.payment_id),
    )
    .where('status', '<>', 'failed')
    .groupBy('payment_id')
    .execute();
  const taken = new Map(refunded.map((r) => [r.payment_id, BigInt(r.total)]));
  return rows.map((r) => ({
    paymentId: r.payment_id,
    provider: r.provider,
    status: r.status,
    currency: r.currency,
    amountMinor: BigInt(r.amount_minor),
    refundedMinor: taken.get(r.payment_id) ?? 0n,
  }));
}

export type PartRow = Selectable<RefundPayoutPartsTable>;

export function partOf(row: PartRow): RefundPart {
  return {
    paymentId: row.payment_id,
    provider: row.provider,
    amountMinor: BigInt(row.amount_minor),
    status: row.status,
    providerReference: row.provider_reference,
    failureReason: row.failure_reason,
  };
}

/** A refund's parts in payout order; `lock` when the caller is about to change them. */
export function partsOf(tx: Tx, tenantId: string, refundId: string, lock = false): Promise<PartRow[]> {
  const q = tx.selectFrom('refund_payout_parts').selectAll().where('tenant_id', '=', tenantId).where('refund_id', '=', refundId).orderBy('seq');
  return (lock ? q.forUpdate() : q).execute();
}

/**
 * Writes the parts' new states (a part that starts now is due now) and brings the refund-level
 * record in line. Returns it, with whether the refund just settled (paid or failed: publish it) and
 * whether a part became due for the worker.
 */
export async function saveParts(
  tx: Tx,
  payout: { tenantId: string; refundId: string },
  before: readonly PartRow[],
  after: readonly RefundPart[],
  now: Date,
): Promise<{ row: Selectable<RefundPayoutsTable>; settled: boolean; due: boolean }> {
  let due = false;
  for (const [i, p] of after.entries()) {
    const old = before[i]!;
    const starts = p.status === 'pending' && old.status !== 'pending';
    if (old.status === p.status && old.provider_reference === p.providerReference && old.failure_reason === p.failureReason) continue;
    due ||= starts;
    await tx
      .updateTable('refund_payout_parts')
      .set({
        status: p.status,
        provider_reference: p.providerReference,
        failure_reason: p.failureReason,
        ...(starts ? { next_attempt_at: now } : p.status === 'pending' ? {} : { next_attempt_at: null }),
        ...(p.status === 'paid' && old.status !== 'paid' ? { paid_time: now } : {}),
      })
      .where('tenant_id', '=', payout.tenantId)
      .where('refund_id', '=', payout.refundId)
      .where('seq', '=', old.seq)
      .execute();
  }
  const current = await tx.selectFrom('refund_payouts').select('status').where('tenant_id', '=', payout.tenantId).where('refund_id', '=', payout.refundId).executeTakeFirstOrThrow();
  const row = await syncPayout(tx, payout.tenantId, payout.refundId, after, now);
  const settled = current.status !== row.status && (row.status === 'paid' || row.status === 'failed');
  return { row, settled, due };
}

/** The refund-level record from its parts: status, references, reason, attempts and the next try. */
export async function syncPayout(tx: Tx, tenantId: string, refundId: string, parts: readonly RefundPart[], now: Date): Promise<Selectable<RefundPayoutsTable>> {
  const s = summarise(parts);
  const stats = await tx
    .selectFrom('refund_payout_parts')
    .select([sql<number>`coalesce(sum(attempts), 0)::int4`.as('attempts'), sql<Date | null>`min(next_attempt_at) filter (where status = 'pending')`.as('next')])
    .where('tenant_id', '=', tenantId)
    .where('refund_id', '=', refundId)
    .executeTakeFirstOrThrow();
  const old = await tx.selectFrom('refund_payouts').select(['status', 'paid_time']).where('tenant_id', '=', tenantId).where('refund_id', '=', refundId).executeTakeFirstOrThrow();
  return tx
    .updateTable('refund_payouts')
    .set({
      status: s.status,
      payment_id: s.paymentId,
      provider: s.provider,
      provider_reference: s.providerReference,
      failure_reason: s.failureReason,
      attempts: stats.attempts,
      next_attempt_at: s.status === 'pending' ? (stats.next ?? null) : null,
      paid_time: s.status === 'paid' ? (old.paid_time ?? now) : null,
    })
    .where('tenant_id', '=', tenantId)
    .where('refund_id', '=', refundId)
    .returningAll()
    .executeTakeFirstOrThrow();
}
