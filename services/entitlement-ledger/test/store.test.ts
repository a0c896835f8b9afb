import { randomUUID } from 'node:crypto';
import { inTransaction, withIdempotency } from '@punchcard/db';
import { sql, type Kysely } from 'kysely';
import { countingStatements, shareKeptOnTheirPages } from '@punchcard/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuleViolation } from '../src/domain/errors.js';
import { applyNamedConsumes, type NamedConsume } from '../src/operations/consume-batch.js';
import { checkConsume, consumeSession, purchasePackage, reverseConsume, type Caller } from '../src/operations/ledger.js';
import { insertEntryWithEvent } from '../src/events/ledger-events.js';
import { entitlementUpdate, lockEntitlementWithTenant } from '../src/store/entitlements.js';
import { onceEach, type KeyLookup } from '../src/store/idempotency.js';
import { Feature } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { definitionTerms, ledgerTestDb, rowsRead, seedCatalogue, type LedgerTestDb } from './support/ledger-db.js';
import type { LedgerDb } from '../src/store/index.js';

const tenantId = randomUUID();
const staff: Caller = { tenantId, subject: 'staff-1', roles: ['staff'] };
const ctx = { clock: () => new Date('2025-03-01T02:00:00Z') };
let t: LedgerTestDb;

beforeAll(async () => {
  t = await ledgerTestDb('ledger_store', 30);
  await seedCatalogue(t.db, tenantId, {
    definitions: { d1: definitionTerms(), small: definitionTerms({ paidSessions: 3, code: 'SMALL' }) },
  });
});
afterAll(async () => t?.drop());

function buy(memberId: string, definitionId = 'd1') {
  return inTransaction(t.db, (tx) =>
    purchasePackage(tx, ctx, staff, { memberId, definitionId, definitionVersion: 0, branchId: 'b1', paymentReference: 'pay-1' }, randomUUID()),
  );
}

/** A consume of the entitlement as the group commit hands it to applyNamedConsumes. */
function namedConsume(entitlementId: string): NamedConsume {
  const request = { entitlementId, memberId: '', serviceCode: 'PHYSIO', branchId: 'b1', visitId: '', reason: '' };
  return { caller: staff, requestId: randomUUID(), entitlementId, request, ...checkConsume(request, ctx.clock()) };
}

function consumeAt(req: { entitlementId?: string; memberId: string }) {
  return inTransaction(t.db, (tx) =>
    consumeSession(
      tx,
      ctx,
      staff,
      { entitlementId: req.entitlementId ?? '', memberId: req.memberId, serviceCode: 'PHYSIO', branchId: 'b1', visitId: '', reason: '' },
      randomUUID(),
    ),
  );
}

async function outcome<T>(p: Promise<T>): Promise<'ok' | string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (err instanceof RuleViolation) return err.kind;
    throw err;
  }
}

async function ledgerBalance(entitlementId: string) {
  const { rows } = await sql<{ sum: bigint; n: bigint; remaining: number; version: bigint }>`
    select coalesce(sum(x.sessions_delta), 0)::bigint as sum, count(x.*)::bigint as n, e.remaining, e.version
    from entitlements e left join entries x using (tenant_id, entitlement_id)
    where e.entitlement_id = ${entitlementId} group by e.remaining, e.version`.execute(t.db);
  return rows[0]!;
}

describe('entries are append-only', () => {
  it('rejects UPDATE, DELETE and TRUNCATE of entries', async () => {
    const { entry } = await buy('append-only');
    await expect(sql`update entries set reason = 'edited' where entry_id = ${entry.entryId}`.execute(t.db)).rejects.toThrow(/append-only: UPDATE/);
    await expect(sql`delete from entries where entry_id = ${entry.entryId}`.execute(t.db)).rejects.toThrow(/append-only: DELETE/);
    await expect(sql`truncate entries cascade`.execute(t.db)).rejects.toThrow(/append-only: TRUNCATE/);
  });

  it('rejects an entry that disagrees with its entitlement, and any negative balance', async () => {
    const { entitlement } = await buy('mismatch');
    await expect(
      sql`insert into entries (tenant_id, entry_id, entitlement_id, kind, sessions_delta, paid_delta, bonus_delta, branch_id,
            actor_subject, actor_roles, reason, occurred_time, record_time, request_id, balance_after, in_grace, member_id, entitlement_version)
          values (${tenantId}, ${randomUUID()}, ${entitlement.entitlementId}, 'CONSUME', -1, -1, 0, 'b1', 'x', '{}', '', now(), now(), 'r', 9, false, 'mismatch', 2)`.execute(t.db),
    ).rejects.toThrow(/does not match entitlement/);
    await expect(
      sql`update entitlements set paid_remaining = -1 where entitlement_id = ${entitlement.entitlementId}`.execute(t.db),
    ).rejects.toThrow(/paid_remaining_check/);
  });
});

describe('the entries of one statement', () => {
  // One session from each package in one statement, as a grouped transaction or an ExpireBatch writes
  // them; the entry of `wrong` (if given) claims one session more than its entitlement has left.
  const consumeEach = (tx: Kysely<LedgerDb>, ids: readonly string[], wrong?: string) =>
    sql`
      with moved as (
        update entitlements set paid_remaining = paid_remaining - 1, version = version + 1
        where tenant_id = ${tenantId} and entitlement_id = any(${ids}::uuid[])
        returning tenant_id, entitlement_id, remaining, version, member_id)
      insert into entries (tenant_id, entry_id, entitlement_id, kind, sessions_delta, paid_delta, bonus_delta, branch_id,
        actor_subject, actor_roles, reason, occurred_time, record_time, request_id, balance_after, in_grace, member_id, entitlement_version)
      select tenant_id, gen_random_uuid(), entitlement_id, 'CONSUME', -1, -1, 0, 'b1', 'x', '{}', '', now(), now(), 'r',
        case when entitlement_id = ${wrong ?? null}::uuid then remaining + 1 else remaining end, false, member_id, version
      from moved`.execute(tx);
  const buyEach = (members: string[]) => Promise.all(members.map(async (m) => (await buy(m)).entitlement.entitlementId));

  it('are checked against their entitlements once, whatever their number', async () => {
    const ids = await buyEach(['stmt-1', 'stmt-2', 'stmt-3']);
    const checks = await inTransaction(t.db, async (tx) => {
      await sql`set local track_functions = 'pl'`.execute(tx);
      await consumeEach(tx, ids);
      const { rows } = await sql<{ n: number }>`
        select coalesce(sum(calls), 0)::int as n from pg_stat_xact_user_functions where funcname like 'entries_match_entitlement%'`.execute(tx);
      return rows[0]!.n;
    });
    expect(checks).toBe(1);
    for (const id of ids) expect(await ledgerBalance(id)).toEqual({ sum: 9n, n: 2n, remaining: 9, version: 2n });
  });

  it('are refused together when one disagrees with its entitlement, which the error names', async () => {
    const ids = await buyEach(['stmt-4', 'stmt-5', 'stmt-6']);
    const wrong = ids[1]!;
    await expect(inTransaction(t.db, (tx) => consumeEach(tx, ids, wrong))).rejects.toThrow(
      new RegExp(`\\(version 2, balance 10\\) does not match entitlement ${wrong} \\(version 2, remaining 9\\)`),
    );
    for (const id of ids) expect(await ledgerBalance(id)).toEqual({ sum: 10n, n: 1n, remaining: 10, version: 1n });
  });
});

describe('sequence numbers', () => {
  it('number entitlements and entries from their sequences, with no unique index of their own to keep up at every write', async () => {
    const first = await buy('seq-1');
    const second = await buy('seq-2');
    const { rows } = await sql<{ entitlement_id: string; seq: string }>`
      select entitlement_id, seq::text from entitlements where entitlement_id in (${first.entitlement.entitlementId}, ${second.entitlement.entitlementId})`.execute(t.db);
    const seqOf = new Map(rows.map((r) => [r.entitlement_id, BigInt(r.seq)]));
    expect(seqOf.get(second.entitlement.entitlementId)!).toBeGreaterThan(seqOf.get(first.entitlement.entitlementId)!);
    const indexes = await sql<{ tablename: string; indexname: string }>`
      select tablename, indexname from pg_indexes where schemaname = current_schema() and tablename in ('entitlements', 'entries')`.execute(t.db);
    const names = indexes.rows.map((r) => r.indexname);
    expect(names).not.toContain('entitlements_seq_key');
    expect(names).not.toContain('entries_seq_key');
    // Pages of a tenant's entitlements read (tenant_id, seq).
    expect(names).toContain('entitlements_tenant_seq');
  });
});

describe('the consume lock', () => {
  it('reads the entitlement and its tenant\'s features in one statement; no features for a tenant the ledger forgot', async () => {
    const other = randomUUID();
    await seedCatalogue(t.db, other, { features: [Feature.SHARING, Feature.TOP_UP] });
    const { entitlement } = await inTransaction(t.db, (tx) =>
      purchasePackage(tx, ctx, { ...staff, tenantId: other }, { memberId: 'm', definitionId: 'd1', definitionVersion: 0, branchId: 'b1', paymentReference: '' }, randomUUID()),
    );
    const locked = await inTransaction(t.db, (tx) => lockEntitlementWithTenant(tx, other, entitlement.entitlementId));
    expect(locked?.entitlement).toEqual(entitlement);
    expect(locked?.tenantFeatures).toEqual([Feature.SHARING, Feature.TOP_UP]);
    expect(await inTransaction(t.db, (tx) => lockEntitlementWithTenant(tx, tenantId, entitlement.entitlementId))).toBeUndefined();
    await sql`delete from tenants where tenant_id = ${other}`.execute(t.db);
    const forgotten = await inTransaction(t.db, (tx) => lockEntitlementWithTenant(tx, other, entitlement.entitlementId));
    expect(forgotten?.tenantFeatures).toBeUndefined();
  });
});

describe('a movement\'s writes', () => {
  it('locks in one statement and saves the entitlement, its entry and its event in one more', async () => {
    const { entitlement } = await buy('one-statement');
    const counted = countingStatements(t.db);
    const r = await inTransaction(counted.db, (tx) =>
      consumeSession(tx, ctx, staff, { entitlementId: entitlement.entitlementId, memberId: '', serviceCode: 'PHYSIO', branchId: 'b1', visitId: '', reason: '' }, randomUUID()),
    );
    expect(counted.statements()).toBe(2);
    expect(await ledgerBalance(entitlement.entitlementId)).toEqual({ sum: 9n, n: 2n, remaining: 9, version: 2n });
    const { rows } = await sql<{ n: bigint }>`select count(*)::bigint as n from outbox where id = ${r.entry.entryId}`.execute(t.db);
    expect(rows[0]!.n).toBe(1n);

    // As an RPC: the idempotency claim, then the answer (the event's bytes) is stored with the rest.
    counted.reset();
    const request = { tenantId, key: randomUUID(), method: 'Consume', requestHash: 'h' };
    const rpc = () =>
      inTransaction(counted.db, (tx) =>
        withIdempotency(tx, request, async () => {
          const done = await consumeSession(tx, ctx, staff, { entitlementId: entitlement.entitlementId, memberId: '', serviceCode: 'PHYSIO', branchId: 'b1', visitId: '', reason: '' }, request.key);
          return done.encoded;
        }),
      );
    const answered = await rpc();
    expect(counted.statements()).toBe(3);
    const replayed = await rpc();
    expect(replayed.replayed).toBe(true);
    expect(replayed.response).toEqual(answered.response);
    expect(await ledgerBalance(entitlement.entitlementId)).toEqual({ sum: 8n, n: 3n, remaining: 8, version: 3n });
  });

  it('of a batch under idempotency keys: the keys read with the lock, the movements and answers in one more; a replay only reads', async () => {
    const bought = await Promise.all([1, 2, 3].map((n) => buy(`batch-${n}`)));
    const calls = bought.map(({ entitlement }) => namedConsume(entitlement.entitlementId));
    const claims = calls.map((c) => ({ method: 'Consume', key: c.requestId, requestHash: 'h' }));
    const counted = countingStatements(t.db);
    const run = () =>
      inTransaction(counted.db, (tx) => onceEach(tx, tenantId, claims, (keys, answersWrite) => applyNamedConsumes(tx, ctx, tenantId, calls, { keys, answersWrite })));
    const answers = (outcomes: Awaited<ReturnType<typeof run>>) => outcomes.map((o) => ('encoded' in o ? o.encoded : o));
    const first = answers(await run());
    expect(first.every((a) => a instanceof Uint8Array)).toBe(true);
    expect(counted.statements()).toBe(2);
    counted.reset();
    expect(answers(await run())).toEqual(first);
    expect(counted.statements()).toBe(1);
    for (const { entitlement } of bought) expect((await ledgerBalance(entitlement.entitlementId)).remaining).toBe(9);
  });

  it('writes nothing when the decision was made on a state the entitlement has left, or disagrees with it', async () => {
    const { entitlement: bought } = await buy('stale');
    const first = await consumeAt({ entitlementId: bought.entitlementId, memberId: '' });
    const outbox = async () => (await sql<{ n: bigint }>`select count(*)::bigint as n from outbox`.execute(t.db)).rows[0]!.n;
    const before = await outbox();
    const now = ctx.clock();
    // Decided on version 1 (as if the lock had not been held): the row is at 2, so the update changes
    // nothing and the entry repeats version 2.
    const stale = inTransaction(t.db, (tx) =>
      insertEntryWithEvent(tx, first.entitlement, { ...first.entry, entryId: randomUUID() }, entitlementUpdate(bought, first.entitlement, now)),
    );
    await expect(stale).rejects.toThrow(/entries_tenant_id_entitlement_id_entitlement_version_key/);
    // Decided on the current version, but the entry's balance disagrees with the saved row.
    const next = { ...first.entitlement, version: 3, paidRemaining: first.entitlement.paidRemaining - 1 };
    const disagreeing = inTransaction(t.db, (tx) =>
      insertEntryWithEvent(tx, next, { ...first.entry, entryId: randomUUID(), entitlementVersion: 3, balanceAfter: 5 }, entitlementUpdate(first.entitlement, next, now)),
    );
    await expect(disagreeing).rejects.toThrow(/does not match entitlement/);
    expect(await ledgerBalance(bought.entitlementId)).toEqual({ sum: 9n, n: 2n, remaining: 9, version: 2n });
    expect(await outbox()).toBe(before);
  });
});

describe('no overdraft under concurrency', () => {
  it('200 concurrent consumes of a 10-session entitlement: exactly 10 succeed, the rest are exhausted', async () => {
    const { entitlement } = await buy('race-explicit');
    const results = await Promise.all(
      Array.from({ length: 200 }, () => outcome(consumeAt({ entitlementId: entitlement.entitlementId, memberId: '' }))),
    );
    expect(results.filter((r) => r === 'ok')).toHaveLength(10);
    expect(results.filter((r) => r === 'resource_exhausted')).toHaveLength(190);
    expect(await ledgerBalance(entitlement.entitlementId)).toEqual({ sum: 0n, n: 11n, remaining: 0, version: 11n });
  });

  it('concurrent picks across a member\'s packages never overdraw or deadlock', async () => {
    const bought = await Promise.all([buy('race-pick', 'small'), buy('race-pick', 'small'), buy('race-pick', 'small')]);
    const results = await Promise.all(Array.from({ length: 40 }, () => outcome(consumeAt({ memberId: 'race-pick' }))));
    expect(results.filter((r) => r === 'ok')).toHaveLength(9);
    expect(results.filter((r) => r === 'resource_exhausted')).toHaveLength(31);
    for (const b of bought) expect(await ledgerBalance(b.entitlement.entitlementId)).toMatchObject({ sum: 0n, remaining: 0 });
  });

  it('concurrent reversals of one consume: exactly one restores the session', async () => {
    const { entitlement } = await buy('race-reverse');
    const consumed = await consumeAt({ entitlementId: entitlement.entitlementId, memberId: '' });
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        outcome(
          inTransaction(t.db, (tx) => reverseConsume(tx, ctx, staff, { entryId: consumed.entry.entryId, reason: 'oops' }, randomUUID())),
        ),
      ),
    );
    expect(results.filter((r) => r === 'ok')).toHaveLength(1);
    expect(results.filter((r) => r === 'failed_precondition')).toHaveLength(9);
    expect(await ledgerBalance(entitlement.entitlementId)).toEqual({ sum: 10n, n: 3n, remaining: 10, version: 3n });
  });
});

describe('a batch\'s idempotency keys', () => {
  it('are found by their own index entries however many keys the tenant has, even planned without statistics', async () => {
    const tenant = randomUUID();
    const method = 'punchcard.ledger.v1.LedgerService/Expire';
    // Keys of earlier batches, as a sweep leaves them; the table has no statistics (never analyzed).
    await sql`
      insert into idempotency_keys (tenant_id, key, method, request_hash, response)
      select ${tenant}, 'earlier-' || g, ${method}, 'h', '\\x00'::bytea from generate_series(1, 20000) g`.execute(t.db);
    const claims = ['earlier-7', 'new-1', 'new-2'].map((key) => ({ method, key, requestHash: 'h' }));
    const { outcomes, read } = await inTransaction(t.db, async (tx) => {
      const before = await rowsRead(tx, 'idempotency_keys');
      // The first new key is answered (its key stored with the answer after apply), the second refused (nothing stored).
      const outcomes = await onceEach(tx, tenant, claims, async (keys) => (await keys.read()).map((n, k) => (k === 0 ? { encoded: new Uint8Array([n]) } : { refused: 'no' })));
      return { outcomes, read: (await rowsRead(tx, 'idempotency_keys')) - before };
    });
    expect(outcomes).toEqual([{ encoded: new Uint8Array([0]) }, { encoded: new Uint8Array([1]) }, { refused: 'no' }]);
    const { rows } = await sql<{ key: string; response: Uint8Array | null }>`
      select key, response from idempotency_keys where tenant_id = ${tenant} and key like 'new-%'`.execute(t.db);
    expect(rows).toEqual([{ key: 'new-1', response: Buffer.from([1]) }]);
    expect(read).toBeLessThan(20);
  });

  it('run by two transactions at once: the one that stores its answer second runs again and replays the first', async () => {
    const tenant = randomUUID();
    const claims = [{ method: 'punchcard.ledger.v1.LedgerService/Expire', key: 'raced', requestHash: 'h' }];
    const runs: { who: string; fresh: number[] }[] = [];
    const answering = (who: string, byte: number) => async (keys: KeyLookup) => {
      const fresh = await keys.read();
      runs.push({ who, fresh: [...fresh] });
      return fresh.map(() => ({ encoded: new Uint8Array([byte]) }));
    };
    let commit!: () => void;
    const committing = new Promise<void>((resolve) => (commit = resolve));
    let stored!: () => void;
    const firstStored = new Promise<void>((resolve) => (stored = resolve));
    const first = inTransaction(t.db, async (tx) => {
      const out = await onceEach(tx, tenant, claims, answering('first', 1));
      stored();
      await committing;
      return out;
    });
    await firstStored;
    // The second reads no stored key (the first has not committed), runs, and waits on the key's insert.
    const second = inTransaction(t.db, (tx) => onceEach(tx, tenant, claims, answering('second', 2)));
    for (let waited = 0; ; waited += 20) {
      const { rows } = await sql<{ n: number }>`
        select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`.execute(t.db);
      if (rows[0]!.n > 0) break;
      if (waited > 5000) throw new Error('the second transaction never waited on the key');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    commit();
    expect(await first).toEqual([{ encoded: new Uint8Array([1]) }]);
    expect(await second).toEqual([{ encoded: new Uint8Array([1]) }]);
    expect(runs).toEqual([
      { who: 'first', fresh: [0] },
      { who: 'second', fresh: [0] },
      { who: 'second', fresh: [] },
    ]);
    const { rows } = await sql<{ response: Uint8Array }>`select response from idempotency_keys where tenant_id = ${tenant}`.execute(t.db);
    expect(rows).toEqual([{ response: Buffer.from([1]) }]);
  });
});

describe('entitlement rows', () => {
  it('leave room on their pages for the next movement: most of a page-full consumed in one batch stay on it (HOT, no index entry)', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) ids.push((await buy(`room-${i}`)).entitlement.entitlementId);
    const kept = await shareKeptOnTheirPages(t.db, 'entitlements', 'entitlement_id', sql<boolean>`entitlement_id = any(${ids}::uuid[])`, () =>
      inTransaction(t.db, (tx) => applyNamedConsumes(tx, ctx, tenantId, ids.map(namedConsume))),
    );
    // With full pages (the default fillfactor) none stayed; with a fifth of each page free, about a quarter.
    expect(kept).toBeGreaterThan(0.15);
  });
});
