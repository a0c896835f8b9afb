import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import { Health, HealthCheckResponse_ServingStatus as Status } from '@punchcard/contracts/grpc/health/v1/health_pb';
import type { Readiness } from './readiness.js';

/**
 * grpc.health.v1.Health over the process readiness: SERVING when started, not draining and every
 * readiness check passes. "" is the whole server; each served service reports the same status.
 * Watch re-evaluates every `watchIntervalMs` and at once on start/drain, and ends after reporting
 * NOT_SERVING for a drain so shutdown is not held up by watchers.
 */
export function healthService(
  readiness: Readiness,
  services: () => ReadonlySet<string>,
  watchIntervalMs = 5000,
): Partial<ServiceImpl<typeof Health>> {
  const known = (service: string) => service === '' || services().has(service);
  const current = async () => ((await readiness.evaluate()).ready ? Status.SERVING : Status.NOT_SERVING);

  return {
    async check({ service }) {
      if (!known(service)) throw new ConnectError(`service ${JSON.stringify(service)} is not served here`, Code.NotFound);
      return { status: await current() };
    },

    async list() {
      const status = await current();
      const statuses: Record<string, { status: Status }> = { '': { status } };
      for (const name of services()) statuses[name] = { status };
      return { statuses };
    },

    async *watch({ service }, ctx) {
      let last: Status | undefined;
      let wake: (() => void) | undefined;
      const unsubscribe = readiness.onPhase(() => wake?.());
      const onAbort = () => wake?.();
      ctx.signal.addEventListener('abort', onAbort);
      try {
        while (!ctx.signal.aborted) {
          const status = known(service) ? await current() : Status.SERVICE_UNKNOWN;
          if (status !== last) {
            last = status;
            yield { status };
          }
          if (readiness.phase === 'draining') return;
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, watchIntervalMs);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
        }
      } finally {
        unsubscribe();
        ctx.signal.removeEventListener('abort', onAbort);
      }
    },
  };
}
