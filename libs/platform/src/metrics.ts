import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** RPC metrics with the label names of go-grpc-prometheus, so stock gRPC dashboards work. */
export interface RpcMetrics {
  registry: Registry;
  started: Counter<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  handled: Counter<'grpc_type' | 'grpc_service' | 'grpc_method' | 'grpc_code'>;
  handlingSeconds: Histogram<'grpc_type' | 'grpc_service' | 'grpc_method' | 'grpc_code'>;
  inFlight: Gauge<'grpc_service' | 'grpc_method'>;
}

/** A registry per service (not prom-client's global one), labelled with the service name. */
export function createMetrics(serviceName: string): RpcMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service: serviceName });
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    started: new Counter({
      name: 'grpc_server_started_total',
      help: 'RPCs started on the server, by method.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method'],
      registers,
    }),
    handled: new Counter({
      name: 'grpc_server_handled_total',
      help: 'RPCs completed on the server, by method and status code.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code'],
      registers,
    }),
    handlingSeconds: new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'Time from the start of an RPC to its completion, by method and status code.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    inFlight: new Gauge({
      name: 'grpc_server_in_flight',
      help: 'RPCs currently being handled, by method.',
      labelNames: ['grpc_service', 'grpc_method'],
      registers,
    }),
  };
}
