import { randomUUID } from 'node:crypto';
import { ExpiryAnchor, ExpiryMode, SessionOrder } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { inTransaction } from '@punchcard/db';
import fc from 'fast-check';
import { sql, type Transaction } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuleViolation } from '../src/domain/errors.js';
import {
  consumeSession,
  enterGracePeriod,
  expireEntitlement,
  extendEntitlement,
  freezeEntitlement,
  purchasePackage,
  reverseConsume,
  unfreezeEntitlement,
  type Caller,
} from '../src/operations/ledger.js';
import type { LedgerDb } from '../src/store/schema.js';
import { definitionTerms, ledgerTestDb, seedCatalogue, type LedgerTestDb } from './support/ledger-db.js';

const DAY = 86_400_000;
let t: LedgerTestDb;

beforeAll(async () => {
  t = await ledgerTestDb('ledger_balance', 12);
});
afterAll(async () => t?.drop());

type Op =
  | { op: 'purchase'; definition: 'd1' | 'bonus' }
  | { op: 'consume'; pick: boolean; target: number }
  | { op: 'reverse'; target: number }
  | { op: 'freeze'; target: number; days: number }
  | { op: 'unfreeze'; target: number }
  | { op: 'extend'; target: number; days: number }
  | { op: 'grace'; target: number }
  | { op: 'expire'; target: number }
  | { op: 'advance'; hours: number };

const target = fc.nat({ max: 20 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ op: fc.constant('purchase' as const), definition: fc.constantFrom('d1' as const, 'bonus' as const) }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant('consume' as const), pick: fc.boolean(), target }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('reverse' as const), target }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('freeze' as const), target, days: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('unfreeze' as const), target }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('extend' as const), target, days: fc.integer({ min: 1, max: 20 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('grace' as const), target }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('expire' as const), target }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('advance' as const), hours: fc.integer({ min: 1, max: 24 * 20 }) }) },
);

describe('property: balance equals the sum of entries (real Postgres)', () => {
  it('holds for every entitlement after random operations, some of them concurrent', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(opArb, { minLength: 1, maxLength: 4 }), { minLength: 3, maxLength: 15 }), async (batches) => {
        const tenantId = randomUUID();
        await seedCatalogue(t.db, tenantId, {
          definitions: {
            d1: definitionTerms({ paidSessions: 3, expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 10, mode: ExpiryMode.SOFT, graceDays: 3, maxFreezeDays: 20, freezeExtendsExpiry: true } }),
            bonus: definitionTerms({ paidSessions: 2, bonusSessions: 2, sessionOrder: SessionOrder.BONUS_FIRST, expiry: { anchor: ExpiryAnchor.FIRST_USE, durationDays: 15, mode: ExpiryMode.HARD } }),
          },
        });
        let now = new Date('2025-05-01T02:00:00Z').getTime();
        const ctx = { clock: () => new Date(now) };
        const caller: Caller = { tenantId, subject: 'prop', roles: ['system'] };
        const entitlements: string[] = [];
        const consumes: string[] = [];
        const run = <T>(fn: (tx: Transaction<LedgerDb>) => Promise<T>) => inTransaction(t.db, fn);
        const pickOf = <T>(list: T[], i: number) => list[i % Math.max(1, list.length)];

        const opening: Op[] = [{ op: 'purchase', definition: 'd1' }, { op: 'purchase', definition: 'bonus' }];
        for (const batch of [opening, ...batches]) {
          await Promise.all(
            batch.map(async (op) => {
              const e = pickOf(entitlements, 'target' in op ? op.target : 0);
              try {
                switch (op.op) {
                  case 'purchase': {
                    const r = await run((tx) =>
                      purchasePackage(tx, ctx, caller, { memberId: 'm', definitionId: op.definition, definitionVersion: 0, branchId: 'b1', paymentReference: '' }, randomUUID()),
                    );
                    entitlements.push(r.entitlement.entitlementId);
                    return;
                  }
                  case 'consume': {
                    if (!op.pick && !e) return;
                    const r = await run((tx) =>
                      consumeSession(
                        tx,
                        ctx,
                        caller,
                        { entitlementId: op.pick ? '' : e!, memberId: 'm', serviceCode: 'PHYSIO', branchId: 'b1', visitId: '', reason: '' },
                        randomUUID(),
                      ),
                    );
                    consumes.push(r.entry.entryId);
                    return;
                  }
                  case 'reverse': {
                    const entryId = pickOf(consumes, op.target);
                    if (entryId) await run((tx) => reverseConsume(tx, ctx, caller, { entryId, reason: 'undo' }, randomUUID()));
                    return;
                  }
                  case 'freeze':
                    if (e) await run((tx) => freezeEntitlement(tx, ctx, caller, { entitlementId: e, untilTime: new Date(now + op.days * DAY), reason: 'away' }, randomUUID()));
                    return;
                  case 'unfreeze':
                    if (e) await run((tx) => unfreezeEntitlement(tx, ctx, caller, { entitlementId: e, reason: 'back' }, randomUUID()));
                    return;
                  case 'extend':
                    if (e) await run((tx) => extendEntitlement(tx, ctx, caller, { entitlementId: e, extendDays: op.days, reason: 'goodwill' }, randomUUID()));
                    return;
                  case 'grace':
                  case 'expire': {
                    if (!e) return;
                    const { rows } = await sql<{ expiry_time: Date | null; grace_end_time: Date | null }>`
                      select expiry_time, grace_end_time from entitlements where tenant_id = ${tenantId} and entitlement_id = ${e}`.execute(t.db);
                    const expiry = rows[0]?.expiry_time;
                    if (!expiry || expiry.getTime() > now) return;
                    if (op.op === 'grace') {
                      await run((tx) => enterGracePeriod(tx, ctx, caller, { entitlementId: e, expiryTime: expiry }, randomUUID()));
                    } else {
                      await run((tx) => expireEntitlement(tx, ctx, caller, { entitlementId: e, dueTime: new Date(now), reason: '' }, randomUUID()));
                    }
                    return;
                  }
                  case 'advance':
                    now += op.hours * 3_600_000;
                    return;
                }
              } catch (err) {
                if (!(err instanceof RuleViolation)) throw err;
              }
            }),
          );
        }

        const { rows } = await sql<{
          entitlement_id: string;
          paid_remaining: number;
          bonus_remaining: number;
          remaining: number;
          version: bigint;
          paid_sum: bigint;
          bonus_sum: bigint;
          sum: bigint;
          n: bigint;
          max_version: bigint;
          last_balance: number;
        }>`
          select e.entitlement_id, e.paid_remaining, e.bonus_remaining, e.remaining, e.version,
                 sum(x.paid_delta)::bigint as paid_sum, sum(x.bonus_delta)::bigint as bonus_sum,
                 sum(x.sessions_delta)::bigint as sum, count(*)::bigint as n, max(x.entitlement_version) as max_version,
                 (array_agg(x.balance_after order by x.entitlement_version desc))[1] as last_balance
          from entitlements e join entries x using (tenant_id, entitlement_id)
          where e.tenant_id = ${tenantId}
          group by e.entitlement_id, e.paid_remaining, e.bonus_remaining, e.remaining, e.version`.execute(t.db);
        expect(rows).toHaveLength(entitlements.length);
        for (const r of rows) {
          expect(BigInt(r.remaining)).toBe(r.sum);
          expect(BigInt(r.paid_remaining)).toBe(r.paid_sum);
          expect(BigInt(r.bonus_remaining)).toBe(r.bonus_sum);
          expect(r.remaining).toBeGreaterThanOrEqual(0);
          expect(r.version).toBe(r.n);
          expect(r.max_version).toBe(r.n);
          expect(r.last_balance).toBe(r.remaining);
        }
        const { rows: reversals } = await sql<{ n: bigint }>`
          select count(*)::bigint as n from entries r join entries c on c.tenant_id = r.tenant_id and c.entry_id = r.reverses_entry_id
          where r.tenant_id = ${tenantId} and (c.kind <> 'CONSUME' or r.sessions_delta <> -c.sessions_delta)`.execute(t.db);
        expect(reversals[0]!.n).toBe(0n);
      }),
      { numRuns: 30 },
    );
  });
});
