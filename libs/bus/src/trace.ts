import { context, defaultTextMapGetter, defaultTextMapSetter, ROOT_CONTEXT, trace, type Context, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

// W3C TraceContext is the event contract, so it is used directly rather than whatever global
// propagator the process happens to register (none, in a library's tests).
const w3c = new W3CTraceContextPropagator();

/** `traceparent` (and `tracestate`) of a context, by default the active one; empty when there is no span. */
export function traceHeaders(ctx: Context = context.active()): Record<string, string> {
  const carrier: Record<string, string> = {};
  w3c.inject(ctx, carrier, defaultTextMapSetter);
  return carrier;
}

/** The remote parent carried by `traceparent`/`tracestate` headers (lower-case keys). */
export function contextFromHeaders(headers: Record<string, string>, base: Context = ROOT_CONTEXT): Context {
  return w3c.extract(base, headers, defaultTextMapGetter);
}

export function busTracer(): Tracer {
  return trace.getTracer('@punchcard/bus');
}
