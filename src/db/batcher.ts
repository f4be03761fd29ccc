/** Work refused because too much waits already: a 503, so the caller retries later. */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
  /** What the caller is told is busy. */
  readonly busy: string;

  constructor(message: string, busy = 'the ledger is at capacity') {
    super(message);
    this.busy = busy;
  }
}

export interface BatcherOptions<Item, Result> {
  /** Runs one call for many items; must return one result per item, in order. */
  readonly run: (items: Item[]) => Promise<Result[]>;
  readonly itemsPerCallMax: number;
  readonly callsInFlightMax: number;
  readonly queuedMax: number;
}

interface Waiting<Item, Result> {
  readonly item: Item;
  readonly resolve: (result: Result) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Merges items submitted concurrently into calls of `run`. No timer: an item submitted while fewer than
 * `callsInFlightMax` calls run goes on the next turn of the event loop (a lone request pays no real wait);
 * under load, items queue while calls run and the next call takes everything queued, so the batch size
 * follows the load by itself.
 */
export class Batcher<Item, Result> {
  readonly #options: BatcherOptions<Item, Result>;
  #queue: Waiting<Item, Result>[] = [];
  #callsInFlight = 0;

  constructor(options: BatcherOptions<Item, Result>) {
    if (options.itemsPerCallMax < 1 || options.callsInFlightMax < 1)
      throw new RangeError('batcher limits must be >= 1');
    this.#options = options;
  }

  submit(item: Item): Promise<Result> {
    if (this.#queue.length >= this.#options.queuedMax)
      return Promise.reject(new QueueFullError('ledger queue is full'));
    const result = new Promise<Result>((resolve, reject) => this.#queue.push({ item, resolve, reject }));
    // Wait one turn of the event loop, so requests already read from sockets join the same call. This
    // matters most for embedded PGlite, whose queries run on this thread: without the wait, each call
    // finishes before the next request is even parsed, and nothing is ever merged.
    if (this.#queue.length === 1) setImmediate(() => this.#drain());
    return result;
  }

  #drain(): void {
    while (this.#callsInFlight < this.#options.callsInFlightMax && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#options.itemsPerCallMax);
      this.#callsInFlight++;
      this.#options
        .run(batch.map((waiting) => waiting.item))
        .then(
          (results) => {
            if (results.length !== batch.length)
              throw new Error(`run returned ${results.length} of ${batch.length} results`);
            for (const [i, waiting] of batch.entries()) waiting.resolve(results[i] as Result);
          },
          (error: unknown) => {
            for (const waiting of batch) waiting.reject(error);
          },
        )
        .catch((error: unknown) => {
          for (const waiting of batch) waiting.reject(error);
        })
        .finally(() => {
          this.#callsInFlight--;
          this.#drain();
        });
    }
  }
}
