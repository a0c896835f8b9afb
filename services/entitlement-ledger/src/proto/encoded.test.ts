import { create, equals, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { ConsumeResponseSchema, EntryKind } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { describe, expect, it } from 'vitest';
import { encodedMessage } from './encoded.js';

describe('encodedMessage', () => {
  const answer = create(ConsumeResponseSchema, {
    entitlement: { entitlementId: 'e-1', memberId: 'm-1', remaining: 9, version: 2n, terms: { definitionId: 'ten', definitionVersion: 3 } },
    entry: { entryId: 'x-1', kind: EntryKind.CONSUME, sessionsDelta: -1, occurredTime: timestampFromDate(new Date('2025-03-01T02:00:00Z')) },
  });
  const bytes = toBinary(ConsumeResponseSchema, answer);

  it('encodes to the bytes it was made of, which decode to the original message', () => {
    const message = encodedMessage(ConsumeResponseSchema, bytes);
    expect(message.entitlement).toBeUndefined();
    expect(toBinary(ConsumeResponseSchema, message)).toEqual(bytes);
    expect(equals(ConsumeResponseSchema, fromBinary(ConsumeResponseSchema, toBinary(ConsumeResponseSchema, message)), answer)).toBe(true);
  });

  it('keeps fields it does not know and an empty message', () => {
    const withExtra = new Uint8Array([...bytes, 0xa0, 0x06, 0x01]); // field 100, varint 1
    expect(toBinary(ConsumeResponseSchema, encodedMessage(ConsumeResponseSchema, withExtra))).toEqual(withExtra);
    expect(toBinary(ConsumeResponseSchema, encodedMessage(ConsumeResponseSchema, new Uint8Array()))).toEqual(new Uint8Array());
  });
});
