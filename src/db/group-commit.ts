// Group commit: the short transactions of concurrent requests run as one. Their statements share one
// connection, so the writes of many requests leave in one packet, and one commit (one WAL flush) serves them
// all. Under load a request's transaction costs a few shared round trips instead of its own three or four;
// a lone request runs at once, in a transaction of its own, as `Db.transaction` would run it.
//
//   GroupCommit.run(key, work)  ─ queued ─▶  group: works with distinct keys no other group holds
//                                             begin; every work concurrently on one connection; commit
//                                             a work failed: rollback; each work again in a transaction alone
//     work(tx, jointly)                       jointly(call, item): the items the group's works ask of one
//                                             `call` go as one call, once every work still running waits on
//                                             one; calls in the order first asked (one ledger call a group)
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

/** One call for the items of many works: one result per item, in order. */
export type JointCall<Item, Result> = (tx: Sql, items: Item[]) => Promise<Result[]>;

/**
 * What a work asks of `call`, in one call with what the other works of its group ask of it. The call
 * must be one function value for all of them (a method bound once, not a closure per work).
 */
export type Jointly = <Item, Result>(call: JointCall<Item, Result>, item: Item) => Promise<Result>;

/** A work of a group: SQL on `tx`, and calls it shares with the group's other works through `jointly`. */
export type GroupWork<T> = (tx: Sql, jointly: Jointly) => Promise<T>;

interface Waiting {
  readonly key: string | undefined;
  readonly work: GroupWork<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** What a work waits on: its joint calls not yet made. */
interface WorkState {
  unmade: number;
}

interface Asked {
  readonly item: unknown;
  readonly work: WorkState;
  readonly resolve: (result: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Where a group's works meet for their joint calls. A call is made when no running work is left that could
 * still add to it: every one is waiting on a joint call, or has ended. Then only the call first asked
 * earliest in the group's life is made; the works waiting on later ones wait on. Works ask their calls in
 * one order, though some skip some (an app's payment consumes its consent first, a customer's has none):
 * so a work that skipped ahead waits for the others to catch up, and each call is made once, with every
 * work that asks it (one ledger call a group, which locks its accounts once and in one order). A work never
 * waits on another (the group's rule), so each is bound to get there. A work with a call unmade counts as
 * waiting even while it goes on (a payment past its screening's record, to its ledger call): the call made
 * then is the first asked, so its own or one before it in the order, never one it has still to ask.
 */
class Rendezvous {
  readonly #tx: Sql;
  #running: number;
  /** Works with an unmade call. */
  #waiting = 0;
  /** Every call asked so far, in the order first asked. */
  readonly #order: JointCall<unknown, unknown>[] = [];
  readonly #asked = new Map<JointCall<unknown, unknown>, Asked[]>();

  constructor(tx: Sql, works: number) {
    this.#tx = tx;
    this.#running = works;
  }

  /** The joint calls of one work. */
  jointly(): Jointly {
    const work: WorkState = { unmade: 0 };
    return <Item, Result>(call: JointCall<Item, Result>, item: Item) =>
      new Promise<Result>((resolve, reject) => {
        const key = call as JointCall<unknown, unknown>;
        let asked = this.#asked.get(key);
        if (!asked) {
          if (!this.#order.includes(key)) this.#order.push(key);
          asked = [];
          this.#asked.set(key, asked);
        }
        asked.push({ item, work, resolve: resolve as (result: unknown) => void, reject });
        if (work.unmade++ === 0) this.#waiting++;
        this.#release();
      });
  }

  /** A work ended. */
  ended(): void {
    this.#running--;
    this.#release();
  }

  #release(): void {
    // A work may wait on two calls at once: while every running work still waits, the next call goes too.
    while (this.#waiting > 0 && this.#waiting >= this.#running) {
      const call = this.#order.find((asked) => this.#asked.has(asked));
      const asked = call && this.#asked.get(call);
      if (!call || !asked) return;
      this.#asked.delete(call);
      for (const { work } of asked) if (--work.unmade === 0) this.#waiting--;
      void callWith(this.#tx, call, asked);
    }
  }
}

async function callWith(tx: Sql, call: JointCall<unknown, unknown>, asked: readonly Asked[]): Promise<void> {
  try {
    const results = await call(
      tx,
      asked.map(({ item }) => item),
    );
    if (results.length !== asked.length)
      throw new Error(`a joint call answered ${results.length} results for ${asked.length} items`);
    for (const [i, { resolve }] of asked.entries()) resolve(results[i]);
  } catch (error) {
    for (const { reject } of asked) reject(error);
  }
}

/** Joint calls of a work alone on `tx` (in its transaction, or outside any group): each carries its one item. */
export const alone =
  (tx: Sql): Jointly =>
  async <Item, Result>(call: JointCall<Item, Result>, item: Item) =>
    (await call(tx, [item]))[0] as Result;

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

  submit<T>(key: string | undefined, work: GroupWork<T>): Promise<T> {
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

  run<T>(key: string, work: GroupWork<T>): Promise<T> {
    return this.#queue.submit(key, work);
  }

  /** A work in a transaction of its own. */
  #alone(waiting: Waiting): Promise<void> {
    return this.#db.transaction((tx) => waiting.work(tx, alone(tx))).then(waiting.resolve, waiting.reject);
  }

  async #commit(group: readonly Waiting[]): Promise<void> {
    if (group.length === 1) {
      return this.#alone(group[0] as Waiting);
    }
    let values: unknown[];
    try {
      values = await this.#db.transaction(async (tx) => {
        // Every work settles before the transaction ends: one still running would send its statements
        // after the rollback, outside any transaction.
        const rendezvous = new Rendezvous(tx, group.length);
        const settled = await Promise.allSettled(
          group.map((waiting) => waiting.work(tx, rendezvous.jointly()).finally(() => rendezvous.ended())),
        );
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
      await Promise.all(group.map((waiting) => this.#alone(waiting)));
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
        Promise.all(
          group.map((waiting) => waiting.work(session, alone(session)).then(waiting.resolve, waiting.reject)),
        ),
      )
      .catch((error: unknown) => {
        for (const waiting of group) waiting.reject(error); // no connection: settles those still waiting
      });
  }
}
