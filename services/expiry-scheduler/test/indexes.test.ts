import { shareKeptOnTheirPages } from '@punchcard/testing';
import { sql } from 'kysely';
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

describe('entitlement rows', () => {
  it("leave room on their pages for the ledger's next event: most updates of a page-full stay on it (HOT, no key entry)", async () => {
    const tenant = 'room-for-updates';
    const db = env.db.db;
    await sql`
      insert into entitlements (tenant_id, entitlement_id, member_id, version, status, remaining, policy, time_zone, purchase_time, update_time)
      select ${tenant}, 'ent-' || g, 'member-' || g, 1, 'ACTIVE', 10,
        '{"expiry":{"kind":"DAYS_FROM_PURCHASE","days":90},"grace":{"days":7},"reminderDays":[30,7,1],"customRule":null}'::jsonb,
        'Asia/Singapore', now(), now()
      from generate_series(1, 400) g`.execute(db);
    // As an expiry sweep does: every row of the tenant updated once, in one statement.
    const kept = await shareKeptOnTheirPages(db, 'entitlements', 'entitlement_id', sql<boolean>`tenant_id = ${tenant}`, () =>
      sql`update entitlements set version = version + 1, status = 'EXPIRED', remaining = 0, update_time = now() where tenant_id = ${tenant}`.execute(db),
    );
    // With full pages (the default fillfactor) none stayed; with a fifth of each page free, about a quarter.
    expect(kept).toBeGreaterThan(0.15);
  });
});
