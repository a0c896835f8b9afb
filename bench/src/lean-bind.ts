import { AsyncResource } from 'node:async_hooks';

/**
 * Node 20's `AsyncResource#bind` gives every bound function an `asyncResource` accessor (DEP0172)
 * made with `util.deprecate`, which changes the prototype of a new function. On Node 20's V8 an
 * object whose prototype is changed after it was made outlives the scavenges, and with it all the
 * bound function refers to, until the next full collection. Node's HTTP/2 client binds one per
 * request (`ClientHttp2Session#request`), so every gRPC call the bench makes, its stream and its
 * decoded response, was promoted: the client's scavenges took 4–17 ms and it paused a full
 * collection every few seconds, stalling every call in flight. Later Node removed the accessor;
 * this gives the bench's process the same `bind`.
 */
export function hasDeprecatedAccessor(): boolean {
  return 'asyncResource' in new AsyncResource('lean-bind-probe').bind(() => undefined);
}

type Callable = (this: unknown, ...args: unknown[]) => unknown;

/** The bound function of Node's later `bind`: `fn` run in the resource's async scope, nothing more. */
function leanBind(this: AsyncResource, fn: Callable, thisArg?: unknown): Callable {
  if (typeof fn !== 'function') throw new TypeError('The "fn" argument must be of type function');
  const resource = this;
  const bound: Callable =
    thisArg === undefined
      ? function (this: unknown, ...args: unknown[]) {
          return resource.runInAsyncScope(fn, this, ...args);
        }
      : (...args: unknown[]) => resource.runInAsyncScope(fn, thisArg, ...args);
  Object.defineProperty(bound, 'length', { configurable: true, value: fn.length });
  return bound;
}

/** Replaces Node 20's `bind` where it still adds the accessor; says whether it did. */
export function installLeanBind(): boolean {
  if (!hasDeprecatedAccessor()) return false;
  AsyncResource.prototype.bind = leanBind as AsyncResource['bind'];
  return true;
}
