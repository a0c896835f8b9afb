import { RequestError, TimeoutError } from '@nats-io/nats-core';
import { testNats, testNamespace } from '@punchcard/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, type Bus } from '../src/index.js';

/**
 * The patched request path of @nats-io/nats-core (patches/): a successful request, as every JetStream
 * publish is, builds no RequestError, while failed requests still reject as before.
 */
describe('NATS requests (patched nats-core)', () => {
  let bus: Bus;
  const subject = `${testNamespace('requests')}.echo`;

  beforeAll(async () => {
    bus = await connectBus({ url: await testNats(), name: 'bus-test-requests' });
    bus.nc.subscribe(subject, { callback: (_err, msg) => void msg.respond(msg.data) });
    bus.nc.subscribe(`${subject}.silent`, { callback: () => undefined });
    await bus.nc.flush();
  });
  afterAll(() => bus.close());

  /** Counts RequestErrors built while `work` runs: the constructor assigns `name`, which a setter sees. */
  async function requestErrorsBuilt(work: () => Promise<unknown>): Promise<number> {
    let built = 0;
    Object.defineProperty(RequestError.prototype, 'name', {
      configurable: true,
      set(this: Error, value: string) {
        built++;
        Object.defineProperty(this, 'name', { value, writable: true, configurable: true });
      },
    });
    try {
      await work();
    } finally {
      delete (RequestError.prototype as { name?: string }).name;
    }
    return built;
  }

  it('answers requests without building an error for each', async () => {
    let answers: string[] = [];
    const built = await requestErrorsBuilt(async () => {
      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => bus.nc.request(subject, `ping ${i}`, { timeout: 2000 })));
      answers = replies.map((m) => m.string());
    });
    expect(answers).toEqual(Array.from({ length: 20 }, (_, i) => `ping ${i}`));
    expect(built).toBe(0);
  });

  it('still rejects a request nobody answers in time, and one nobody listens to', async () => {
    await expect(bus.nc.request(`${subject}.silent`, 'x', { timeout: 100 })).rejects.toBeInstanceOf(TimeoutError);
    await expect(bus.nc.request(`${subject}.nobody`, 'x', { timeout: 2000 })).rejects.toSatisfy((err: unknown) => err instanceof RequestError && err.isNoResponders());
    // The connection still answers afterwards: the failed requests left nothing behind in its muxer.
    expect((await bus.nc.request(subject, 'after', { timeout: 2000 })).string()).toBe('after');
  });
});
