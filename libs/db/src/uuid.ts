import { randomUUID } from 'node:crypto';

/**
 * A new id for a row that tables keep for long: a UUIDv7 (RFC 9562), whose first 48 bits are the
 * Unix time in milliseconds, so ids made later sort later. A random (v4) key puts each insert on a
 * random page of its index; once the index outgrows the buffer cache, nearly every such insert
 * after a checkpoint reads a cold page and writes a full-page image to the WAL. Time-ordered keys
 * keep the inserts on the index's last pages (measured in bench/JOURNAL.md: 0.24 full-page images and
 * 1.8 KB of WAL per insert into a 5M-row key with v4 ids, none and 0.35 KB with these). The other 74
 * bits are random, taken from a v4 UUID, whose variant bits are already those of v7.
 */
export function uuidv7(now: number = Date.now()): string {
  const random = randomUUID();
  const time = now.toString(16).padStart(12, '0');
  return `${time.slice(0, 8)}-${time.slice(8, 12)}-7${random.slice(15)}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `text` is a UUID in its canonical text form (any version, either case): what a `uuid` column accepts from us. */
export function isUuid(text: string): boolean {
  return UUID.test(text);
}
