import { create, createRegistry, fromBinary, toBinary, type DescFile, type DescService, type MessageInitShape, type Registry } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { Code, type ServiceImpl } from '@connectrpc/connect';
import {
  ServerReflection,
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
} from '@punchcard/contracts/grpc/reflection/v1/reflection_pb';
import * as v1alpha from '@punchcard/contracts/grpc/reflection/v1alpha/reflection_pb';

type Response = MessageInitShape<typeof ServerReflectionResponseSchema>;

/**
 * The protobuf-es descriptors of the served services, indexed for reflection: every file that
 * declares one, and their imports, transitively.
 */
export class ReflectionIndex {
  readonly services: readonly string[];
  readonly #files = new Map<string, DescFile>();
  readonly #registry: Registry;

  constructor(services: Iterable<DescService>) {
    const names = new Set<string>();
    for (const service of services) {
      names.add(service.typeName);
      this.#addFile(service.file);
    }
    this.services = [...names].sort();
    this.#registry = createRegistry(...this.#files.values());
  }

  #addFile(file: DescFile): void {
    if (this.#files.has(file.proto.name)) return;
    this.#files.set(file.proto.name, file);
    for (const dep of file.dependencies) this.#addFile(dep);
  }

  fileByName(name: string): DescFile | undefined {
    return this.#files.get(name);
  }

  /** The file declaring a message, enum, service, extension, or a method / field of one. */
  fileContainingSymbol(symbol: string): DescFile | undefined {
    const type = this.#registry.get(symbol);
    if (type) return type.file;
    const dot = symbol.lastIndexOf('.');
    if (dot < 0) return undefined;
    const parent = this.#registry.get(symbol.slice(0, dot));
    const member = symbol.slice(dot + 1);
    if (parent?.kind === 'service' && parent.methods.some((m) => m.name === member)) return parent.file;
    if (parent?.kind === 'message' && (parent.fields.some((f) => f.name === member) || parent.oneofs.some((o) => o.name === member))) {
      return parent.file;
    }
    return undefined;
  }

  extensionsOf(typeName: string): { file: DescFile; number: number }[] | undefined {
    if (this.#registry.get(typeName)?.kind !== 'message') return undefined;
    const found: { file: DescFile; number: number }[] = [];
    for (const type of this.#registry) {
      if (type.kind === 'extension' && type.extendee.typeName === typeName) found.push({ file: type.file, number: type.number });
    }
    return found;
  }
}

/** Serialized FileDescriptorProtos: the file itself, then its imports not yet sent on this stream. */
function withDependencies(file: DescFile, sent: Set<string>): Uint8Array[] {
  const out: Uint8Array[] = [];
  const visit = (f: DescFile, requested: boolean) => {
    if (!requested && sent.has(f.proto.name)) return;
    sent.add(f.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    for (const dep of f.dependencies) visit(dep, false);
  };
  visit(file, true);
  return out;
}

function answer(index: ReflectionIndex, req: ServerReflectionRequest, sent: Set<string>): Response {
  const base = { validHost: req.host, originalRequest: req };
  const error = (code: Code, message: string): Response => ({
    ...base,
    messageResponse: { case: 'errorResponse', value: { errorCode: code, errorMessage: message } },
  });
  const files = (file: DescFile | undefined, what: string): Response =>
    file
      ? { ...base, messageResponse: { case: 'fileDescriptorResponse', value: { fileDescriptorProto: withDependencies(file, sent) } } }
      : error(Code.NotFound, `${what} not found`);

  const request = req.messageRequest;
  switch (request.case) {
    case 'listServices':
      return {
        ...base,
        messageResponse: { case: 'listServicesResponse', value: { service: index.services.map((name) => ({ name })) } },
      };
    case 'fileByFilename':
      return files(index.fileByName(request.value), `file ${JSON.stringify(request.value)}`);
    case 'fileContainingSymbol':
      return files(index.fileContainingSymbol(request.value), `symbol ${JSON.stringify(request.value)}`);
    case 'fileContainingExtension': {
      const { containingType, extensionNumber } = request.value;
      const ext = index.extensionsOf(containingType)?.find((e) => e.number === extensionNumber);
      return files(ext?.file, `extension ${extensionNumber} of ${JSON.stringify(containingType)}`);
    }
    case 'allExtensionNumbersOfType': {
      const exts = index.extensionsOf(request.value);
      if (!exts) return error(Code.NotFound, `type ${JSON.stringify(request.value)} not found`);
      return {
        ...base,
        messageResponse: {
          case: 'allExtensionNumbersResponse',
          value: { baseTypeName: request.value, extensionNumber: exts.map((e) => e.number) },
        },
      };
    }
    default:
      return error(Code.InvalidArgument, 'message_request: one of list_services, file_by_filename, file_containing_symbol, file_containing_extension, all_extension_numbers_of_type is required');
  }
}

/** grpc.reflection.v1.ServerReflection. */
export function reflectionService(index: () => ReflectionIndex): ServiceImpl<typeof ServerReflection> {
  return {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) yield answer(index(), req, sent);
    },
  };
}

/** grpc.reflection.v1alpha.ServerReflection: the same messages on the wire, so it converts through bytes. */
export function reflectionServiceV1alpha(index: () => ReflectionIndex): ServiceImpl<typeof v1alpha.ServerReflection> {
  return {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const alpha of requests) {
        const req = fromBinary(ServerReflectionRequestSchema, toBinary(v1alpha.ServerReflectionRequestSchema, alpha));
        const res = create(ServerReflectionResponseSchema, answer(index(), req, sent));
        yield fromBinary(v1alpha.ServerReflectionResponseSchema, toBinary(ServerReflectionResponseSchema, res));
      }
    },
  };
}
