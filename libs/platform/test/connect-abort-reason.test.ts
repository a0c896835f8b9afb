import { EventEmitter } from 'node:events';
import { universalRequestFromNodeRequest } from '@connectrpc/connect-node';
import { describe, expect, it } from 'vitest';
import { sampleHandlerContext as handlerContext } from './helpers.js';

/*
 * The patches to connect and connect-node give a call's signal one shared AbortError when the call
 * ends without a reason of its own (its answer done, or its stream closed), where each call built a
 * DOMException with a stack trace: two per call, 3 % of a busy ledger's time.
 */

/** An HTTP/2 request as connect-node reads it, closed without an error code. */
function closedHttp2Request() {
  const node = Object.assign(new EventEmitter(), {
    socket: {},
    authority: 'localhost',
    url: '/x',
    method: 'POST',
    headers: {},
    httpVersion: '2.0',
    stream: { rstCode: 0 },
  });
  const request = universalRequestFromNodeRequest(node as never, undefined, undefined);
  node.emit('close');
  return request;
}

describe('the reason a call ends with', () => {
  it('is an AbortError when the handler context ends without a reason, the same for every call', () => {
    const [a, b] = [handlerContext(), handlerContext()];
    a.abort();
    b.abort();
    expect(a.signal.reason).toBeInstanceOf(DOMException);
    expect((a.signal.reason as DOMException).name).toBe('AbortError');
    expect(b.signal.reason).toBe(a.signal.reason);
  });

  it('keeps a reason given', () => {
    const ctx = handlerContext();
    const reason = new Error('deadline');
    ctx.abort(reason);
    expect(ctx.signal.reason).toBe(reason);
  });

  it('is an AbortError when an HTTP/2 request closes cleanly, the same for every request', () => {
    const [a, b] = [closedHttp2Request(), closedHttp2Request()];
    expect(a.signal.aborted).toBe(true);
    expect((a.signal.reason as DOMException).name).toBe('AbortError');
    expect(b.signal.reason).toBe(a.signal.reason);
  });
});
