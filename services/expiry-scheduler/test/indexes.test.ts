import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestEnv } from './support/env.js';

let env: TestEnv;

beforeAll(async () => {
  env = await TestEnv.start('2025-03-01T10:00:00Z');
});

afterAll(async () => {
  await env?.close();
});

describe('timer indexes', () => {
  it('keys timers by entitlement only where a read needs it: live ones in the identity index, cancelled ones apart', async () => {
    const { rows } = await env.db.pool.query<{ indexname: string; indexdef: string }>(
      `select indexname, indexdef from pg_indexes where schemaname = current_schema() and tablename = 'timers' order by indexname`,
    );
    expect(rows.map((r) => r.indexname)).toEqual([
      'timers_cancelled_entitlement',
      'timers_live_identity',
      'timers_pending_due',
      'timers_pending_entitlement',
      'timers_pkey',
    ]);
    const def = (name: string) => rows.find((r) => r.indexname === name)!.indexdef;
    expect(def('timers_live_identity')).toMatch(/\(tenant_id, entitlement_id, kind, due_time, offset_days\) WHERE \(state <> 'CANCELLED'::text\)/);
    expect(def('timers_cancelled_entitlement')).toMatch(/\(tenant_id, entitlement_id\) WHERE \(state = 'CANCELLED'::text\)/);
  });

  it("reads an entitlement's timers in every state through the two (the schedule's listing), never the whole table", async () => {
    const client = await env.db.pool.connect();
    try {
      await client.query('set enable_seqscan = off');
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(
        `explain select * from timers where tenant_id = 't' and entitlement_id = 'e' and (state <> 'CANCELLED' or state = 'CANCELLED')`,
      );
      const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(plan).toMatch(/BitmapOr/);
      expect(plan).toMatch(/Bitmap Index Scan on timers_live_identity/);
      expect(plan).toMatch(/Bitmap Index Scan on timers_cancelled_entitlement/);
    } finally {
      await client.query('reset enable_seqscan');
      client.release();
    }
  });
});
