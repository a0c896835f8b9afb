import { timestampNow } from '@bufbuild/protobuf/wkt';
import { trace } from '@opentelemetry/api';
import { z } from 'zod';
import { callerOf, defineService, invalidArgument, requireRole } from '../src/index.js';
import { FailRequest_Kind, SampleService } from './gen/platformtest/v1/sample_pb.js';

export interface SampleHooks {
  /** Echo("hold") waits for this; it is cancelled by the RPC's signal (deadline or shutdown). */
  hold?: (signal: AbortSignal) => Promise<void>;
  /** Echo("hold") calls this once it is waiting, so tests know the RPC is in flight. */
  holding?: () => void;
  /** The readiness check of the sample's pretend dependency. */
  dependencyUp?: () => boolean;
}

/** A service built on the platform the way the real ones are, for the platform's own tests. */
export function sampleDefinition(hooks: SampleHooks = {}) {
  return defineService({
    name: 'platform-sample',
    defaultPorts: { api: 7199, ops: 7299 },
    env: z.object({ SAMPLE_GREETING: z.string().default('hello') }),
    setup(ctx) {
      const lifecycle: string[] = ['setup'];
      ctx.onClose(() => void lifecycle.push('closed'));
      return { lifecycle };
    },
    register(router, ctx) {
      router.service(SampleService, {
        async echo(req, handler) {
          const caller = callerOf(handler);
          if (req.text === 'hold') {
            hooks.holding?.();
            await hooks.hold?.(handler.signal);
          }
          return {
            text: `${ctx.config.env.SAMPLE_GREETING} ${req.text}`,
            tenantId: caller.tenantId,
            subject: caller.subject,
            roles: [...caller.roles],
            traceId: trace.getActiveSpan()?.spanContext().traceId ?? '',
            servedAt: timestampNow(),
          };
        },
        async fail(req, handler) {
          switch (req.kind) {
            case FailRequest_Kind.INVALID_ARGUMENT:
              throw invalidArgument('kind', 'must not be INVALID_ARGUMENT');
            case FailRequest_Kind.PERMISSION:
              requireRole(callerOf(handler), 'admin');
              return {};
            case FailRequest_Kind.UNEXPECTED:
              throw new Error('connect ECONNREFUSED 10.0.0.7:5432 (secret detail)');
            default:
              return {};
          }
        },
        async *ticks(req) {
          for (let n = 1; n <= req.count; n++) yield { n };
        },
      });
    },
    readiness: () => ({
      sample: () => {
        if (hooks.dependencyUp && !hooks.dependencyUp()) throw new Error('sample dependency is down');
      },
    }),
    start(ctx) {
      ctx.state.lifecycle.push('started');
      return () => void ctx.state.lifecycle.push('stopped');
    },
    async migrate(ctx) {
      ctx.logger.info({ schema: ctx.config.databaseSchema }, 'migrated');
    },
  });
}
