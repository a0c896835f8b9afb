import { createTestDatabase, type TestDatabase } from '@punchcard/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lsnBytes, rowsWrittenBySchema, startWriteMeter } from '../src/writes.js';
import { sqlOnOwnConnection } from './support/sql.js';

let database: TestDatabase;

const sql = (text: string) => sqlOnOwnConnection(database.url, text);

beforeAll(async () => {
  database = await createTestDatabase('bench_writes');
  // Room on every page, so an update that changes no indexed column stays on its page (HOT).
  await sql('create table counted (id int primary key, indexed int, plain text) with (fillfactor = 50)');
  await sql('create index counted_indexed on counted (indexed)');
  await sql('create table untouched (id int)');
});

afterAll(async () => {
  await database?.drop();
});

describe('the write meter', () => {
  it('counts the rows each table got, the updates that wrote no index entry, and the WAL', async () => {
    const meter = await startWriteMeter(database.url);
    await sql(`insert into counted select g, g, 'x' from generate_series(1, 10) g`);
    await sql(`update counted set plain = 'y' where id <= 3`);
    await sql('update counted set indexed = indexed + 100 where id between 4 and 5');
    await sql('delete from counted where id > 8');

    await expect
      .poll(async () => (await meter.stop()).tables, { timeout: 15_000, interval: 250 })
      .toEqual({ 'public.counted': { inserted: 10, updated: 5, hotUpdated: 3, deleted: 2 } });
    const { wal } = await meter.stop();
    expect(wal.bytes).toBeGreaterThan(0);
    expect(wal.records).toBeGreaterThan(0);
  });

  it('counts the checkpoints in between, and the full-page images the first change after one logs', async () => {
    const meter = await startWriteMeter(database.url);
    await sql('checkpoint');
    await sql(`update counted set plain = 'z' where id = 1`);
    await expect.poll(async () => (await meter.stop()).wal.fullPageImages, { timeout: 15_000, interval: 250 }).toBeGreaterThan(0);
    // At least: the server may also have made a timed one meanwhile.
    expect((await meter.stop()).wal.checkpoints).toBeGreaterThanOrEqual(1);
  });

  it('sums the tables of each schema', () => {
    expect(
      rowsWrittenBySchema({
        tables: {
          'ledger.entries': { inserted: 3, updated: 0, hotUpdated: 0, deleted: 0 },
          'ledger.outbox': { inserted: 2, updated: 2, hotUpdated: 1, deleted: 1 },
          'revenue.inbox': { inserted: 1, updated: 0, hotUpdated: 0, deleted: 0 },
        },
        wal: { bytes: 0, records: 0, fullPageImages: 0, checkpoints: 0 },
      }),
    ).toEqual({
      ledger: { inserted: 5, updated: 2, hotUpdated: 1, deleted: 1 },
      revenue: { inserted: 1, updated: 0, hotUpdated: 0, deleted: 0 },
    });
  });

  it('reads a WAL position as a byte offset', () => {
    expect(lsnBytes('0/0')).toBe(0n);
    expect(lsnBytes('0/10')).toBe(16n);
    expect(lsnBytes('16/B374D848')).toBe(0x16n * 2n ** 32n + 0xb374d848n);
  });
});
