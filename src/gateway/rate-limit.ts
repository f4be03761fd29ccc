// Rate limits and quotas as fixed windows (per second, per minute, per UTC day): a counter per key and
// window, in memory for one process or in Redis so several processes enforce one limit together.
import { Redis } from 'ioredis';

export interface Window {
  /** Policy name in the RateLimit headers. */
  readonly name: string;
  readonly limit: number;
  readonly seconds: number;
}

export interface WindowState {
  readonly window: Window;
  readonly used: number;
  /** Seconds until the window resets. */
  readonly resetS: number;
}

export interface RateLimiter {
  /**
   * Counts one call against every window of each key and returns each window's state after it, key by
   * key. In memory the answer is at hand, without a promise: it is on every API call's path.
   */
  hit(keys: readonly string[], windows: readonly Window[], now: Date): WindowState[] | Promise<WindowState[]>;
  close(): Promise<void>;
}

const windowStart = (seconds: number, nowS: number) => Math.floor(nowS / seconds) * seconds;

/** A key's counters: for each window (by position), the start of its current period and the calls in it. */
interface Counters {
  readonly starts: number[];
  readonly counts: number[];
  expiresS: number;
}

export class MemoryRateLimiter implements RateLimiter {
  readonly #counters = new Map<string, Counters>();
  readonly #max: number;

  constructor(maxKeys = 500_000) {
    this.#max = maxKeys;
  }

  hit(keys: readonly string[], windows: readonly Window[], now: Date): WindowState[] {
    const nowS = Math.floor(now.getTime() / 1000);
    if (this.#counters.size > this.#max) this.#sweep(nowS);
    const states: WindowState[] = [];
    for (const key of keys) {
      let counters = this.#counters.get(key);
      // A plan with other windows starts its keys' counts again.
      if (counters === undefined || counters.starts.length !== windows.length) {
        counters = { starts: windows.map(() => -1), counts: windows.map(() => 0), expiresS: 0 };
        this.#counters.set(key, counters);
      }
      for (let i = 0; i < windows.length; i++) {
        const window = windows[i] as Window;
        const start = windowStart(window.seconds, nowS);
        if (counters.starts[i] !== start) {
          counters.starts[i] = start;
          counters.counts[i] = 0;
        }
        const used = (counters.counts[i] as number) + 1;
        counters.counts[i] = used;
        counters.expiresS = Math.max(counters.expiresS, start + window.seconds);
        states.push({ window, used, resetS: start + window.seconds - nowS });
      }
    }
    return states;
  }

  #sweep(nowS: number): void {
    for (const [key, counters] of this.#counters) if (counters.expiresS <= nowS) this.#counters.delete(key);
  }

  async close(): Promise<void> {}
}

// One round trip for all keys and windows: increment each counter and set its expiry when it is new.
const HIT_SCRIPT = `
local results = {}
for i = 1, #KEYS do
  local count = redis.call('INCR', KEYS[i])
  if count == 1 then redis.call('EXPIRE', KEYS[i], ARGV[i]) end
  results[i] = count
end
return results`;

export type RedisFailurePolicy = 'open' | 'closed';

/** Thrown when Redis cannot be reached and the policy is to fail closed. */
export class RateLimiterUnavailable extends Error {
  override name = 'RateLimiterUnavailable';
}

export class RedisRateLimiter implements RateLimiter {
  readonly #redis: Redis;
  readonly #policy: RedisFailurePolicy;
  readonly #onFailure: (error: unknown) => void;

  constructor(url: string, policy: RedisFailurePolicy, onFailure: (error: unknown) => void) {
    // Bounded waits: a limiter that hangs would add its wait to every call. Commands queue only briefly
    // while connecting, then fail, and the policy decides.
    this.#redis = new Redis(url, { commandTimeout: 500, maxRetriesPerRequest: 1, connectTimeout: 2000 });
    this.#redis.on('error', () => {}); // reported per call below, with the policy applied
    this.#policy = policy;
    this.#onFailure = onFailure;
  }

  async hit(keys: readonly string[], windows: readonly Window[], now: Date): Promise<WindowState[]> {
    const nowS = Math.floor(now.getTime() / 1000);
    const starts = windows.map((window) => windowStart(window.seconds, nowS));
    const states = (counts: readonly number[]) =>
      keys.flatMap((_, k) =>
        windows.map((window, i) => ({
          window,
          used: Number(counts[k * windows.length + i] ?? 0),
          resetS: (starts[i] as number) + window.seconds - nowS,
        })),
      );
    try {
      const counts = (await this.#redis.eval(
        HIT_SCRIPT,
        keys.length * windows.length,
        ...keys.flatMap((key) => windows.map((window, i) => `apibank:rl:${key}:${window.name}:${starts[i]}`)),
        ...keys.flatMap(() => windows.map((window) => String(window.seconds + 1))),
      )) as number[];
      return states(counts);
    } catch (error) {
      this.#onFailure(error);
      if (this.#policy === 'closed') throw new RateLimiterUnavailable('the rate limiter is unavailable');
      return states([]);
    }
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}
