/**
 * The byte strings of many rows, for a statement that takes its rows as one jsonb parameter
 * (`jsonb_to_recordset`). Inside JSON a bytea travels as hex text: twice its size, parsed by Postgres
 * as JSON and then decoded. Packed here instead, they travel as one more parameter, which node-pg
 * sends in binary format (it does for every Buffer), and each row carries where its bytes sit:
 *
 *   substring(${packed.bytes()}::bytea from v.payload_at for v.payload_length)
 *
 * A row without bytes carries nulls, and the substring is null.
 */
export class PackedBytes {
  private readonly parts: Uint8Array[] = [];
  private size = 0;

  /** Adds one row's bytes: their 1-based position (as `substring` counts) and length. */
  add(bytes: Uint8Array): { at: number; length: number } {
    const at = this.size + 1;
    this.parts.push(bytes);
    this.size += bytes.byteLength;
    return { at, length: bytes.byteLength };
  }

  /** Everything added, in order, as the statement's parameter. */
  bytes(): Buffer {
    return Buffer.concat(this.parts, this.size);
  }
}
