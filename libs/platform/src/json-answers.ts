import { fromBinary, toBinary } from '@bufbuild/protobuf';
import type { Interceptor } from '@connectrpc/connect';

/**
 * A handler may answer with fields it holds already encoded, kept as unknown fields so that the
 * binary format writes their bytes as they are (the ledger's movements: one encode for the answer,
 * the stored idempotent response and the event). JSON has no place for unknown fields, so an answer
 * to a client speaking JSON is read back through its binary form first, which makes them known.
 */
export function jsonAnswersInterceptor(): Interceptor {
  return (next) => async (req) => {
    const res = await next(req);
    if (res.stream || !speaksJson(req.header.get('content-type'), req.url, req.requestMethod)) return res;
    return { ...res, message: fromBinary(req.method.output, toBinary(req.method.output, res.message)) };
  };
}

/** Connect (`application/json`, or a GET with `encoding=json`), gRPC and gRPC-Web each have a `+json` form. */
function speaksJson(contentType: string | null, url: string, method: string): boolean {
  if (contentType) return /^application\/(?:json|[\w-]+\+json)\b/.test(contentType);
  return method === 'GET' && new URL(url).searchParams.get('encoding') === 'json';
}
