// A short-lived cache of reads every API call makes (an app, its subscription), so a busy server asks the
// database once per key and period, not once per call. Loads are shared: when an entry expires under load,
// the calls that find it missing wait for one read together instead of each sending its own.

export class TtlCache<Value> {
  readonly #entries = new Map<
    string,
    { value: Promise<Value>; atMs: number; settled?: { readonly value: Value } }
  >();
  readonly #ttlMs: number;
  readonly #max: number;

  constructor(options: { ttlMs: number; max: number }) {
    this.#ttlMs = options.ttlMs;
    this.#max = options.max;
  }

  /** The value of `key`, read with `load` when missing or older than the time to live. */
  get(key: string, load: () => Promise<Value>): Promise<Value> {
    const nowMs = Date.now();
    const cached = this.#entries.get(key);
    if (cached && nowMs - cached.atMs < this.#ttlMs) return cached.value;
    if (this.#entries.size >= this.#max) this.#entries.clear();
    const entry: { value: Promise<Value>; atMs: number; settled?: { value: Value } } = {
      value: load(),
      atMs: nowMs,
    };
    this.#entries.set(key, entry);
    entry.value.then(
      (value) => {
        entry.settled = { value };
      },
      // A failed read is not remembered: the next call tries again.
      () => {
        if (this.#entries.get(key) === entry) this.#entries.delete(key);
      },
    );
    return entry.value;
  }

  /**
   * The value of `key` when it is at hand (read and still fresh), without waiting: for a hot path that
   * answers at once when it can and takes `get` only when it cannot.
   */
  peek(key: string): { readonly value: Value } | undefined {
    const cached = this.#entries.get(key);
    return cached && Date.now() - cached.atMs < this.#ttlMs ? cached.settled : undefined;
  }

  /**
   * Forgets `key` (it changed): the next call reads it again. A read in flight when it changed is not
   * kept, since it may have seen the old value.
   */
  delete(key: string): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}
