import grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary, type DescMessage, type DescService, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';

type UnaryMethods<S extends DescService> = {
  [K in keyof S['method'] as S['method'][K] extends { methodKind: 'unary' } ? K : never]: S['method'][K];
};

type InputOf<M> = M extends { input: infer I extends DescMessage } ? MessageInitShape<I> : never;
type OutputOf<M> = M extends { output: infer O extends DescMessage } ? MessageShape<O> : never;

export interface GrpcJsClient<S extends DescService> {
  /** Calls a unary method over plain gRPC (HTTP/2, grpc-js); rejects with a grpc-js ServiceError. */
  call<K extends keyof UnaryMethods<S> & string>(
    method: K,
    request: InputOf<UnaryMethods<S>[K]>,
    options?: { token?: string; metadata?: Record<string, string> },
  ): Promise<OutputOf<UnaryMethods<S>[K]>>;
  close(): void;
}

/**
 * A gRPC client built on @grpc/grpc-js, independent of Connect, so tests see the server the way an
 * enterprise integrator's stock gRPC stack does. Messages are encoded with the generated schemas.
 */
export function grpcJsClient<S extends DescService>(service: S, address: string): GrpcJsClient<S> {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    if (method.methodKind !== 'unary') continue;
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (value: unknown) => Buffer.from(toBinary(method.input, create(method.input, value as never))),
      requestDeserialize: (bytes: Buffer) => fromBinary(method.input, bytes),
      responseSerialize: (value: unknown) => Buffer.from(toBinary(method.output, value as never)),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
    };
  }
  const Client = grpc.makeGenericClientConstructor(definition, service.typeName);
  const client = new Client(address.replace(/^https?:\/\//, ''), grpc.credentials.createInsecure()) as unknown as Record<
    string,
    (req: unknown, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void
  > & grpc.Client;
  return {
    call(method, request, options = {}) {
      const metadata = new grpc.Metadata();
      if (options.token) metadata.set('authorization', `Bearer ${options.token}`);
      for (const [k, v] of Object.entries(options.metadata ?? {})) metadata.set(k, v);
      const fn = client[method];
      if (typeof fn !== 'function') return Promise.reject(new Error(`${service.typeName} has no unary method ${method}`));
      return new Promise((resolve, reject) => {
        fn.call(client, request, metadata, (err, res) => (err ? reject(err) : resolve(res as never)));
      });
    },
    close: () => client.close(),
  };
}
