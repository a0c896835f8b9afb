import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, readStream, testNamespace, testNats, type TestDatabase } from '../src/index.js';

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

  it('reads what a stream holds, all of it or on a filter, and leaves no consumer behind', async () => {
    const nc = await connect({ servers: await testNats() });
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const ns = testNamespace('read');
    const stream = `${ns}_S`;
    await jsm.streams.add({ name: stream, subjects: [`${ns}.>`] });
    try {
      expect(await readStream(nc, stream)).toEqual([]);
      for (let i = 0; i < 5; i++) await js.publish(`${ns}.${i % 2 ? 'odd' : 'even'}`, `m${i}`);
      expect((await readStream(nc, stream)).map((m) => m.string())).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
      expect((await readStream(nc, stream, `${ns}.odd`)).map((m) => [m.subject, m.string()])).toEqual([
        [`${ns}.odd`, 'm1'],
        [`${ns}.odd`, 'm3'],
      ]);
      expect((await jsm.streams.info(stream)).state.consumer_count).toBe(0);
    } finally {
      await jsm.streams.delete(stream);
      await nc.close();
    }
  });
});
