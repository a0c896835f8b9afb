import { createHash } from 'node:crypto';
import { isUuid, uuidv7 } from '@punchcard/db';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { journalEntryId } from '../src/store/journal.js';

const VERSION_8 = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('journalEntryId', () => {
  it('is the same for the same tenant, cause and source, and differs when any of them does', () => {
    const source = uuidv7();
    const id = journalEntryId('t1', 'breakage', source);
    expect(journalEntryId('t1', 'breakage', source)).toBe(id);
    expect(new Set([id, journalEntryId('t2', 'breakage', source), journalEntryId('t1', 'recognized', source), journalEntryId('t1', 'breakage', uuidv7())]).size).toBe(4);
    expect(id).toMatch(VERSION_8);
  });

  it("starts with a time-ordered source's time, so entries sort in the order their sources were made", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 47 }), fc.integer({ min: 1, max: 2 ** 40 }), fc.string(), (earlier, gap, tenant) => {
        const first = uuidv7(earlier);
        const second = uuidv7(earlier + gap);
        const a = journalEntryId(tenant, 'breakage', second);
        const b = journalEntryId(tenant, 'breakage', first);
        expect(a.slice(0, 13)).toBe(second.slice(0, 13));
        expect(b < a).toBe(true);
        expect(a).toMatch(VERSION_8);
      }),
    );
  });

  it('takes the time of the id it is ordered by, where one is given: a recognition event after its entry', () => {
    const entry = journalEntryId('t1', 'breakage', uuidv7());
    const event = journalEntryId('t1', 'revenue.recognized', `${entry}:0`, entry);
    expect(event.slice(0, 13)).toBe(entry.slice(0, 13));
    expect(event).not.toBe(entry);
    expect(event).toMatch(VERSION_8);
  });

  it('starts with the hash when the source is no time-ordered UUID (a visit id from a booking system, say)', () => {
    for (const source of ['visit-42', '9b2f0c1e-55aa-4d1e-8f00-0123456789ab']) {
      const hash = createHash('sha256').update(`t1\u0000visit\u0000${source}`).digest('hex');
      const id = journalEntryId('t1', 'visit', source);
      expect(id.replaceAll('-', '').slice(0, 12)).toBe(hash.slice(0, 12));
      expect(isUuid(id)).toBe(true);
    }
  });
});
