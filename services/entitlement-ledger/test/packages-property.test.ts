import { randomUUID } from 'node:crypto';
import { ExpiryAnchor, ExpiryMode, RefundMethod, TransferScope } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { inTransaction } from '@punchcard/db';
import fc from 'fast-check';
import { sql, type Transaction } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuleViolation } from '../src/domain/errors.js';
import { contractValue } from '../src/domain/valuation.js';
import { createHousehold } from '../src/operations/households.js';
import { consumeSession, expireEntitlement, policiesOf, purchasePackage, reverseConsume, type Caller } from '../src/operations/ledger.js';
import { shareEntitlement, slotsOf, topUpEntitlement, transferEntitlement, undoTransfer, upgradeEntitlement } from '../src/operations/packages.js';
import { approveRefund, rejectRefund, requestRefund, settlePayout } from '../src/operations/refunds.js';
import { allEntries, getEntitlement } from '../src/store/entitlements.js';
import type { LedgerDb } from '../src/store/schema.js';
import { definitionTerms, ledgerTestDb, seedCatalogue, type LedgerTestDb } from './support/ledger-db.js';

const HOUR = 3_600_000;
let t: LedgerTestDb;

beforeAll(async () => {
  t = await ledgerTestDb('ledger_packages_prop', 12);
});
afterAll(async () => t?.drop());

const sgd = (amountMinor: bigint) => ({ currencyCode: 'SGD', amountMinor });
// Uneven prices, so allocation leaves remainders for the valuation to get exactly right.
const definitions = {
  fam: definitionTerms({
    price: sgd(10001n),
    paidSessions: 4,
    bonusSessions: 1,
    expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 6, mode: ExpiryMode.HARD },
    transfer: { scope: TransferScope.ANYONE, maxTransfers: 3, undoWindowHours: 48 },
    sharing: { householdPool: true, perMemberSessionCap: 2 },
    topUp: { enabled: true, pricePerSession: sgd(700n), extendExpiryDays: 5 },
    upgrade: { targetDefinitionIds: ['big'] },
    refund: { method: RefundMethod.PRO_RATA, adminFee: sgd(100n) },
  }),
  big: definitionTerms({
    price: sgd(25003n),
    paidSessions: 6,
    bonusSessions: 2,
    standalonePricePerSession: sgd(4000n),
    expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 12, mode: ExpiryMode.SOFT, graceDays: 3 },
    transfer: { scope: TransferScope.HOUSEHOLD },
    sharing: { householdPool: true },
    topUp: { enabled: true, pricePerSession: sgd(3333n) },
    refund: { method: RefundMethod.USED_AT_STANDALONE_PRICE },
  }),
};

const MEMBERS = ['m0', 'm1', 'm2', 'm3'];
type Op =
  | { op: 'purchase'; definition: 'fam' | 'big'; member: number }
  /** by: a member, or the holder (-1) */
  | { op: 'consume'; target: number; by: number; pick: boolean }
  | { op: 'reverse'; target: number }
  | { op: 'transfer'; target: number; to: number }
  | { op: 'undo'; target: number }
  | { op: 'share'; target: number }
  | { op: 'topup'; target: number; n: number }
  | { op: 'upgrade'; target: number }
  | { op: 'refund'; target: number; outcome: 'paid' | 'failed' | 'reject' }
  | { op: 'expire'; target: number }
  | { op: 'advance'; hours: number };

const i = fc.nat({ max: 30 });
const who = fc.nat({ max: MEMBERS.length - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ op: fc.constant('purchase' as const), definition: fc.constantFrom('fam' as const, 'big' as const), member: who }) },
  { weight: 8, arbitrary: fc.record({ op: fc.constant('consume' as const), target: i, by: fc.oneof(fc.constant(-1), who), pick: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('reverse' as const), target: i }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('transfer' as const), target: i, to: who }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('undo' as const), target: i }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('share' as const), target: i }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('topup' as const), target: i, n: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('upgrade' as const), target: i }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('refund' as const), target: i, outcome: fc.constantFrom('paid' as const, 'failed' as const, 'reject' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('expire' as const), target: i }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('advance' as const), hours: fc.integer({ min: 1, max: 24 * 10 }) }) },
);

describe('property: issue 7 operations keep the ledger whole (real Postgres)', () => {
  it('no balance goes negative, balance = sum of entries, caps hold, value is conserved, refunds settle once', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(opArb, { minLength: 1, maxLength: 4 }), { minLength: 4, maxLength: 14 }), fc.boolean(), async (batches, sweep) => {
        const tenantId = randomUUID();
        await seedCatalogue(t.db, tenantId, { definitions });
        let now = new Date('2025-05-01T02:00:00Z').getTime();
        const ctx = { clock: () => new Date(now) };
        const caller: Caller = { tenantId, subject: 'prop', roles: ['manager'] };
        const run = <T>(fn: (tx: Transaction<LedgerDb>) => Promise<T>) => inTransaction(t.db, fn);
        const household = await run((tx) => createHousehold(tx, ctx, caller, { name: 'h', kind: 'HOUSEHOLD', ownerMemberId: 'm0', memberIds: ['m1', 'm2'] }));
        const entitlements: string[] = [];
        const consumes: string[] = [];
        const transfers: string[] = [];
        const nth = <T>(list: T[], n: number) => list[n % Math.max(1, list.length)];

        const opening: Op[] = [
          { op: 'purchase', definition: 'fam', member: 0 },
          { op: 'purchase', definition: 'big', member: 1 },
        ];
        for (const batch of [opening, ...batches]) {
          await Promise.all(
            batch.map(async (op) => {
              const e = 'target' in op ? nth(entitlements, op.target) : undefined;
              try {
                switch (op.op) {
                  case 'purchase': {
                    const r = await run((tx) =>
                      purchasePackage(tx, ctx, caller, { memberId: MEMBERS[op.member]!, definitionId: op.definition, definitionVersion: 0, branchId: 'b1', paymentReference: '' }, randomUUID()),
                    );
                    entitlements.push(r.entitlement.entitlementId);
                    return;
                  }
                  case 'consume': {
                    if (!e && !op.pick) return;
                    const memberId = op.by >= 0 ? MEMBERS[op.by]! : op.pick ? MEMBERS[op.target % MEMBERS.length]! : '';
                    const r = await run((tx) =>
                      consumeSession(
                        tx,
                        ctx,
                        caller,
                        { entitlementId: op.pick ? '' : e!, memberId, serviceCode: 'PHYSIO', branchId: 'b1', visitId: '', reason: '' },
                        randomUUID(),
                      ),
                    );
                    consumes.push(r.entry.entryId);
                    return;
                  }
                  case 'reverse': {
                    const entryId = nth(consumes, op.target);
                    if (entryId) await run((tx) => reverseConsume(tx, ctx, caller, { entryId, reason: 'undo' }, randomUUID()));
                    return;
                  }
                  case 'transfer': {
                    if (!e) return;
                    const r = await run((tx) => transferEntitlement(tx, ctx, caller, { entitlementId: e, toMemberId: MEMBERS[op.to]!, reason: '' }, randomUUID()));
                    entitlements.push(r.target.entitlement.entitlementId);
                    transfers.push(r.source.entry.entryId);
                    return;
                  }
                  case 'undo': {
                    const transferId = nth(transfers, op.target);
                    if (!transferId) return;
                    const r = await run((tx) => undoTransfer(tx, ctx, caller, { transferId, reason: '' }, randomUUID()));
                    entitlements.push(r.target.entitlement.entitlementId);
                    return;
                  }
                  case 'share':
                    if (e) await run((tx) => shareEntitlement(tx, ctx, caller, { entitlementId: e, householdId: household.householdId }));
                    return;
                  case 'topup':
                    if (e) await run((tx) => topUpEntitlement(tx, ctx, caller, { entitlementId: e, sessions: op.n, paymentReference: '', branchId: '', reason: '' }, randomUUID()));
                    return;
                  case 'upgrade': {
                    if (!e) return;
                    const r = await run((tx) => upgradeEntitlement(tx, ctx, caller, { entitlementId: e, targetDefinitionId: 'big', paymentReference: '', branchId: '', reason: '' }, randomUUID()));
                    entitlements.push(r.target.entitlement.entitlementId);
                    return;
                  }
                  case 'refund': {
                    if (!e) return;
                    const { refund } = await run((tx) => requestRefund(tx, ctx, caller, { entitlementId: e, reason: 'prop' }));
                    if (op.outcome === 'reject') {
                      await run((tx) => rejectRefund(tx, ctx, caller, { refundId: refund.refundId, reason: 'no' }, randomUUID()));
                      return;
                    }
                    await run((tx) => approveRefund(tx, ctx, caller, { refundId: refund.refundId, note: '' }));
                    const outcome = {
                      refundId: refund.refundId,
                      paid: op.outcome === 'paid',
                      amountMinor: refund.quote.amount,
                      currency: 'SGD',
                      providerReference: 'p',
                      failureReason: 'declined',
                    };
                    // Billing may report the outcome twice: the second changes nothing.
                    await run((tx) => settlePayout(tx, ctx, caller, outcome));
                    await run((tx) => settlePayout(tx, ctx, caller, outcome));
                    return;
                  }
                  case 'expire': {
                    if (!e) return;
                    const row = await getEntitlement(t.db, tenantId, e);
                    const end = row?.graceEndTime ?? row?.expiryTime;
                    if (!end || end.getTime() > now) return;
                    await run((tx) => expireEntitlement(tx, ctx, caller, { entitlementId: e, dueTime: new Date(now), reason: '' }, randomUUID()));
                    return;
                  }
                  case 'advance':
                    now += op.hours * HOUR;
                    return;
                }
              } catch (err) {
                if (!(err instanceof RuleViolation)) throw err;
              }
            }),
          );
        }

        // Sometimes the scheduler's sweep ends the run: everything past its time expires.
        if (sweep) {
          now += 30 * 24 * HOUR;
          for (const e of entitlements) {
            await run((tx) => expireEntitlement(tx, ctx, caller, { entitlementId: e, dueTime: new Date(now), reason: '' }, randomUUID())).catch((err: unknown) => {
              if (!(err instanceof RuleViolation)) throw err;
            });
          }
        }

        // 1. No balance below zero; balance = sum of entries; versions gapless.
        const { rows } = await sql<{ entitlement_id: string; remaining: number; paid_remaining: number; bonus_remaining: number; version: bigint; sum: bigint; paid_sum: bigint; bonus_sum: bigint; n: bigint; min_balance: number }>`
          select e.entitlement_id, e.remaining, e.paid_remaining, e.bonus_remaining, e.version,
                 sum(x.sessions_delta)::bigint as sum, sum(x.paid_delta)::bigint as paid_sum, sum(x.bonus_delta)::bigint as bonus_sum,
                 count(*)::bigint as n, min(x.balance_after) as min_balance
          from entitlements e join entries x using (tenant_id, entitlement_id)
          where e.tenant_id = ${tenantId}
          group by e.entitlement_id, e.remaining, e.paid_remaining, e.bonus_remaining, e.version`.execute(t.db);
        expect(rows).toHaveLength(entitlements.length);
        for (const r of rows) {
          expect(r.remaining).toBeGreaterThanOrEqual(0);
          expect(r.min_balance).toBeGreaterThanOrEqual(0);
          expect(BigInt(r.remaining)).toBe(r.sum);
          expect(BigInt(r.paid_remaining)).toBe(r.paid_sum);
          expect(BigInt(r.bonus_remaining)).toBe(r.bonus_sum);
          expect(r.version).toBe(r.n);
        }

        // 2. Roll-forward of the value the ledger holds: what the entitlements' sessions are worth now
        // = purchases + top-ups + upgrade payments - refunded unused value (transfers and upgrade
        // credits move value between entitlements, never create or destroy it).
        let held = 0n;
        let sold = 0n;
        for (const id of entitlements) {
          const ent = (await getEntitlement(t.db, tenantId, id))!;
          held += contractValue(await slotsOf(t.db, ent, policiesOf(ent)));
          for (const x of await allEntries(t.db, tenantId, id)) {
            if (x.kind === 'PURCHASE') sold += ent.priceMinor;
            if (x.kind === 'TOP_UP' || x.kind === 'UPGRADE_IN') sold += x.amountMinor!;
            if (x.kind === 'REFUND' && x.detail?.kind === 'refund') sold -= x.detail.quote.unusedValue;
            if (x.kind === 'TRANSFER_OUT') {
              const pair = (await allEntries(t.db, tenantId, x.counterpartEntitlementId!)).find((y) => y.entryId === x.counterpartEntryId);
              expect(pair).toMatchObject({ kind: 'TRANSFER_IN', amountMinor: x.amountMinor, sessionsDelta: -x.sessionsDelta });
            }
            if (x.kind === 'UPGRADE_OUT' && x.detail?.kind === 'upgrade') expect(x.amountMinor).toBe(x.detail.quote.credit);
          }
        }
        expect(held).toBe(sold);

        // 3. No household member above the cap of a shared package (holders are not capped).
        const { rows: caps } = await sql<{ used: number }>`
          select sum(case when x.kind = 'CONSUME' then 1 else -1 end)::int as used
          from entries x join entitlements e using (tenant_id, entitlement_id)
          where x.tenant_id = ${tenantId} and x.kind in ('CONSUME', 'REVERSAL') and x.member_id <> e.member_id and e.definition_id = 'fam'
          group by x.entitlement_id, x.member_id`.execute(t.db);
        for (const c of caps) expect(c.used).toBeLessThanOrEqual(2);

        // 4. Refunds: a REFUNDED entitlement has exactly one completed refund and one REFUND entry; no hold is left behind.
        const { rows: refunds } = await sql<{ status: string; completed: number; refund_entries: number; pending: string | null; open: number }>`
          select e.status, e.pending_refund_id as pending,
                 (select count(*)::int from refunds r where r.tenant_id = e.tenant_id and r.entitlement_id = e.entitlement_id and r.state = 'COMPLETED') as completed,
                 (select count(*)::int from refunds r where r.tenant_id = e.tenant_id and r.entitlement_id = e.entitlement_id and r.state in ('REQUESTED', 'APPROVED')) as open,
                 (select count(*)::int from entries x where x.tenant_id = e.tenant_id and x.entitlement_id = e.entitlement_id and x.kind = 'REFUND') as refund_entries
          from entitlements e where e.tenant_id = ${tenantId}`.execute(t.db);
        for (const r of refunds) {
          expect(r.completed).toBe(r.status === 'REFUNDED' ? 1 : 0);
          expect(r.refund_entries).toBe(r.completed);
          expect(r.pending).toBeNull();
          expect(r.open).toBe(0);
        }
      }),
      { numRuns: 20 },
    );
  });
});
