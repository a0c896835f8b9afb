import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, deleteOlderThan, type Database } from '../src/index.js';
import { countingStatements } from '@punchcard/testing';
import { sandbox, type Sandbox } from './helpers.js';

describe('deleteOlderThan', () => {
  let box: Sandbox;
  let handle: Database<any>;

  beforeAll(async () => {
    box = await sandbox('db_prune');
    handle = createDb({ url: box.database.url, schema: 'public', poolMax: 2, applicationName: 'prune-test' });
    await sql`create table spent (id int primary key, done_at timestamptz)`.execute(handle.db);
  });

  afterAll(async () => {
    await handle?.close();
    await box?.drop();
  });

  it('deletes only rows before the cut-off, a batch per statement, and says how many', async () => {
    const cutOff = new Date('2026-01-10T00:00:00Z');
    // 12 rows before the cut-off, 3 after it, 2 never done.
    await sql`insert into spent
      select i, case when i <= 12 then ${cutOff}::timestamptz - i * interval '1 hour'
                     when i <= 15 then ${cutOff}::timestamptz + i * interval '1 hour' end
      from generate_series(1, 17) i`.execute(handle.db);
    const counted = countingStatements(handle.db);

    expect(await deleteOlderThan(counted.db, 'spent', 'done_at', cutOff, 5)).toBe(12);
    // 5 + 5 + 2: the short batch says there is no more.
    expect(counted.statements()).toBe(3);
    const left = await sql<{ id: number }>`select id from spent order by id`.execute(handle.db);
    expect(left.rows.map((r) => r.id)).toEqual([13, 14, 15, 16, 17]);

    counted.reset();
    expect(await deleteOlderThan(counted.db, 'spent', 'done_at', cutOff, 5)).toBe(0);
    expect(counted.statements()).toBe(1);
  });
});
