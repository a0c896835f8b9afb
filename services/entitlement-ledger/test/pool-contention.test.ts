import { randomUUID } from 'node:crypto';
import { inTransaction } from '@punchcard/db';
import { sql, type Transaction } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuleViolation } from '../src/domain/errors.js';
import { createHousehold } from '../src/operations/households.js';
import { consumeSession, purchasePackage, type Caller } from '../src/operations/ledger.js';
import { shareEntitlement } from '../src/operations/packages.js';
import type { LedgerDb } from '../src/store/schema.js';
import { definitionTerms, ledgerTestDb, seedCatalogue, type LedgerTestDb } from './support/ledger-db.js';

let t: LedgerTestDb;
const ctx = { clock: () => new Date('2025-05-01T02:00:00Z') };

beforeAll(async () => {
  t = await ledgerTestDb('ledger_pool', 20);
});
afterAll(async () => t?.drop());

/** A shared pool of `sessions` with a per-member cap, and a household of 50 members. */
async function pool(sessions: number, cap: number): Promise<{ caller: Caller; entitlementId: string; members: string[] }> {
  const tenantId = randomUUID();
  await seedCatalogue(t.db, tenantId, {
    definitions: { pool: definitionTerms({ paidSessions: sessions, sharing: { householdPool: true, perMemberSessionCap: cap } }) },
  });
  const caller: Caller = { tenantId, subject: 'desk', roles: ['staff'] };
  const members = Array.from({ length: 50 }, (_, i) => `member-${String(i).padStart(2, '0')}`);
  const run = <T>(fn: (tx: Transaction<LedgerDb>) => Promise<T>) => inTransaction(t.db, fn);
  const hh = await run((tx) => createHousehold(tx, ctx, caller, { name: 'big family', kind: 'FAMILY', ownerMemberId: 'holder', memberIds: members }));
  const bought = await run((tx) => purchasePackage(tx, ctx, caller, { memberId: 'holder', definitionId: 'pool', definitionVersion: 0, branchId: 'b1', paymentReference: '' }, randomUUID()));
  await run((tx) => shareEntitlement(tx, ctx, caller, { entitlementId: bought.entitlement.entitlementId, householdId: hh.householdId }));
  return { caller, entitlementId: bought.entitlement.entitlementId, members };
}

/** Every member tries `attempts` consumes at once, half naming the pool, half letting the ledger pick. */
async function race(p: Awaited<ReturnType<typeof pool>>, attempts: number): Promise<Record<string, number>> {
  const outcomes: Record<string, number> = {};
  await Promise.all(
    p.members.flatMap((member, i) =>
      Array.from({ length: attempts }, (_, k) =>
        inTransaction(t.db, (tx) =>
          consumeSession(
            tx,
            ctx,
            p.caller,
            { entitlementId: (i + k) % 2 === 0 ? p.entitlementId : '', memberId: member, serviceCode: 'PHYSIO', branchId: 'b1', visitId: '', reason: '' },
            randomUUID(),
          ),
        ).then(
          () => 'ok',
          (err: unknown) => {
            if (err instanceof RuleViolation) return err.kind;
            throw err;
          },
        ).then((o) => {
          outcomes[o] = (outcomes[o] ?? 0) + 1;
        }),
      ),
    ),
  );
  return outcomes;
}

async function usage(tenantId: string, entitlementId: string) {
  const { rows } = await sql<{ member_id: string; used: number }>`
    select member_id, sum(case when kind = 'CONSUME' then 1 else 0 end)::int as used
    from entries where tenant_id = ${tenantId} and entitlement_id = ${entitlementId} and kind = 'CONSUME'
    group by member_id`.execute(t.db);
  const { rows: ent } = await sql<{ remaining: number }>`
    select remaining from entitlements where tenant_id = ${tenantId} and entitlement_id = ${entitlementId}`.execute(t.db);
  return { byMember: rows, remaining: ent[0]!.remaining };
}

describe('household pool under contention (50 members racing on one pool)', () => {
  it('the pool is the limit: 150 attempts on a 60-session pool with a cap of 2 -> exactly 60, nobody above 2', async () => {
    const p = await pool(60, 2);
    const outcomes = await race(p, 3);
    expect(outcomes.ok).toBe(60);
    expect((outcomes.resource_exhausted ?? 0) + (outcomes.failed_precondition ?? 0)).toBe(90);
    const u = await usage(p.caller.tenantId, p.entitlementId);
    expect(u.remaining).toBe(0);
    expect(u.byMember.reduce((s, r) => s + r.used, 0)).toBe(60);
    expect(Math.max(...u.byMember.map((r) => r.used))).toBeLessThanOrEqual(2);
  });

  it('the cap is the limit: 200 attempts on a 150-session pool with a cap of 2 -> every member exactly 2, 50 left', async () => {
    const p = await pool(150, 2);
    const outcomes = await race(p, 4);
    expect(outcomes.ok).toBe(100);
    expect(outcomes.resource_exhausted).toBe(100);
    const u = await usage(p.caller.tenantId, p.entitlementId);
    expect(u.remaining).toBe(50);
    expect(u.byMember).toHaveLength(50);
    expect(u.byMember.every((r) => r.used === 2)).toBe(true);
  });
});
