import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testNamespace, testNats, type TestDatabase } from '../src/index.js';

describe('test infrastructure', () => {
  const dbs: TestDatabase[] = [];
  afterAll(async () => { for (const db of dbs) await db.drop(); });

  it('gives each caller its own empty database on a real Postgres', async () => {
    const a = await createTestDatabase('infra');
    const b = await createTestDatabase('infra');
    dbs.push(a, b);
    expect(a.name).not.toBe(b.name);
    const client = new pg.Client({ connectionString: a.url });
    await client.connect();
    const { rows } = await client.query<{ db: string }>('select current_database() as db');
    await client.end();
    expect(rows[0]?.db).toBe(a.name);
  });

  it('reaches a real NATS server with JetStream enabled', async () => {
    const nc = await connect({ servers: await testNats() });
    const jsm = await jetstreamManager(nc);
    const ns = testNamespace('infra');
    await jsm.streams.add({ name: `${ns}_S`, subjects: [`${ns}.>`] });
    const info = await jsm.streams.info(`${ns}_S`);
    expect(info.config.subjects).toEqual([`${ns}.>`]);
    await jsm.streams.delete(`${ns}_S`);
    await nc.close();
    expect(testNamespace()).not.toBe(testNamespace());
  });
});
