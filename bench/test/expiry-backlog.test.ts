import { uuidv7 } from '@punchcard/db';
import { createTestDatabase, type TestDatabase } from '@punchcard/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyOf } from '../src/benchmarks/expiry-backlog.js';
import { sqlOnOwnConnection } from './support/sql.js';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase('bench_backlog_ids');
});

afterAll(async () => {
  await database?.drop();
});

describe('the ids of the expiry backlog copies', () => {
  it('are UUIDv7 with their template time, sort by template then generation, and never collide', async () => {
    // Two templates in one millisecond, as purchases a few milliseconds apart can be.
    const templates = [uuidv7(1_796_000_000_000), uuidv7(1_796_000_000_000), uuidv7(1_796_000_000_005), uuidv7(1_796_000_360_000)];
    const generations = 5000;
    const values = templates.map((id, idx) => `('${id}'::uuid, ${idx})`).join(', ');
    const rows = await sqlOnOwnConnection<{ idx: number; g: number; id: string }>(
      database.url,
      `select t.idx, g, ${copyOf('t.entitlement_id')} as id
         from (values ${values}) t(entitlement_id, idx) cross join generate_series(1, ${generations}) g
        order by id`,
    );
    expect(rows).toHaveLength(templates.length * generations);
    expect(new Set(rows.map((r) => r.id)).size).toBe(rows.length);
    for (const r of rows) {
      expect(r.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(r.id.replace(/-/g, '').slice(0, 12)).toBe(templates[r.idx]!.replace(/-/g, '').slice(0, 12));
    }
    // In id order: by their template's time first; within a time, each template's copies in generation order.
    const templateTimes = rows.map((r) => templates[r.idx]!.slice(0, 13));
    expect(templateTimes).toEqual([...templateTimes].sort());
    for (let idx = 0; idx < templates.length; idx++) {
      const gs = rows.filter((r) => r.idx === idx).map((r) => r.g);
      expect(gs).toEqual(Array.from({ length: generations }, (_, i) => i + 1));
    }
  });

  it('are the same for the same template and generation, whatever table makes them', async () => {
    const template = uuidv7(1_796_000_000_000);
    const text = `select ${copyOf('t.entitlement_id')} as id from (values ('${template}'::uuid)) t(entitlement_id), generate_series(41, 42) g order by g`;
    const [first, second] = [await sqlOnOwnConnection<{ id: string }>(database.url, text), await sqlOnOwnConnection<{ id: string }>(database.url, text.replace("'::uuid", "'::text"))];
    expect(second).toEqual(first);
    expect(first[0]!.id).not.toBe(first[1]!.id);
  });
});
