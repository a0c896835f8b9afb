import http from 'node:http';
import type net from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Readiness } from './readiness.js';

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * The operations port, apart from the API so it is never exposed through the API's ingress:
 * `/healthz` answers while the process runs (liveness), `/readyz` runs the readiness checks and
 * says 503 while starting or draining, `/metrics` is Prometheus text.
 */
export async function listenOps(deps: { readiness: Readiness; registry: Registry; logger: Logger }, host: string, port: number): Promise<OpsServer> {
  const { readiness, registry, logger } = deps;
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://ops').pathname;
    const reply = (status: number, contentType: string, body: string) => {
      res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'text/plain', 'method not allowed\n');
    switch (path) {
      case '/healthz':
        return reply(200, 'application/json', JSON.stringify({ status: 'ok' }));
      case '/readyz':
        return void readiness.evaluate().then((report) => {
          const status = report.ready ? 'ready' : report.phase === 'serving' ? 'not ready' : report.phase;
          if (!report.ready && report.phase === 'serving') logger.warn({ checks: report.checks }, 'readiness check failed');
          reply(report.ready ? 200 : 503, 'application/json', JSON.stringify({ status, checks: report.checks }));
        });
      case '/metrics':
        return void registry.metrics().then(
          (text) => reply(200, registry.contentType, text),
          (err: unknown) => {
            logger.error({ err }, 'collecting metrics failed');
            reply(500, 'text/plain', 'collecting metrics failed\n');
          },
        );
      default:
        return reply(404, 'text/plain', 'not found: try /healthz, /readyz or /metrics\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
