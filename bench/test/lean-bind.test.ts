import { AsyncResource, executionAsyncId } from 'node:async_hooks';
import { promotedBy } from '@punchcard/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { hasDeprecatedAccessor, installLeanBind } from '../src/lean-bind.js';

const nodeBind = AsyncResource.prototype.bind;

/** What outlives two scavenges of binding 2,000 functions over 2,000 arrays nothing else keeps. */
const promotedByBinding = () =>
  promotedBy(() => {
    for (let i = 0; i < 2000; i++) {
      const payload = new Array<number>(200).fill(i);
      new AsyncResource('bench-test').bind(() => payload.length);
    }
  });

describe('the lean AsyncResource#bind', () => {
  afterEach(() => {
    AsyncResource.prototype.bind = nodeBind;
  });

  it('is installed only where Node still adds the asyncResource accessor', () => {
    const needed = hasDeprecatedAccessor();
    expect(installLeanBind()).toBe(needed);
    expect(hasDeprecatedAccessor()).toBe(false);
    expect(installLeanBind()).toBe(false);
  });

  it("runs the function in the resource's async scope, with the caller's or the given this, its arguments and its result", () => {
    installLeanBind();
    const resource = new AsyncResource('bench-test');
    function probe(this: unknown, a: number, b: number) {
      return { id: executionAsyncId(), self: this, sum: a + b };
    }
    const receiver = { name: 'receiver' };
    const bound = resource.bind(probe);
    expect(bound.length).toBe(2);
    expect(bound.call(receiver, 2, 3)).toEqual({ id: resource.asyncId(), self: receiver, sum: 5 });
    const fixed = { name: 'fixed' };
    const bindTo = resource.bind as unknown as (fn: typeof probe, thisArg: unknown) => typeof probe;
    expect(bindTo.call(resource, probe, fixed).call(receiver, 1, 1)).toEqual({ id: resource.asyncId(), self: fixed, sum: 2 });
    expect(() => resource.bind('not a function' as never)).toThrow(TypeError);
  });

  it('lets what a bound function refers to die young, where Node 20 kept it through the scavenges', () => {
    if (hasDeprecatedAccessor()) expect(promotedByBinding()).toBeGreaterThan(4_000_000);
    installLeanBind();
    expect(promotedByBinding()).toBeLessThan(1_000_000);
  });
});
