import type { Interceptor } from '@connectrpc/connect';
import { context, propagation, SpanKind, SpanStatusCode, trace, type TextMapSetter } from '@opentelemetry/api';

const headerSetter: TextMapSetter<Headers> = { set: (headers, key, value) => headers.set(key, value) };

/**
 * For Connect clients one service uses to call another: a client span per call, and the W3C
 * traceparent in the request headers, so the callee's server span joins the caller's trace
 * (a timer firing in the scheduler and the ledger's Expire are then one trace).
 */
export function traceContextInterceptor(): Interceptor {
  return (next) => (req) =>
    trace.getTracer('@punchcard/platform').startActiveSpan(
      `${req.service.typeName}/${req.method.name}`,
      { kind: SpanKind.CLIENT, attributes: { 'rpc.system': 'grpc', 'rpc.service': req.service.typeName, 'rpc.method': req.method.name } },
      async (span) => {
        propagation.inject(context.active(), req.header, headerSetter);
        try {
          return await next(req);
        } catch (err) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
          throw err;
        } finally {
          span.end();
        }
      },
    );
}
