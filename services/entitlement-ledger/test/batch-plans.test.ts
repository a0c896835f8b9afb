import { randomUUID } from 'node:crypto';
import { inTransaction } from '@punchcard/db';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockEntitlements } from '../src/store/bulk.js';
import { onceEach, type KeyLookup } from '../src/store/idempotency.js';
import { ledgerTestDb, rowsRead, type LedgerTestDb } from './support/ledger-db.js';

// A database of its own: the plans below must be made while idempotency_keys and entitlements are empty.
let t: LedgerTestDb;

beforeAll(async () => {
  t = await ledgerTestDb('ledger_batch_plans');
});

afterAll(async () => t?.drop());

describe('storing the answers of a batch of idempotency keys', () => {
  it('reads only their own rows with the plans cached while the table was empty, however many keys the tenant has since, alone or with the lock', async () => {
    const tenant = randomUUID();
    const method = 'punchcard.ledger.v1.LedgerService/Consume';
    const answered = (fresh: readonly number[]) => fresh.map((n) => ({ encoded: new Uint8Array([n]) }));
    const lookups = {
      alone: (tx: LedgerTestDb['db'], keys: KeyLookup) => keys.read(),
      // As a batch reads them: beside the lock of its rows (none here), in one statement.
      'with the lock': async (tx: LedgerTestDb['db'], keys: KeyLookup) => keys.settle((await lockEntitlements(tx, tenant, [randomUUID()], keys.query)).storedKeys),
    };
    const answer = (tx: LedgerTestDb['db'], how: keyof typeof lookups, keys: string[]) =>
      onceEach(tx, tenant, keys.map((key) => ({ method, key, requestHash: 'h' })), async (lookup) => answered(await lookups[how](tx, lookup)));
    const read = await inTransaction(t.db, async (tx) => {
      // One connection throughout: the generic plans made now, on the empty table, are the ones used below.
      await sql`set local plan_cache_mode = force_generic_plan`.execute(tx);
      await answer(tx, 'alone', ['first-1', 'first-2']);
      await answer(tx, 'with the lock', ['first-3']);
      await sql`
        insert into idempotency_keys (tenant_id, key, method, request_hash, response)
        select ${tenant}, 'earlier-' || g, ${method}, 'h', '\\x00'::bytea from generate_series(1, 20000) g`.execute(tx);
      const read: Record<string, number> = {};
      for (const how of ['alone', 'with the lock'] as const) {
        const before = await rowsRead(tx, 'idempotency_keys');
        expect(await answer(tx, how, [`new-1 ${how}`, 'earlier-5', `new-2 ${how}`])).toEqual([
          { encoded: new Uint8Array([0]) },
          { encoded: new Uint8Array([0]) }, // earlier-5's stored answer
          { encoded: new Uint8Array([2]) },
        ]);
        read[how] = (await rowsRead(tx, 'idempotency_keys')) - before;
      }
      return read;
    });
    const { rows } = await sql<{ key: string; response: Uint8Array }>`
      select key, response from idempotency_keys where tenant_id = ${tenant} and key not like 'earlier-%' order by key`.execute(t.db);
    expect(rows).toEqual([
      { key: 'first-1', response: Buffer.from([0]) },
      { key: 'first-2', response: Buffer.from([1]) },
      { key: 'first-3', response: Buffer.from([0]) },
      { key: 'new-1 alone', response: Buffer.from([0]) },
      { key: 'new-1 with the lock', response: Buffer.from([0]) },
      { key: 'new-2 alone', response: Buffer.from([2]) },
      { key: 'new-2 with the lock', response: Buffer.from([2]) },
    ]);
    expect(read.alone).toBeLessThan(20);
    expect(read['with the lock']).toBeLessThan(20);
  });
});

describe('locking the entitlements of a batch', () => {
  it('locks them in id order, reading only their rows, and keeps one plan whatever their number', async () => {
    const tenant = randomUUID();
    const { wanted, locked, read, plans } = await inTransaction(t.db, async (tx) => {
      // A tenant with 5,000 packages.
      const { rows } = await sql<{ entitlement_id: string }>`
        insert into entitlements (tenant_id, entitlement_id, member_id, definition_id, definition_version, terms, rules, time_zone,
          purchase_branch_id, status, paid_sessions, bonus_sessions, paid_remaining, bonus_remaining, price_currency, price_minor,
          payment_reference, purchase_time, version)
        select ${tenant}, gen_random_uuid(), 'member-' || g, 'definition', 1, '\\x', '{}', 'UTC', 'branch', 'ACTIVE', 10, 0, 10, 0, 'EUR', 1000,
          'payment-' || g, now(), 1
        from generate_series(1, 5000) g
        returning entitlement_id`.execute(tx);
      await sql`analyze entitlements`.execute(tx);
      const ids = rows.map((r) => r.entitlement_id);
      const wanted = [ids[4000]!, ids[7]!, ids[2500]!];
      const before = await rowsRead(tx, 'entitlements');
      const locked = [...(await lockEntitlements(tx, tenant, [...wanted, randomUUID(), ids[7]!])).rows.keys()];
      const read = (await rowsRead(tx, 'entitlements')) - before;
      // Batches of every size, as they come (on one connection): one plan for all, not one per size.
      for (let n = 1; n <= 10; n++) await lockEntitlements(tx, tenant, ids.slice(n * 10, n * 11));
      const { rows: plans } = await sql<{ generic_plans: number; custom_plans: number }>`
        select generic_plans::int, custom_plans::int from pg_prepared_statements where statement like '%with locked as%' and statement not like '%full join%'`.execute(tx);
      return { wanted, locked, read, plans };
    });
    // In id order (uuids compare as their lowercase text does), each once.
    expect(locked).toEqual([...wanted].sort());
    expect(read).toBeLessThan(10);
    expect(plans).toHaveLength(1);
    expect(plans[0]!.generic_plans).toBeGreaterThan(plans[0]!.custom_plans);
  });
});
