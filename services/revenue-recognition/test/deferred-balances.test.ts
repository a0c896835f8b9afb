import { randomUUID } from 'node:crypto';
import { createDb, ensureSchema, inTransaction, migrateToLatest, type Database } from '@punchcard/db';
import { createTestDatabase, type TestDatabase } from '@punchcard/testing';
import fc from 'fast-check';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DateRange } from '../src/domain/calendar.js';
import type { Movement } from '../src/domain/types.js';
import { migrations } from '../src/store/migrations.js';
import { rollForwardPage, rollForwardTotal, type ReportScope } from '../src/store/reports.js';
import type { RevenueDb } from '../src/store/schema.js';
import { balancesAndJournal, rollForwardFromJournal } from './support/journal-reference.js';

/**
 * The deferred revenue balances (migration 0006) against journal_line itself, for generated journals:
 * several tenants, currencies, branches, packages and every movement, dates over two years (a leap day,
 * month and year ends), lines netting to zero, entries posted one per statement or many per statement
 * and several statements per transaction; backfilled by the migration or kept by the trigger. The
 * roll-forward read from the balances must equal the sums over journal_line to the cent.
 */
let testDb: TestDatabase;
const opened: Database<RevenueDb>[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase('revenue_balances');
});

afterAll(async () => {
  for (const d of opened) await d.close();
  await testDb?.drop();
});

let schemas = 0;
async function freshSchema(upTo?: string): Promise<Database<RevenueDb> & { schema: string }> {
  const schema = `revenue_balances_${++schemas}`;
  await ensureSchema(testDb.url, schema);
  const database = createDb<RevenueDb>({ url: testDb.url, schema, poolMax: 8 });
  opened.push(database);
  const wanted = upTo ? Object.fromEntries(Object.entries(migrations).filter(([name]) => name < upTo)) : migrations;
  await migrateToLatest(database.db, schema, wanted);
  return { ...database, schema };
}

const MOVEMENTS: Movement[] = ['SALE', 'TOP_UP', 'RECOGNISED', 'BREAKAGE', 'REFUND', 'TRANSFER'];
const FIRST_DAY = Date.UTC(2024, 0, 1);
const iso = (day: number) => new Date(FIRST_DAY + day * 86_400_000).toISOString().slice(0, 10);
/** Days from 2024-01-01 to the first of each month until 2026-03. */
const MONTH_STARTS = Array.from({ length: 27 }, (_, m) => (Date.UTC(2024, m, 1) - FIRST_DAY) / 86_400_000);
/** Any day up to `lastDay`, often next to the first of a month, where days meet months. */
const dayUpTo = (lastDay: number) =>
  fc.oneof(
    fc.integer({ min: 0, max: lastDay }),
    fc.constantFrom(...MONTH_STARTS.filter((d) => d <= lastDay)).chain((d) => fc.integer({ min: Math.max(0, d - 1), max: Math.min(lastDay, d + 1) })),
  );

interface Entry {
  tenant: number;
  currency: string;
  definitionId: string;
  day: number;
  /** Deferred lines: + credits the liability, − debits it. Each branch's net is balanced by a cash line. */
  deferred: { branchId: string; movement: Movement; amount: bigint }[];
}

const entryWithin = (lastDay: number): fc.Arbitrary<Entry> => fc.record({
  tenant: fc.nat(1),
  currency: fc.constantFrom('SGD', 'MYR'),
  definitionId: fc.constantFrom('d1', 'd2', 'd3'),
  day: dayUpTo(lastDay),
  deferred: fc.array(
    fc.record({
      branchId: fc.constantFrom('a', 'b', 'c'),
      movement: fc.constantFrom(...MOVEMENTS),
      amount: fc.bigInt({ min: -50_000n, max: 50_000n }).filter((a) => a !== 0n),
    }),
    { minLength: 1, maxLength: 4 },
  ),
});

/** A journal posted in transactions of one to three insert statements of one to four entries each. */
const journal = fc.array(fc.array(fc.array(entryWithin(760), { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 12 });

async function post(db: Kysely<RevenueDb>, tenantIds: readonly string[], statements: readonly (readonly Entry[])[], onRetry?: () => void): Promise<void> {
  await inTransaction(db, async (tx) => {
    for (const entries of statements) {
      const rows = entries.map((e) => ({ id: randomUUID(), e }));
      await tx
        .insertInto('journal_entry')
        .values(
          rows.map(({ id, e }) => ({
            journal_entry_id: id,
            tenant_id: tenantIds[e.tenant]!,
            cause: 'test',
            source_id: id,
            entitlement_id: 'e',
            definition_id: e.definitionId,
            currency: e.currency,
            accounting_date: iso(e.day),
            posted_at: new Date(),
            description: 'generated',
          })),
        )
        .execute();
      await tx
        .insertInto('journal_line')
        .values(
          rows.flatMap(({ id, e }) => {
            const cash = new Map<string, bigint>();
            for (const d of e.deferred) cash.set(d.branchId, (cash.get(d.branchId) ?? 0n) + d.amount);
            const lines = [
              ...e.deferred.map((d) => ({ account: 'DEFERRED_REVENUE', branchId: d.branchId, amount: d.amount, movement: d.movement as string | null })),
              ...[...cash].filter(([, n]) => n !== 0n).map(([branchId, n]) => ({ account: 'CASH', branchId, amount: -n, movement: null })),
            ];
            return lines.map((l, i) => ({
              journal_entry_id: id,
              line_no: i + 1,
              tenant_id: tenantIds[e.tenant]!,
              accounting_date: iso(e.day),
              definition_id: e.definitionId,
              currency: e.currency,
              entitlement_id: 'e',
              account: l.account,
              branch_id: l.branchId,
              counterparty_branch_id: '',
              debit_minor: l.amount < 0n ? -l.amount : 0n,
              credit_minor: l.amount > 0n ? l.amount : 0n,
              movement: l.movement,
              sessions: 0,
              delivery_cost_minor: 0n,
            }));
          }),
        )
        .execute();
    }
  }, onRetry ? { onRetry } : {});
}

interface Scope {
  tenant: number;
  currency: string;
  start: number;
  length: number;
  branchId: string | undefined;
  definitionId: string | undefined;
  pageSize: number;
}

/** Report scopes over a journal: periods anywhere, near month starts, or starting on or right after a posted day. */
const scopesOver = (posted: readonly (readonly (readonly Entry[])[])[]): fc.Arbitrary<Scope[]> => {
  const days = posted.flat(2).map((e) => e.day);
  return fc.array(
    fc.record({
      tenant: fc.nat(1),
      currency: fc.constantFrom('SGD', 'MYR'),
      start: fc.oneof(fc.integer({ min: -40, max: 800 }), dayUpTo(800), fc.constantFrom(...days).chain((d) => fc.constantFrom(d, d + 1))),
      length: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 800 }), fc.constantFrom(1, 28, 29, 30, 31, 61, 92, 365, 366)),
      branchId: fc.option(fc.constantFrom('a', 'b', 'c'), { nil: undefined }),
      definitionId: fc.option(fc.constantFrom('d1', 'd2', 'd3'), { nil: undefined }),
      pageSize: fc.integer({ min: 1, max: 4 }),
    }),
    { minLength: 4, maxLength: 10 },
  );
};

async function expectReportsMatchJournal(db: Kysely<RevenueDb>, tenantIds: readonly string[], scopes: readonly Scope[]): Promise<void> {
  const b = await balancesAndJournal(db);
  expect(b.days).toEqual(b.daysFromJournal);
  expect(b.months).toEqual(b.monthsFromJournal);
  for (const sc of scopes) {
    const period: DateRange = { start: iso(sc.start), end: iso(sc.start + sc.length) };
    const s: ReportScope = {
      tenantId: tenantIds[sc.tenant]!,
      currency: sc.currency,
      period,
      ...(sc.branchId ? { branchId: sc.branchId } : {}),
      ...(sc.definitionId ? { definitionId: sc.definitionId } : {}),
    };
    const rows = [];
    let after: readonly [string, string] | undefined;
    for (;;) {
      const page = await rollForwardPage(db, s, { ...(after ? { after } : {}), limit: sc.pageSize });
      rows.push(...page);
      if (page.length < sc.pageSize) break;
      after = [page.at(-1)!.branchId, page.at(-1)!.definitionId];
    }
    const reference = await rollForwardFromJournal(db, s);
    expect([s, rows]).toEqual([s, reference.rows]);
    expect([s, await rollForwardTotal(db, s)]).toEqual([s, reference.total]);
  }
}

describe('deferred revenue balances', () => {
  it('the migration backfills a journal posted before it; the trigger keeps it after', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(journal, journal).chain(([before, after]) => fc.tuple(fc.constant(before), fc.constant(after), scopesOver([...before, ...after]))),
        async ([before, after, scopes]) => {
          const database = await freshSchema('0006');
          const tenantIds = [`t-${randomUUID()}`, `t-${randomUUID()}`];
          for (const statements of before) await post(database.db, tenantIds, statements);
          expect(await migrateToLatest(database.db, database.schema, migrations)).toEqual(Object.keys(migrations).filter((name) => name >= '0006'));
          await expectReportsMatchJournal(database.db, tenantIds, scopes);
          for (const statements of after) await post(database.db, tenantIds, statements);
          await expectReportsMatchJournal(database.db, tenantIds, scopes);
        },
      ),
      { numRuns: 6 },
    );
  });

  it('the roll-forward from the balances equals the sums over journal_line for any period, branch and package', async () => {
    const database = await freshSchema();
    await fc.assert(
      fc.asyncProperty(journal.chain((posted) => fc.tuple(fc.constant(posted), scopesOver(posted))), async ([posted, scopes]) => {
        const tenantIds = [`t-${randomUUID()}`, `t-${randomUUID()}`];
        for (const statements of posted) await post(database.db, tenantIds, statements);
        await expectReportsMatchJournal(database.db, tenantIds, scopes);
      }),
      { numRuns: 50 },
    );
  });

  it('concurrent posters, one insert statement each, meet on the same balances in different orders without a deadlock or a lost amount', async () => {
    const database = await freshSchema();
    const tenantIds = [`t-${randomUUID()}`, `t-${randomUUID()}`];
    // Four days, so the sixteen transactions keep meeting on the same balance rows, in different orders.
    const batches = fc.sample(fc.array(entryWithin(3), { minLength: 30, maxLength: 30 }), { numRuns: 16, seed: 11 });
    let deadlocks = 0;
    await Promise.all(batches.map((entries) => post(database.db, tenantIds, [entries], () => deadlocks++)));
    expect(deadlocks).toBe(0);
    await expectReportsMatchJournal(database.db, tenantIds, [
      { tenant: 0, currency: 'SGD', start: 2, length: 1, branchId: undefined, definitionId: undefined, pageSize: 3 },
      { tenant: 1, currency: 'MYR', start: 0, length: 40, branchId: undefined, definitionId: undefined, pageSize: 100 },
    ]);
  });
});
