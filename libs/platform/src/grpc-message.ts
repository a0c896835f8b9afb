import type http from 'node:http';
import type http2 from 'node:http2';

type Response = http.ServerResponse | http2.Http2ServerResponse;
type HeaderBag = Record<string, unknown>;

/**
 * Connect writes `grpc-message` with encodeURIComponent, but @grpc/grpc-js (and other stock gRPC
 * stacks) read it with decodeURI, which leaves `%3A`, `%2C`, `%2F` … undecoded: "kind%3A must …".
 * The gRPC spec percent-encodes only bytes outside printable ASCII and `%` itself, which every
 * decoder reads back alike. So gRPC responses get their `grpc-message` re-spelled that way.
 */
export function respellGrpcMessage(contentType: string | undefined, res: Response): void {
  if (!contentType?.startsWith('application/grpc') || contentType.startsWith('application/grpc-web')) return;
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => Response;
  const addTrailers = res.addTrailers.bind(res) as (headers: HeaderBag) => void;
  (res as { writeHead: unknown }).writeHead = (...args: unknown[]) => {
    const headers = args.find((a): a is HeaderBag => typeof a === 'object' && a !== null && !Array.isArray(a));
    if (headers) respell(headers);
    return writeHead(...args);
  };
  (res as { addTrailers: unknown }).addTrailers = (headers: HeaderBag) => {
    respell(headers);
    addTrailers(headers);
  };
}

function respell(headers: HeaderBag): void {
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (name.toLowerCase() === 'grpc-message' && typeof value === 'string') headers[name] = specEncode(safeDecode(value));
  }
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** Percent-encodes the UTF-8 bytes outside 0x20-0x7E, and `%`, as the gRPC HTTP/2 spec says. */
export function specEncode(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
