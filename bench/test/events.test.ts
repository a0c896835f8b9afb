import { performance } from 'node:perf_hooks';
import { declareStreams, withNamespace } from '@punchcard/bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnv, type BenchEnv } from '../src/env.js';
import { EventCounter, SubjectTally } from '../src/events.js';

let env: BenchEnv;
const subject = 'punchcard.revenue.recognized.tally-tenant';
const other = 'punchcard.revenue.journal_posted.tally-tenant';

async function publish(s: string, amount: number): Promise<void> {
  await env.bus.js.publish(withNamespace(env.namespace, s), new Uint8Array([amount]));
}

beforeAll(async () => {
  env = await createEnv('events_test', 0);
  await declareStreams(env.bus.jsm, { namespace: env.namespace });
  // Stored before the tally starts: not counted.
  await publish(subject, 1);
});

afterAll(async () => {
  await env?.close();
});

describe('SubjectTally', () => {
  it('counts what the stream stored on its subject since the start, with the first and last storage times', async () => {
    const tally = await SubjectTally.start(env, 'REVENUE', subject);
    expect(tally.count).toBe(0);
    const before = performance.now();
    await publish(other, 9);
    await publish(subject, 2);
    await publish(other, 9);
    await publish(subject, 3);
    await publish(subject, 4);
    const after = performance.now();

    expect(await tally.waitForCount(3, 5_000)).toBe(true);
    expect(tally.count).toBe(3);
    // The server stores milliseconds; its clock and this one may round apart by one.
    expect(tally.first).toBeGreaterThanOrEqual(before - 2);
    expect(tally.last).toBeLessThanOrEqual(after + 2);
    expect(tally.last).toBeGreaterThanOrEqual(tally.first!);

    // Reading from the sequence after the start finds the same three, and nothing of the other subject.
    const read = await EventCounter.start(env, 'REVENUE', subject, (d) => ({ amount: BigInt(d[0]!) }), tally.startSequence + 1);
    expect(await read.waitForCount(3, 5_000)).toBe(true);
    expect(read.count).toBe(3);
    expect(read.total).toBe(9n);
    await read.stop();
    await tally.stop();
  });

  it('gives up when nothing more is stored for the idle time, and says so', async () => {
    const tally = await SubjectTally.start(env, 'REVENUE', subject);
    await publish(subject, 5);
    expect(await tally.waitForCount(2, 600)).toBe(false);
    expect(tally.count).toBe(1);
    await tally.stop();
  });
});
