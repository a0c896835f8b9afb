import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Readiness } from './readiness.js';

describe('Readiness', () => {
  const unhandled: unknown[] = [];
  const record = (reason: unknown) => void unhandled.push(reason);
  beforeEach(() => {
    unhandled.length = 0;
    process.on('unhandledRejection', record);
  });
  afterEach(() => {
    process.off('unhandledRejection', record);
  });

  const serving = (timeoutMs: number, checks: Record<string, (signal: AbortSignal) => unknown>) => {
    const readiness = new Readiness(timeoutMs);
    readiness.setPhase('serving');
    readiness.setChecks(checks);
    return readiness;
  };
  const pastTimeout = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms * 3));

  it('is ready when every check answers, sync or async', async () => {
    const report = await serving(20, { sync: () => undefined, async: async () => 'pong' }).evaluate();
    expect(report).toEqual({ ready: true, phase: 'serving', checks: { sync: 'ok', async: 'ok' } });
    await pastTimeout(20);
    expect(unhandled).toEqual([]);
  });

  it('reports the message of a check that throws, and nothing rejects unhandled once its timeout passes', async () => {
    const report = await serving(20, {
      sync: () => {
        throw new Error('dependency is down');
      },
      async: async () => {
        throw new Error('dependency refused');
      },
    }).evaluate();
    expect(report).toEqual({ ready: false, phase: 'serving', checks: { sync: 'dependency is down', async: 'dependency refused' } });
    await pastTimeout(20);
    expect(unhandled).toEqual([]);
  });

  it('reports a check that does not answer in time, aborting its signal, and ignores a late failure', async () => {
    let aborted = false;
    const report = await serving(20, {
      slow: (signal) =>
        new Promise((_, reject) => {
          signal.addEventListener('abort', () => {
            aborted = true;
            setTimeout(() => reject(new Error('gave up')), 5);
          });
        }),
    }).evaluate();
    expect(report.checks).toEqual({ slow: 'no answer within 20 ms' });
    expect(report.ready).toBe(false);
    expect(aborted).toBe(true);
    await pastTimeout(20);
    expect(unhandled).toEqual([]);
  });

  it('is not ready outside the serving phase', async () => {
    const readiness = new Readiness(20);
    readiness.setChecks({ ok: () => undefined });
    expect(await readiness.evaluate()).toMatchObject({ ready: false, phase: 'starting' });
  });
});
