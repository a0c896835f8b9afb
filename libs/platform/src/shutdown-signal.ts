type AbortListener = (this: AbortSignal, event: Event) => void;

/**
 * The server's shutdown signal, for connect's `shutdownSignal` option, which links every RPC's
 * signal to it: a listener added as the call starts and removed as it ends. Node 20's EventTarget
 * leaves a removed listener linked to the one added after it, so once a removed listener reached the
 * old generation it kept the next RPC, and that one the next, through every scavenge until a full
 * collection (a do-nothing method with 50 calls in flight: 12 KB promoted per call). A Set did much
 * the same: once its hash table had reached the old generation, nearly every listener that passed
 * through it afterwards outlived the scavenges, kept by the tables its growth and rebuilding left
 * behind (see TransientMap in @punchcard/bus). This signal keeps its listeners in an array, a
 * removed one's slot taken by the last, and aborts when `source` does, with its reason, calling
 * each with itself as `this`, as an AbortSignal would.
 *
 * It has what connect's `createLinkedAbortController` uses of a signal (`aborted`, `reason`, adding
 * and removing an "abort" listener) and nothing else, so it is for that option only. The RPC's own
 * signal stays connect's real one. Before, an interceptor gave each RPC an AbortController of its
 * own to the same end; on Node 20 every AbortSignal is made with Object.setPrototypeOf and gets three
 * hidden classes of its own, in the old generation (bench/JOURNAL.md, 7 December from 09:10).
 */
export function shutdownSignal(source: AbortSignal): AbortSignal {
  const listeners: AbortListener[] = [];
  const signal = {
    get aborted() {
      return source.aborted;
    },
    get reason(): unknown {
      return source.reason;
    },
    addEventListener(type: string, listener: AbortListener) {
      if (type === 'abort' && !source.aborted && !listeners.includes(listener)) listeners.push(listener);
    },
    removeEventListener(type: string, listener: AbortListener) {
      if (type !== 'abort') return;
      const i = listeners.lastIndexOf(listener);
      if (i < 0) return;
      listeners[i] = listeners[listeners.length - 1]!;
      listeners.pop();
    },
  };
  source.addEventListener(
    'abort',
    (event) => {
      for (const listener of listeners.splice(0)) listener.call(signal as unknown as AbortSignal, event);
    },
    { once: true },
  );
  return signal as unknown as AbortSignal;
}
