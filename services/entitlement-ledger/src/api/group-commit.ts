/** How a group commit forms its batches. */
export interface GroupCommitOptions<T, R> {
  /**
   * Batches running at once. A request that finds none running starts a batch of its own at once;
   * another batch starts beside running ones only once each of them has run `stalledAfterMs`.
   */
  concurrency: number;
  /**
   * How long a batch runs before it counts as stalled (waiting on a row lock, say), so the next may
   * start beside it. Until then what arrives waits and joins the next batch: fewer, larger batches,
   * which cost less per item. 0: start beside running ones at once. Default 0.
   */
  stalledAfterMs?: number;
  /** Milliseconds, monotonic; default `performance.now`. */
  now?: () => number;
  /** Items per batch at most. */
  maxBatch: number;
  /** Items of one batch share this (the tenant): a batch takes the oldest waiting item's group only. */
  groupOf: (item: T) => string;
  /** Keys no two items of one batch may share (the row it locks, its idempotency key): the later one waits for a later batch. */
  conflictsOf: (item: T) => readonly string[];
  /** Applies a batch; one settled result per item, in the batch's order. A rejection fails every item. */
  run: (batch: readonly T[]) => Promise<readonly PromiseSettledResult<R>[]>;
}

interface Waiting<T, R> {
  item: T;
  resolve: (value: R) => void;
  reject: (reason: unknown) => void;
}

/**
 * Group commit: while batches are running, requests wait, and each batch that ends starts the next
 * with what has gathered meanwhile. Under no load every request runs alone at once (no added
 * latency); under load a transaction's fixed costs (BEGIN, COMMIT, one statement per kind of write,
 * the round trips between them) are shared by everything that waited for it. Up to `concurrency`
 * batches run at once, the later ones only beside batches that have stalled (`stalledAfterMs`), so
 * one batch held up by a lock does not hold back everything behind it.
 */
export class GroupCommit<T, R> {
  private waiting: Waiting<T, R>[] = [];
  /** When each running batch started. */
  private running = new Set<{ startedAt: number }>();
  private stallTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly now: () => number;

  constructor(private readonly options: GroupCommitOptions<T, R>) {
    if (!(options.concurrency >= 1 && options.maxBatch >= 1)) throw new Error('a group commit needs concurrency and maxBatch of at least 1');
    if (!((options.stalledAfterMs ?? 0) >= 0)) throw new Error('a group commit needs stalledAfterMs of at least 0');
    this.now = options.now ?? (() => performance.now());
  }

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.pump();
    });
  }

  /** Items waiting for a batch (not the ones running). */
  get queued(): number {
    return this.waiting.length;
  }

  private pump(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    while (this.running.size < this.options.concurrency && this.waiting.length > 0) {
      const stalledIn = this.untilAllStalled();
      if (stalledIn > 0) {
        this.stallTimer = setTimeout(() => this.pump(), stalledIn);
        this.stallTimer.unref?.();
        return;
      }
      const batch = this.take();
      const run = { startedAt: this.now() };
      this.running.add(run);
      void this.apply(batch).finally(() => {
        this.running.delete(run);
        this.pump();
      });
    }
  }

  /** Milliseconds until every running batch has run `stalledAfterMs`; 0 when none runs. */
  private untilAllStalled(): number {
    let youngest = -Infinity;
    for (const r of this.running) youngest = Math.max(youngest, r.startedAt);
    return this.running.size === 0 ? 0 : Math.max(0, youngest + (this.options.stalledAfterMs ?? 0) - this.now());
  }

  /** The oldest waiting item and, in arrival order, those of its group that conflict with nothing taken. */
  private take(): Waiting<T, R>[] {
    const { groupOf, conflictsOf, maxBatch } = this.options;
    const group = groupOf(this.waiting[0]!.item);
    const taken: Waiting<T, R>[] = [];
    const left: Waiting<T, R>[] = [];
    const keys = new Set<string>();
    for (const w of this.waiting) {
      const conflicts = taken.length < maxBatch && groupOf(w.item) === group ? conflictsOf(w.item) : undefined;
      if (conflicts && !conflicts.some((k) => keys.has(k))) {
        for (const k of conflicts) keys.add(k);
        taken.push(w);
      } else {
        left.push(w);
      }
    }
    this.waiting = left;
    return taken;
  }

  private async apply(batch: Waiting<T, R>[]): Promise<void> {
    try {
      const results = await this.options.run(batch.map((w) => w.item));
      if (results.length !== batch.length) throw new Error(`a batch of ${batch.length} answered ${results.length} results`);
      for (const [i, r] of results.entries()) {
        if (r.status === 'fulfilled') batch[i]!.resolve(r.value);
        else batch[i]!.reject(r.reason);
      }
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  }
}
