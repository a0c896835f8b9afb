import { Code, ConnectError } from '@connectrpc/connect';
import { findTrailerError, setTrailerStatus } from '@connectrpc/connect/protocol-grpc';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

/*
 * patches/@connectrpc__connect@2.1.2.patch spells grpc-message as the gRPC HTTP/2 spec says (only
 * bytes outside printable ASCII, and "%"), where connect used encodeURIComponent, which grpc-js
 * reads with decodeURI and leaves "%3A", "%2C" … in the message. The server used to re-spell it by
 * wrapping every response's writeHead and addTrailers; that wrapping kept each request's response
 * through V8's scavenges, so the spelling moved to where the trailer is written.
 */
function grpcMessageOf(message: string): string {
  const trailer = new Headers();
  setTrailerStatus(trailer, new ConnectError(message, Code.InvalidArgument));
  return trailer.get('grpc-message') ?? '';
}

describe('grpc-message, as the patched connect writes it', () => {
  it('leaves printable ASCII alone but for %, and encodes the rest as UTF-8 bytes', () => {
    expect(grpcMessageOf('terms.price: must be ≥ 0, 100%')).toBe('terms.price: must be %E2%89%A5 0, 100%25');
  });

  it('encodes a space at either end, which a header value may not begin or end with', () => {
    expect(grpcMessageOf(' padded ')).toBe('%20padded%20');
    expect(grpcMessageOf(' ')).toBe('%20');
  });

  it('reads back unchanged with decodeURI (grpc-js) and with connect itself', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'grapheme' }), fc.string({ unit: fc.constantFrom(' ', 'a', ':', '%', '\t', 'é') })), (message) => {
        const spelled = grpcMessageOf(message);
        expect(decodeURI(spelled)).toBe(message);
        const trailer = new Headers({ 'grpc-status': String(Code.InvalidArgument), 'grpc-message': spelled });
        expect(findTrailerError(trailer)?.rawMessage).toBe(message);
      }),
    );
  });
});
