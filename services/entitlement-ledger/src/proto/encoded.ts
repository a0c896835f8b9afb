import { create, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { LedgerEntryRecordedSchema } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import type { EntitlementRecord, EntryRecord } from '../store/entitlements.js';
import { entitlementToProtoStoredTerms, entryToProto } from './mapping.js';

/**
 * `{ entitlement, entry }` encoded once: the answer of a movement RPC (ExpireResponse,
 * EnterGraceResponse …) and, when there is an entry, the payload of its LedgerEntryRecorded event,
 * which have the same fields. The definition terms are the stored bytes (see entitlementToProtoStoredTerms).
 */
export function encodeMovement(r: { entitlement: EntitlementRecord; entry?: EntryRecord | undefined }): Uint8Array {
  return toBinary(
    LedgerEntryRecordedSchema,
    create(LedgerEntryRecordedSchema, { entitlement: entitlementToProtoStoredTerms(r.entitlement), ...(r.entry ? { entry: entryToProto(r.entry) } : {}) }),
  );
}

/**
 * A message of `schema` whose field `no` (a message field) holds an already encoded message, kept as
 * an unknown field: written verbatim when the message is encoded, so it is not built and encoded
 * again. Only for messages that are encoded, not read.
 */
export function withEncodedField<S extends DescMessage>(schema: S, no: number, encoded: Uint8Array): MessageShape<S> {
  const message = create(schema);
  message.$unknown = [{ no, wireType: WireType.LengthDelimited, data: new BinaryWriter().bytes(encoded).finish() }];
  return message;
}

/**
 * A message of `schema` made of already encoded bytes of it: each field is kept as an unknown field,
 * so encoding the message writes the bytes as they are. Only for messages that are encoded, not read.
 */
export function encodedMessage<S extends DescMessage>(schema: S, encoded: Uint8Array): MessageShape<S> {
  const message = create(schema);
  const reader = new BinaryReader(encoded);
  const fields: NonNullable<MessageShape<S>['$unknown']> = [];
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    fields.push({ no, wireType, data: reader.skip(wireType, no) });
  }
  message.$unknown = fields;
  return message;
}

/**
 * The answer `encodeMovement` made (or a stored one, whatever its fields' order) without its
 * entitlement: its entry only, taken from the bytes as they are.
 */
export function withoutEntitlement(encoded: Uint8Array): Uint8Array {
  const entryField = LedgerEntryRecordedSchema.field.entry.number;
  const reader = new BinaryReader(encoded);
  const writer = new BinaryWriter();
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (no === entryField) writer.tag(no, WireType.LengthDelimited).bytes(reader.bytes());
    else reader.skip(wireType, no);
  }
  return writer.finish();
}
