import { ROOT_CONTEXT } from '@opentelemetry/api';
import { enqueueMany, type ConsumedEvent, type OwnWrite } from '@punchcard/bus';
import type { LedgerEntryRecorded } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { createDb, ensureSchema, inTransaction, migrateToLatest, type Database } from '@punchcard/db';
import { countingStatements, createTestDatabase, shareKeptOnTheirPages, type TestDatabase } from '@punchcard/testing';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, purchase, type PostingContext } from '../src/domain/contract.js';
import { credit, debit } from '../src/domain/journal.js';
import type { JournalDraft } from '../src/domain/types.js';
import { onLedgerEvents } from '../src/events/ledger.js';
import { postEntries } from '../src/events/publish.js';
import { tenantsWithZones, upsertBranch, upsertTenant } from '../src/store/catalogue.js';
import { contractsWrites, entitlementKey, loadContract, lockEntitlements, progressWrites } from '../src/store/contracts.js';
import { findJournalEntry, journalEntryId } from '../src/store/journal.js';
import { migrations } from '../src/store/migrations.js';
import { SCHEMA, type RevenueDb } from '../src/store/schema.js';
import { buy3free1 } from './support/fixtures.js';
import { SimEntitlement } from './support/ledger-sim.js';

let testDb: TestDatabase;
let database: Database<RevenueDb>;

beforeAll(async () => {
  testDb = await createTestDatabase('revenue_store');
  await ensureSchema(testDb.url, SCHEMA);
  database = createDb<RevenueDb>({ url: testDb.url, schema: SCHEMA, poolMax: 4 });
  await migrateToLatest(database.db, SCHEMA, migrations);
});

afterAll(async () => {
  await database?.close();
  await testDb?.drop();
});

const ctx: PostingContext = { earningRule: 'DELIVERING_BRANCH', accountingDate: (_b, at) => at.toISOString().slice(0, 10) };

function draft(sourceId: string, lines: JournalDraft['lines']): JournalDraft {
  return {
    tenantId: 't1', cause: 'test', sourceId, entitlementId: 'e1', definitionId: 'd1', currency: 'SGD',
    accountingDate: '2025-03-01', description: 'test', lines, recognitions: [],
  };
}

/** Posts one draft as the service does: the entry, its lines and its events in one statement. */
const postOne = async (tx: Kysely<RevenueDb>, d: JournalDraft, at: Date) => (await postEntries(tx, [d], at))[0]!;

/** Runs writes meant for a statement's `alongside` on their own. */
const writeAlone = (tx: Kysely<RevenueDb>, writes: OwnWrite[]) => enqueueMany(tx, [], { alongside: writes });

describe('journal tables', () => {
  it('migrate again without applying anything', async () => {
    expect(await migrateToLatest(database.db, SCHEMA, migrations)).toEqual([]);
  });

  it('number entries from a sequence read only with the tenant, with no unique index of its own', async () => {
    const { rows } = await sql<{ indexname: string }>`
      select indexname from pg_indexes where schemaname = ${SCHEMA} and tablename = 'journal_entry' order by indexname`.execute(database.db);
    expect(rows.map((r) => r.indexname)).toEqual([
      'journal_entry_pkey',
      'journal_entry_tenant_date',
      'journal_entry_tenant_entitlement',
      'journal_entry_tenant_id_cause_source_id_key',
    ]);
  });

  it('store a balanced entry under an id derived from tenant, cause and source', async () => {
    const posted = await inTransaction(database.db, (tx) =>
      postOne(tx, draft('ok-1', [debit('CASH', 'A', 500n), credit('VISIT_REVENUE', 'A', 500n, { sessions: 1 })]), new Date()),
    );
    expect(posted.journalEntryId).toBe(journalEntryId('t1', 'test', 'ok-1'));
    const found = await findJournalEntry(database.db, 't1', 'test', 'ok-1');
    expect(found?.lines.map((l) => [l.account, l.debit, l.credit, l.sessions])).toEqual([
      ['CASH', 500n, 0n, 0],
      ['VISIT_REVENUE', 0n, 500n, 1],
    ]);
    expect(found?.accountingDate).toBe('2025-03-01');
  });

  it('refuse at commit an entry whose debits and credits differ, overall or per branch', async () => {
    await expect(
      inTransaction(database.db, (tx) => postOne(tx, draft('bad-1', [debit('CASH', 'A', 500n), credit('VISIT_REVENUE', 'A', 499n)]), new Date())),
    ).rejects.toThrow(/does not balance/);
    await expect(
      inTransaction(database.db, (tx) => postOne(tx, draft('bad-2', [debit('CASH', 'A', 500n), credit('VISIT_REVENUE', 'B', 500n)]), new Date())),
    ).rejects.toThrow(/does not balance: debits - credits at A \(500\), B \(-500\)/);
    await expect(
      inTransaction(database.db, (tx) => postOne(tx, draft('bad-3', [debit('CASH', 'A', 500n)]), new Date())),
    ).rejects.toThrow(/needs at least two/);
    expect(await findJournalEntry(database.db, 't1', 'test', 'bad-1')).toBeUndefined();
  });

  it('refuse at commit a line that repeats another tenant, date, package or currency than its entry', async () => {
    const strays = { tenant_id: sql`'t2'`, accounting_date: sql`'2025-03-02'::date`, definition_id: sql`'d2'`, currency: sql`'USD'` };
    for (const [column, stray] of Object.entries(strays)) {
      const copied = (strayed: boolean) => sql.join(Object.keys(strays).map((c) => (strayed && c === column ? stray : sql.ref(c))));
      // Two more lines that balance each other; the second repeats a column its entry does not have.
      const line = (id: string, no: number, debitMinor: number, creditMinor: number, strayed: boolean) => sql`
        insert into journal_line (journal_entry_id, line_no, tenant_id, accounting_date, definition_id, currency, entitlement_id, account,
          branch_id, counterparty_branch_id, debit_minor, credit_minor, sessions, delivery_cost_minor)
        select journal_entry_id, ${no}, ${copied(strayed)}, entitlement_id, 'CASH', 'A', '', ${debitMinor}, ${creditMinor}, 0, 0
        from journal_entry where journal_entry_id = ${id}`;
      const post = (strayed: boolean) =>
        inTransaction(database.db, async (tx) => {
          const posted = await postOne(tx, draft(`stray-${column}-${strayed}`, [debit('CASH', 'A', 500n), credit('VISIT_REVENUE', 'A', 500n)]), new Date());
          await line(posted.journalEntryId, 3, 1, 0, false).execute(tx);
          await line(posted.journalEntryId, 4, 0, 1, strayed).execute(tx);
        });
      await expect(post(true)).rejects.toThrow(/has 1 line\(s\) of another tenant, accounting date, package or currency/);
      await expect(post(false)).resolves.toBeUndefined();
    }
  });

  it('check each entry once, at commit, lines added by later statements of its transaction included', async () => {
    const calls = async (tx: Kysely<RevenueDb>) =>
      (await sql<{ n: number }>`select coalesce(sum(calls), 0)::int as n from pg_stat_xact_user_functions where funcname = 'journal_entry_must_balance'`.execute(tx)).rows[0]!.n;
    await inTransaction(database.db, async (tx) => {
      await sql`set local track_functions = 'pl'`.execute(tx);
      await postEntries(tx, ['once-1', 'once-2', 'once-3'].map((source) => draft(source, [debit('CASH', 'A', 500n), credit('VISIT_REVENUE', 'A', 500n)])), new Date());
      // Fires the deferred checks now, where this transaction can still count them.
      await sql`set constraints all immediate`.execute(tx);
      expect(await calls(tx)).toBe(3);
    });
    const unbalanced = inTransaction(database.db, async (tx) => {
      const posted = await postOne(tx, draft('later-line', [debit('CASH', 'A', 500n), credit('VISIT_REVENUE', 'A', 500n)]), new Date());
      await sql`
        insert into journal_line (journal_entry_id, line_no, tenant_id, accounting_date, definition_id, currency, entitlement_id, account,
          branch_id, counterparty_branch_id, debit_minor, credit_minor, sessions, delivery_cost_minor)
        select journal_entry_id, 3, tenant_id, accounting_date, definition_id, currency, entitlement_id, 'CASH', 'A', '', 1, 0, 0, 0
        from journal_entry where journal_entry_id = ${posted.journalEntryId}`.execute(tx);
    });
    await expect(unbalanced).rejects.toThrow(/does not balance: debits - credits at A \(1\)/);
  });

  it('refuse a line for an entry an earlier transaction committed, even lines that balance each other', async () => {
    const posted = await inTransaction(database.db, (tx) =>
      postOne(tx, draft('closed-1', [debit('CASH', 'A', 500n), credit('VISIT_REVENUE', 'A', 500n)]), new Date()),
    );
    const addPair = inTransaction(database.db, async (tx) => {
      await sql`
        insert into journal_line (journal_entry_id, line_no, tenant_id, accounting_date, definition_id, currency, entitlement_id, account,
          branch_id, counterparty_branch_id, debit_minor, credit_minor, sessions, delivery_cost_minor)
        select journal_entry_id, n, tenant_id, accounting_date, definition_id, currency, entitlement_id, 'CASH', 'A', '',
          case n when 3 then 7 else 0 end, case n when 3 then 0 else 7 end, 0, 0
        from journal_entry, generate_series(3, 4) n where journal_entry_id = ${posted.journalEntryId}`.execute(tx);
    });
    await expect(addPair).rejects.toThrow(new RegExp(`journal entry ${posted.journalEntryId} was posted by an earlier transaction`));
    expect((await findJournalEntry(database.db, 't1', 'test', 'closed-1'))?.lines).toHaveLength(2);
  });

  it('refuse two-sided lines and deferred lines without a roll-forward movement', async () => {
    const twoSided = { ...debit('CASH', 'A', 5n), credit: 5n };
    await expect(inTransaction(database.db, (tx) => postOne(tx, draft('bad-4', [twoSided, twoSided]), new Date()))).rejects.toThrow(/journal_line_one_sided/);
    await expect(
      inTransaction(database.db, (tx) => postOne(tx, draft('bad-5', [debit('CASH', 'A', 5n), credit('DEFERRED_REVENUE', 'A', 5n)]), new Date())),
    ).rejects.toThrow(/journal_line_movement_on_deferred/);
  });

  it('never update, delete or truncate a posted entry', async () => {
    const id = journalEntryId('t1', 'test', 'ok-1');
    await expect(sql`update journal_line set debit_minor = 1 where journal_entry_id = ${id}`.execute(database.db)).rejects.toThrow(/append-only: UPDATE refused/);
    await expect(sql`delete from journal_line where journal_entry_id = ${id}`.execute(database.db)).rejects.toThrow(/append-only: DELETE refused/);
    await expect(sql`update journal_entry set description = 'x' where journal_entry_id = ${id}`.execute(database.db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from journal_entry where journal_entry_id = ${id}`.execute(database.db)).rejects.toThrow(/append-only/);
    await expect(sql`truncate journal_line`.execute(database.db)).rejects.toThrow(/append-only: TRUNCATE refused/);
    expect((await findJournalEntry(database.db, 't1', 'test', 'ok-1'))?.lines).toHaveLength(2);
  });

  it('refuse a second entry for the same cause and source', async () => {
    await expect(
      inTransaction(database.db, (tx) => postOne(tx, draft('ok-1', [debit('CASH', 'A', 1n), credit('VISIT_REVENUE', 'A', 1n)]), new Date())),
    ).rejects.toThrow(/duplicate key/);
  });
});

describe('contracts', () => {
  it('round-trip a contract exactly, bigints and consumptions included', async () => {
    let { contract } = purchase(
      {
        tenantId: 't1', entitlementId: 'e-rt', definitionId: 'd1', definitionVersion: 2, memberId: 'm', currency: 'SGD', liabilityBranchId: 'A',
        breakageBps: 1500, sessionOrder: 'BONUS_FIRST', standalonePrice: 12_000n, costs: { perSession: 2000n, byBranch: { B: 9_007_199_254_740_993n } },
        entryId: 'p', at: new Date('2025-03-01T00:00:00Z'), status: 'ACTIVE', price: 10_000n, paidSessions: 2, bonusSessions: 1,
      },
      ctx,
    );
    contract = apply(contract, { kind: 'CONSUME', entryId: 'c', at: new Date('2025-03-02T00:00:00Z'), branchId: 'B', status: 'ACTIVE', bonus: null }, ctx).contract;
    await inTransaction(database.db, (tx) => writeAlone(tx, contractsWrites([contract], new Date())));
    expect(await loadContract(database.db, 't1', 'e-rt')).toEqual(contract);
    expect(await loadContract(database.db, 't2', 'e-rt')).toBeUndefined();
  });

  it('track the applied version per entitlement under a row lock, with the contract', async () => {
    const v1 = { tenantId: 't1', entitlementId: 'e-v' };
    const other = { tenantId: 't2', entitlementId: 'e-v' };
    const withContract = { tenantId: 't1', entitlementId: 'e-rt' };
    await inTransaction(database.db, async (tx) => {
      const states = await lockEntitlements(tx, [v1, other]);
      expect(states.get(entitlementKey(v1))).toEqual({ applied: 0, contract: undefined });
      await writeAlone(tx, progressWrites([{ ...v1, version: 1 }]));
    });
    const states = await inTransaction(database.db, (tx) => lockEntitlements(tx, [other, v1, withContract]));
    expect([...states.entries()].map(([k, s]) => [k, s.applied])).toEqual([
      [entitlementKey(withContract), 0],
      [entitlementKey(v1), 1],
      [entitlementKey(other), 0],
    ]);
    expect(states.get(entitlementKey(withContract))?.contract).toEqual(await loadContract(database.db, 't1', 'e-rt'));
    expect(states.get(entitlementKey(v1))?.contract).toBeUndefined();
  });

  it('lock an entitlement against a second transaction until the first commits', async () => {
    const ref = { tenantId: 't1', entitlementId: 'e-lock' };
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const first = inTransaction(database.db, async (tx) => {
      await lockEntitlements(tx, [ref]);
      locked();
      await held;
      await writeAlone(tx, progressWrites([{ ...ref, version: 1 }]));
      order.push('first committed');
    });
    await isLocked;
    const second = inTransaction(database.db, async (tx) => {
      const states = await lockEntitlements(tx, [ref]);
      order.push('second locked');
      return states.get(entitlementKey(ref))?.applied;
    });
    await new Promise((r) => setTimeout(r, 100));
    release();
    await first;
    expect(await second).toBe(1);
    expect(order).toEqual(['first committed', 'second locked']);
  });
});

describe('catalogue', () => {
  it('reads tenants with their branches\' zones in one query; unknown tenants have none, and zones of their branches', async () => {
    const updatedAt = new Date();
    await upsertTenant(database.db, { tenantId: 'cat-1', currency: 'SGD', earningRule: 'PURCHASING_BRANCH', updatedAt });
    await upsertTenant(database.db, { tenantId: 'cat-2', currency: 'GBP', earningRule: 'DELIVERING_BRANCH', updatedAt });
    await upsertBranch(database.db, { tenantId: 'cat-1', branchId: 'A', timeZone: 'Asia/Singapore', updatedAt });
    await upsertBranch(database.db, { tenantId: 'cat-1', branchId: 'B', timeZone: 'Europe/London', updatedAt });
    // Its branch event arrived before the tenant's.
    await upsertBranch(database.db, { tenantId: 'cat-3', branchId: 'C', timeZone: 'Asia/Tokyo', updatedAt });
    const counted = countingStatements(database.db);
    const { tenants, zones } = await tenantsWithZones(counted.db, ['cat-1', 'cat-2', 'cat-1', 'cat-3', 'cat-4']);
    expect(counted.statements()).toBe(1);
    expect(Object.fromEntries(tenants)).toEqual({
      'cat-1': { tenantId: 'cat-1', currency: 'SGD', earningRule: 'PURCHASING_BRANCH' },
      'cat-2': { tenantId: 'cat-2', currency: 'GBP', earningRule: 'DELIVERING_BRANCH' },
    });
    expect(Object.fromEntries([...zones].map(([t, z]) => [t, Object.fromEntries(z)]))).toEqual({
      'cat-1': { A: 'Asia/Singapore', B: 'Europe/London' },
      'cat-2': {},
      'cat-3': { C: 'Asia/Tokyo' },
      'cat-4': {},
    });
  });
});

describe('a batch of ledger events', () => {
  it('writes its contracts, journal entries, events and progress in one statement', async () => {
    const tenantId = 't-batch';
    await upsertTenant(database.db, { tenantId, currency: 'SGD', earningRule: 'DELIVERING_BRANCH', updatedAt: new Date() });
    await upsertBranch(database.db, { tenantId, branchId: 'A', timeZone: 'Asia/Singapore', updatedAt: new Date() });
    const at = new Date('2025-03-01T02:00:00Z');
    const sims = [0, 1].map(() => new SimEntitlement({ tenantId, definitionId: 'def-b3f1', terms: buy3free1(), branchId: 'A', timeZone: 'Asia/Singapore', at }));
    const published = sims.flatMap((s) => [s.purchase(), s.consume('A', new Date('2025-03-02T02:00:00Z'))]);
    const events: ConsumedEvent<LedgerEntryRecorded>[] = published.map((e, n) => ({
      id: e.id,
      type: `punchcard.ledger.${e.event}`,
      source: '/punchcard/entitlement-ledger',
      subject: `punchcard.ledger.${e.event}.${tenantId}`,
      tenantId,
      time: at,
      aggregateId: e.entitlementId,
      aggregateVersion: e.version,
      data: e.message,
      headers: {},
      deliveryCount: 1,
      streamSequence: n + 1,
      traceContext: ROOT_CONTEXT,
    }));
    const counted = countingStatements(database.db);
    const outboxBefore = await outboxRows();
    const { statements, deferrals } = await inTransaction(counted.db, async (tx) => {
      const before = counted.statements();
      const deferrals = await onLedgerEvents(tx, events, { now: () => new Date(), retryDelayMs: 1000 });
      return { statements: counted.statements() - before, deferrals };
    });
    expect(deferrals).toEqual([]);
    // Progress rows made and locked (2), the tenants with their branches' zones (1), then every write in one.
    expect(statements).toBe(4);
    for (const s of sims) {
      expect((await loadContract(database.db, tenantId, s.entitlementId))?.sessions.filter((x) => x.consumedBy)).toHaveLength(1);
    }
    for (const e of published) expect(await findJournalEntry(database.db, tenantId, `ledger.${e.event}`, e.message.entry!.entryId)).toBeDefined();
    const states = await inTransaction(database.db, (tx) => lockEntitlements(tx, sims.map((s) => ({ tenantId, entitlementId: s.entitlementId }))));
    expect([...states.values()].map((s) => s.applied)).toEqual([2, 2]);
    expect((await outboxRows()) - outboxBefore).toBeGreaterThanOrEqual(4);
  });
});

async function outboxRows(): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from outbox`.execute(database.db);
  return rows[0]!.n;
}

describe('entitlement progress rows', () => {
  it('leave room on their pages for the next event: most updates of a page-full stay on it (HOT, no key entry)', async () => {
    const refs = Array.from({ length: 2000 }, (_, i) => ({ tenantId: 'room-for-updates', entitlementId: `ent-${i}` }));
    await inTransaction(database.db, (tx) => lockEntitlements(tx, refs));
    // As a batch of events does: each row locked and its version written, in one transaction.
    const kept = await shareKeptOnTheirPages(database.db, 'entitlement_progress', 'entitlement_id', sql<boolean>`tenant_id = 'room-for-updates'`, () =>
      inTransaction(database.db, async (tx) => {
        await lockEntitlements(tx, refs);
        await enqueueMany(tx, [], { alongside: progressWrites(refs.map((r) => ({ ...r, version: 1 }))) });
      }),
    );
    // With full pages (the default fillfactor) almost none stayed; with a fifth of each page free, about a quarter.
    expect(kept).toBeGreaterThan(0.15);
  });
});
