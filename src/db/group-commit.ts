// Group commit: the short transactions of concurrent requests run as one. Their statements share one
// connection, so the writes of many requests leave in one packet, and one commit (one WAL flush) serves them
// all. Under load a request's transaction costs a few shared round trips instead of its own three or four;
// a lone request runs at once, in a transaction of its own, as `Db.transaction` would run it.
//
//   GroupCommit.run(key, work)  ─ queued ─▶  group: works with distinct keys no other group holds
//                                             begin; every work concurrently on one connection; commit
//                                             a work failed: rollback; each work again in a transaction alone
//   GroupRead.run(work)         ─ queued ─▶  group: every work concurrently on one connection, no transaction
import { QueueFullError } from './batcher.ts';
import type { Db, Sql } from './db.ts';

export interface GroupCommitOptions {
  /** The most works one transaction carries. */
  readonly groupMax?: number;
  /** Transactions in flight at once; more works wait in the queue and join the next group. */
  readonly groupsInFlightMax?: number;
  /** Works waiting beyond this are refused (QueueFullError, a 503): load is shed, never queued unbounded. */
  readonly queuedMax?: number;
}

interface Waiting {
  readonly key: string | undefined;
  readonly work: (tx: Sql) => Promise<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** Thrown inside a group's transaction to roll it back when one of its works failed. */
class WorkFailed extends Error {}

/**
 * The queue both kinds of group share: works wait one turn of the event loop (or for a group in flight to
 * end), then go in groups of distinct keys, none held by a group in flight.
 */
class GroupQueue {
  readonly #execute: (group: readonly Waiting[]) => Promise<void>;
  readonly #groupMax: number;
  readonly #groupsInFlightMax: number;
  readonly #queuedMax: number;
  #queue: Waiting[] = [];
  #groupsInFlight = 0;
  #drainScheduled = false;
  readonly #keysInFlight = new Set<string>();

  constructor(execute: (group: readonly Waiting[]) => Promise<void>, options: GroupCommitOptions) {
    this.#execute = execute;
    this.#groupMax = options.groupMax ?? 64;
    this.#groupsInFlightMax = options.groupsInFlightMax ?? 2;
    this.#queuedMax = options.queuedMax ?? 4096;
    if (this.#groupMax < 1 || this.#groupsInFlightMax < 1) throw new RangeError('group limits must be >= 1');
  }

  submit<T>(key: string | undefined, work: (sql: Sql) => Promise<T>): Promise<T> {
    if (this.#queue.length >= this.#queuedMax) return Promise.reject(new QueueFullError('queue is full'));
    const done = new Promise<T>((resolve, reject) =>
      this.#queue.push({ key, work, resolve: resolve as (value: unknown) => void, reject }),
    );
    // One turn of the event loop first, so requests already read from their sockets join the same group.
    if (!this.#drainScheduled) {
      this.#drainScheduled = true;
      setImmediate(() => {
        this.#drainScheduled = false;
        this.#drain();
      });
    }
    return done;
  }

  #drain(): void {
    while (this.#groupsInFlight < this.#groupsInFlightMax && this.#queue.length > 0) {
      const group = this.#take();
      if (group.length === 0) return; // every queued key is in flight: the next group to finish drains
      this.#groupsInFlight++;
      void this.#execute(group).finally(() => {
        for (const { key } of group) if (key !== undefined) this.#keysInFlight.delete(key);
        this.#groupsInFlight--;
        this.#drain();
      });
    }
  }

  /**
   * The next group: the oldest works, one per key, none whose key a group in flight holds (it would wait
   * for that group's locks, and its whole group with it); the rest keep their place in the queue.
   */
  #take(): Waiting[] {
    const group: Waiting[] = [];
    const left: Waiting[] = [];
    for (const waiting of this.#queue) {
      const { key } = waiting;
      if (group.length < this.#groupMax && (key === undefined || !this.#keysInFlight.has(key))) {
        if (key !== undefined) this.#keysInFlight.add(key);
        group.push(waiting);
      } else {
        left.push(waiting);
      }
    }
    this.#queue = left;
    return group;
  }
}

/**
 * Runs transactions of concurrent callers as one. What a work may do:
 * - Only SQL on the `tx` it is given, and computation. A group whose work fails is rolled back and every
 *   work runs again alone, so one caller's refusal (a conflict, a rule) is its own and never undoes another's.
 *   A work may therefore run twice; nothing it does may outlive a rolled-back attempt.
 * - Nothing that depends on another work's effects: their statements interleave on one connection. Works
 *   that could touch the same rows (a customer's history, their consents and mandates) carry the same `key`,
 *   and two works with one key never run at once: the second joins a group after the first's has ended.
 */
export class GroupCommit {
  readonly #db: Db;
  readonly #queue: GroupQueue;

  constructor(db: Db, options: GroupCommitOptions = {}) {
    this.#db = db;
    this.#queue = new GroupQueue((group) => this.#commit(group), options);
  }

  run<T>(key: string, work: (tx: Sql) => Promise<T>): Promise<T> {
    return this.#queue.submit(key, work);
  }

  async #commit(group: readonly Waiting[]): Promise<void> {
    if (group.length === 1) {
      const [only] = group as [Waiting];
      return this.#db.transaction(only.work).then(only.resolve, only.reject);
    }
    let values: unknown[];
    try {
      values = await this.#db.transaction(async (tx) => {
        // Every work settles before the transaction ends: one still running would send its statements
        // after the rollback, outside any transaction.
        const settled = await Promise.allSettled(group.map((waiting) => waiting.work(tx)));
        if (settled.some((outcome) => outcome.status === 'rejected')) throw new WorkFailed();
        return settled.map((outcome) => (outcome as PromiseFulfilledResult<unknown>).value);
      });
    } catch (error) {
      // A work failed, and nothing of the group was committed: each runs again alone, to its own outcome.
      // Any other failure (the connection, the commit) is every work's: had the commit gone through
      // unseen, running them again would apply them twice.
      if (!(error instanceof WorkFailed)) {
        for (const waiting of group) waiting.reject(error);
        return;
      }
      await Promise.all(
        group.map((waiting) => this.#db.transaction(waiting.work).then(waiting.resolve, waiting.reject)),
      );
      return;
    }
    for (const [i, waiting] of group.entries()) waiting.resolve(values[i]);
  }
}

/**
 * Runs the reads of concurrent callers on one connection, outside any transaction: their statements leave
 * together, and each answers (or fails) on its own. For the lookups a request makes before it decides
 * anything; a read that must see a transaction's own writes belongs in that transaction.
 */
export class GroupRead {
  readonly #db: Db;
  readonly #queue: GroupQueue;

  constructor(db: Db, options: GroupCommitOptions = {}) {
    this.#db = db;
    this.#queue = new GroupQueue((group) => this.#read(group), options);
  }

  run<T>(work: (sql: Sql) => Promise<T>): Promise<T> {
    return this.#queue.submit(undefined, work);
  }

  async #read(group: readonly Waiting[]): Promise<void> {
    await this.#db
      .session((session) =>
        Promise.all(group.map((waiting) => waiting.work(session).then(waiting.resolve, waiting.reject))),
      )
      .catch((error: unknown) => {
        for (const waiting of group) waiting.reject(error); // no connection: settles those still waiting
      });
  }
}
