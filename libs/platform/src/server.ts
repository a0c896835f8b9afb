import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

// Every HTTP/2 prior-knowledge (h2c) connection starts with this; no HTTP/1.x request line can.
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const SNIFF_TIMEOUT_MS = 10_000;
// Bound on flushing the last responses once no request is in flight; reached only if a client stalls.
const FLUSH_TIMEOUT_MS = 5_000;

export interface ApiServer {
  port: number;
  /** Requests being served right now (each RPC is one request, streams included). */
  readonly inFlight: number;
  /** Stops accepting connections, asks HTTP/2 clients to go away (GOAWAY) and HTTP/1.1 ones to close. */
  stopAccepting(): void;
  /** Resolves when no request is in flight, or after `ms` with false. */
  drained(ms: number): Promise<boolean>;
  /** Lets connections flush their last responses and close, then destroys what is left. */
  close(): Promise<void>;
}

/**
 * One TCP port for HTTP/2 (gRPC, Connect, gRPC-Web over h2c) and HTTP/1.1 (Connect, gRPC-Web from
 * browsers and curl). Node's plain http2 server only speaks prior-knowledge HTTP/2, so each new
 * connection is sniffed for the HTTP/2 preface and handed to an http2 or an http1 server.
 */
export async function listenApi(handler: Handler, host: string, port: number): Promise<ApiServer> {
  let inFlight = 0;
  let stopping = false;
  const idleWaiters = new Set<() => void>();
  const track: Handler = (req, res) => {
    inFlight++;
    if (stopping && req.httpVersionMajor === 1) res.setHeader('connection', 'close');
    res.once('close', () => {
      inFlight--;
      if (inFlight === 0) for (const wake of idleWaiters) wake();
    });
    handler(req, res);
  };

  const h1 = http.createServer(track as http.RequestListener);
  const h2 = http2.createServer(track as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    if (stopping) session.close();
  });

  const sockets = new Map<net.Socket, 'sniffing' | 'http1' | 'http2'>();
  // Responses go out as several small writes (headers, message, trailers); with Nagle on, one can wait
  // for the ACK of the last, which a client may hold back up to 40 ms (delayed ACK).
  const tcp = net.createServer({ noDelay: true }, (socket) => {
    sockets.set(socket, 'sniffing');
    socket.once('close', () => sockets.delete(socket));
    sniff(socket, (protocol) => {
      sockets.set(socket, protocol);
      return protocol === 'http2' ? h2 : h1;
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, host, () => {
      tcp.off('error', reject);
      resolve();
    });
  });

  return {
    port: (tcp.address() as net.AddressInfo).port,
    get inFlight() {
      return inFlight;
    },
    stopAccepting() {
      stopping = true;
      tcp.close();
      for (const session of sessions) session.close();
      h1.closeIdleConnections();
    },
    drained(ms) {
      if (inFlight === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const finish = (drained: boolean) => {
          clearTimeout(timer);
          idleWaiters.delete(wake);
          resolve(drained);
        };
        const wake = () => finish(true);
        const timer = setTimeout(() => finish(false), ms);
        idleWaiters.add(wake);
      });
    },
    async close() {
      const closed: Promise<void>[] = [];
      for (const [socket, protocol] of sockets) {
        if (socket.destroyed) continue;
        if (protocol === 'sniffing') {
          socket.destroy();
          continue;
        }
        closed.push(new Promise((resolve) => socket.once('close', () => resolve())));
        // HTTP/2 sessions already sent GOAWAY and close by themselves once their last frames are out.
        if (protocol === 'http1') socket.end();
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(closed), new Promise((resolve) => (timer = setTimeout(resolve, FLUSH_TIMEOUT_MS)))]);
      clearTimeout(timer);
      for (const session of sessions) session.destroy();
      for (const socket of sockets.keys()) socket.destroy();
      await new Promise<void>((resolve) => (tcp.listening ? tcp.close(() => resolve()) : resolve()));
    },
  };
}

function sniff(socket: net.Socket, route: (protocol: 'http1' | 'http2') => http.Server | http2.Http2Server): void {
  let seen: Buffer = Buffer.alloc(0);
  socket.setTimeout(SNIFF_TIMEOUT_MS, () => socket.destroy());
  socket.on('error', () => socket.destroy());
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, PREFACE.length);
    const isHttp2 = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
    if (isHttp2 && seen.length < PREFACE.length) return;
    socket.off('data', onData);
    socket.setTimeout(0);
    socket.pause();
    if (isHttp2) {
      // The http2 session picks up bytes already buffered in the socket's readable state.
      socket.unshift(seen);
      route('http2').emit('connection', socket);
    } else {
      // The http1 parser reads the socket handle directly and would miss unshifted bytes,
      // so the first chunk is replayed as a data event once the server is attached.
      route('http1').emit('connection', socket);
      socket.emit('data', seen);
      socket.resume();
    }
  };
  socket.on('data', onData);
}
