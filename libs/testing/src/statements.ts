import type { Kysely } from 'kysely';

export interface CountedDb<DB> {
  /** The same database; every statement sent through it (or its transactions) is counted. */
  db: Kysely<DB>;
  /** Statements sent since the start or the last reset: an operation's round trips. */
  statements(): number;
  reset(): void;
}

/** Counts the statements an operation sends, for tests that hold it to a number of round trips. */
export function countingStatements<DB>(db: Kysely<DB>): CountedDb<DB> {
  let n = 0;
  const counted = db.withPlugin({
    transformQuery: (args) => {
      n += 1;
      return args.node;
    },
    transformResult: async (args) => args.result,
  });
  return { db: counted, statements: () => n, reset: () => void (n = 0) };
}
