import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@punchcard/testing';
import { createDb, PackedBytes, type Database } from '../src/index.js';

describe('PackedBytes', () => {
  it('places each byte string after the ones before it, counting from 1 as substring does', () => {
    const packed = new PackedBytes();
    expect(packed.add(Uint8Array.of(1, 2, 3))).toEqual({ at: 1, length: 3 });
    expect(packed.add(new Uint8Array(0))).toEqual({ at: 4, length: 0 });
    expect(packed.add(Uint8Array.of(9).subarray(0, 1))).toEqual({ at: 4, length: 1 });
    expect([...packed.bytes()]).toEqual([1, 2, 3, 9]);
  });

  describe('against Postgres', () => {
    let database: TestDatabase;
    let db: Database<Record<string, never>>;
    beforeAll(async () => {
      database = await createTestDatabase('packedbytes');
      db = createDb<Record<string, never>>({ url: database.url, schema: 'public' });
    });
    afterAll(async () => {
      await db?.close();
      await database?.drop();
    });

    /** What a statement taking rows as jsonb and their bytes packed reads back, row by row. */
    async function roundTrip(values: readonly (Uint8Array | null)[]): Promise<(Uint8Array | null)[]> {
      const packed = new PackedBytes();
      const rows = values.map((v) => (v === null ? { at: null, length: null } : packed.add(v)));
      const { rows: read } = await sql<{ bytes: Buffer | null }>`
        select substring(${packed.bytes()}::bytea from v.at for v.length) as bytes
        from rows from (jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as (at int, length int)) with ordinality as v
        order by v.ordinality`.execute(db.db);
      return read.map((r) => (r.bytes === null ? null : new Uint8Array(r.bytes)));
    }

    it('gives each row back exactly its bytes: empty, null, zero bytes, views into larger buffers', async () => {
      const big = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) % 256);
      const values = [Uint8Array.of(0, 0), null, new Uint8Array(0), big.subarray(100, 250), Uint8Array.of(0x5c, 0x78, 0x30)];
      expect(await roundTrip(values)).toEqual(values.map((v) => (v === null ? null : new Uint8Array(v))));
    });

    it('round-trips any rows of byte strings (property, through one prepared statement)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.option(fc.uint8Array({ maxLength: 64 }), { nil: null }), { minLength: 1, maxLength: 40 }), async (values) => {
          expect(await roundTrip(values)).toEqual(values);
        }),
        { numRuns: 60 },
      );
    });
  });
});
