import { context, propagation, trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

export interface Tracing {
  tracer: Tracer;
  /** Flushes pending spans and releases the global registration if this service holds it. */
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  serviceName: string;
  otlpEndpoint?: string;
  /** Extra exporter, e.g. an InMemorySpanExporter in tests; exported synchronously per span. */
  spanExporter?: SpanExporter;
}

let contextInstalled = false;

/**
 * A tracer provider for one service. The context manager and W3C propagator are installed
 * process-wide once, so `context.active()`, log correlation and traceparent propagation (bus
 * outbox, outgoing calls) work. The provider becomes the global one only if none is registered,
 * which lets several services run in one test process, each with its own exporter.
 */
export function createTracing(options: TracingOptions): Tracing {
  installContext();
  const spanProcessors: SpanProcessor[] = [];
  if (options.otlpEndpoint) {
    const url = `${options.otlpEndpoint.replace(/\/+$/, '')}/v1/traces`;
    spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url })));
  }
  if (options.spanExporter) spanProcessors.push(new SimpleSpanProcessor(options.spanExporter));
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.serviceName }),
    spanProcessors,
  });
  const global = trace.setGlobalTracerProvider(provider);
  return {
    tracer: provider.getTracer(options.serviceName),
    async shutdown() {
      if (global) trace.disable();
      await provider.shutdown();
    },
  };
}

function installContext(): void {
  if (contextInstalled) return;
  contextInstalled = true;
  // Both return false when something else (an OTel auto-instrumentation preload) installed them first.
  const manager = new AsyncLocalStorageContextManager().enable();
  if (!context.setGlobalContextManager(manager)) manager.disable();
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
}
