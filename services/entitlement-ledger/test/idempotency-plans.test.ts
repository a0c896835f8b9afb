import { randomUUID } from 'node:crypto';
import { inTransaction } from '@punchcard/db';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onceEach } from '../src/store/idempotency.js';
import { keyRowsRead, ledgerTestDb, type LedgerTestDb } from './support/ledger-db.js';

// A database of its own: the plans below must be made while idempotency_keys is empty.
let t: LedgerTestDb;

beforeAll(async () => {
  t = await ledgerTestDb('ledger_idempotency_plans');
});

afterAll(async () => t?.drop());

describe('storing the answers of a batch of idempotency keys', () => {
  it('reads only their own rows with the plans cached while the table was empty, however many keys the tenant has since', async () => {
    const tenant = randomUUID();
    const method = 'punchcard.ledger.v1.LedgerService/Consume';
    const answer = async (tx: LedgerTestDb['db'], keys: string[]) =>
      onceEach(tx, tenant, keys.map((key) => ({ method, key, requestHash: 'h' })), async (fresh) => fresh.map((n) => ({ encoded: new Uint8Array([n]) })));
    const read = await inTransaction(t.db, async (tx) => {
      // One connection throughout: the generic plans made now, on the empty table, are the ones used below.
      await sql`set local plan_cache_mode = force_generic_plan`.execute(tx);
      await answer(tx, ['first-1', 'first-2']);
      await sql`
        insert into idempotency_keys (tenant_id, key, method, request_hash, response)
        select ${tenant}, 'earlier-' || g, ${method}, 'h', '\\x00'::bytea from generate_series(1, 20000) g`.execute(tx);
      const before = await keyRowsRead(tx);
      expect(await answer(tx, ['new-1', 'new-2'])).toEqual([{ encoded: new Uint8Array([0]) }, { encoded: new Uint8Array([1]) }]);
      return (await keyRowsRead(tx)) - before;
    });
    const { rows } = await sql<{ key: string; response: Uint8Array }>`
      select key, response from idempotency_keys where tenant_id = ${tenant} and key not like 'earlier-%' order by key`.execute(t.db);
    expect(rows).toEqual([
      { key: 'first-1', response: Buffer.from([0]) },
      { key: 'first-2', response: Buffer.from([1]) },
      { key: 'new-1', response: Buffer.from([0]) },
      { key: 'new-2', response: Buffer.from([1]) },
    ]);
    expect(read).toBeLessThan(20);
  });
});
