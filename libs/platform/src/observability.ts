import { performance } from 'node:perf_hooks';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { context, INVALID_SPAN_CONTEXT, propagation, SpanKind, SpanStatusCode, trace, type Context, type TextMapGetter, type Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { internalError } from './errors.js';
import type { RpcMetrics } from './metrics.js';

const headerGetter: TextMapGetter<Headers> = {
  get: (headers, key) => headers.get(key) ?? undefined,
  keys: (headers) => [...headers.keys()],
};

// gRPC semantic conventions: only these codes mean the server failed; the rest are the caller's.
const serverFaults = new Set([Code.Unknown, Code.DeadlineExceeded, Code.Unimplemented, Code.Internal, Code.Unavailable, Code.DataLoss]);

const grpcTypes = {
  unary: 'unary',
  server_streaming: 'server_stream',
  client_streaming: 'client_stream',
  bidi_streaming: 'bidi_stream',
} as const;

function protocolOf(contentType: string | null): 'grpc' | 'grpc-web' | 'connect' {
  if (contentType?.startsWith('application/grpc-web')) return 'grpc-web';
  if (contentType?.startsWith('application/grpc')) return 'grpc';
  return 'connect';
}

/**
 * The outermost interceptor: a server span per RPC (child of the caller's traceparent), RPC
 * metrics by method and code, and the boundary where an unexpected error becomes Internal, logged
 * with its stack and trace id while the client sees only the trace id.
 */
export function observabilityInterceptor(deps: {
  tracer: Tracer;
  metrics: RpcMetrics;
  logger: Logger;
  /** Counted but not traced: probes would bury real traces. */
  untracedServices?: ReadonlySet<string>;
}): Interceptor {
  const { tracer, metrics, logger, untracedServices } = deps;
  return (next) => async (req) => {
    const service = req.service.typeName;
    const method = req.method.name;
    const type = grpcTypes[req.method.methodKind];
    const protocol = protocolOf(req.header.get('content-type'));
    const parent = propagation.extract(context.active(), req.header, headerGetter);
    const attributes = {
      'rpc.system': protocol === 'connect' ? 'connect_rpc' : 'grpc',
      'rpc.service': service,
      'rpc.method': method,
      'punchcard.rpc.protocol': protocol,
    };
    const span = untracedServices?.has(service)
      ? trace.wrapSpanContext(INVALID_SPAN_CONTEXT)
      : tracer.startSpan(`${service}/${method}`, { kind: SpanKind.SERVER, attributes }, parent);
    const spanContext = trace.setSpan(parent, span);
    const startedAt = performance.now();
    metrics.started.inc({ grpc_type: type, grpc_service: service, grpc_method: method });
    metrics.inFlight.inc({ grpc_service: service, grpc_method: method });

    let done = false;
    const complete = (error?: ConnectError, logged = false): void => {
      if (done) return;
      done = true;
      const code = error?.code ?? 0;
      const codeName = error ? Code[error.code] : 'OK';
      const labels = { grpc_type: type, grpc_service: service, grpc_method: method, grpc_code: codeName };
      metrics.handled.inc(labels);
      metrics.handlingSeconds.observe(labels, (performance.now() - startedAt) / 1000);
      metrics.inFlight.dec({ grpc_service: service, grpc_method: method });
      span.setAttribute('rpc.grpc.status_code', code);
      if (error && serverFaults.has(error.code)) span.setStatus({ code: SpanStatusCode.ERROR, message: error.rawMessage });
      context.with(spanContext, () => {
        if (error && serverFaults.has(error.code) && !logged) logger.error({ rpc: `${service}/${method}`, code: codeName, err: error }, 'rpc failed');
        else logger.debug({ rpc: `${service}/${method}`, code: codeName, protocol }, 'rpc completed');
      });
      span.end();
    };
    const fail = (err: unknown): ConnectError => {
      if (err instanceof ConnectError) {
        complete(err);
        return err;
      }
      span.recordException(err instanceof Error ? err : String(err));
      context.with(spanContext, () => logger.error({ rpc: `${service}/${method}`, err }, 'unexpected error, answered Internal'));
      const internal = internalError(span.isRecording() ? span.spanContext().traceId : undefined);
      complete(internal, true);
      return internal;
    };

    try {
      const res = await context.with(spanContext, () => next(req));
      if (!res.stream) {
        complete();
        return res;
      }
      return { ...res, message: instrumentStream(res.message, spanContext, complete, fail) };
    } catch (err) {
      throw fail(err);
    }
  };
}

/** Runs a response stream inside the RPC's span context and completes the span when it ends. */
function instrumentStream<T>(
  source: AsyncIterable<T>,
  spanContext: Context,
  complete: (error?: ConnectError) => void,
  fail: (err: unknown) => ConnectError,
): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = context.with(spanContext, () => source[Symbol.asyncIterator]());
      return {
        async next() {
          try {
            const result = await context.with(spanContext, () => it.next());
            if (result.done) complete();
            return result;
          } catch (err) {
            throw fail(err);
          }
        },
        async return(value?: unknown) {
          // Stopped before the end: the client went away or the server is shutting down.
          complete(new ConnectError('stream closed before completion', Code.Canceled));
          return (await it.return?.(value)) ?? { done: true as const, value: value as T };
        },
        async throw(err?: unknown) {
          const error = fail(err);
          if (it.throw) return it.throw(error);
          throw error;
        },
      };
    },
  };
}
