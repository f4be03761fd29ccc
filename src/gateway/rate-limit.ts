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
  /** Counts one call against every window of `key` and returns each window's state after it. */
  hit(key: string, windows: readonly Window[], now: Date): Promise<WindowState[]>;
  close(): Promise<void>;
}

const windowStart = (seconds: number, nowS: number) => Math.floor(nowS / seconds) * seconds;

export class MemoryRateLimiter implements RateLimiter {
  readonly #counts = new Map<string, { count: number; expiresS: number }>();
  readonly #max: number;

  constructor(maxKeys = 500_000) {
    this.#max = maxKeys;
  }

  async hit(key: string, windows: readonly Window[], now: Date): Promise<WindowState[]> {
    const nowS = Math.floor(now.getTime() / 1000);
    if (this.#counts.size > this.#max) this.#sweep(nowS);
    return windows.map((window) => {
      const start = windowStart(window.seconds, nowS);
      const id = `${key}|${window.name}|${start}`;
      const entry = this.#counts.get(id) ?? { count: 0, expiresS: start + window.seconds };
      entry.count += 1;
      this.#counts.set(id, entry);
      return { window, used: entry.count, resetS: start + window.seconds - nowS };
    });
  }

  #sweep(nowS: number): void {
    for (const [id, entry] of this.#counts) if (entry.expiresS <= nowS) this.#counts.delete(id);
  }

  async close(): Promise<void> {}
}

// One round trip for all windows: increment each counter and set its expiry when it is new.
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

  async hit(key: string, windows: readonly Window[], now: Date): Promise<WindowState[]> {
    const nowS = Math.floor(now.getTime() / 1000);
    const starts = windows.map((window) => windowStart(window.seconds, nowS));
    try {
      const counts = (await this.#redis.eval(
        HIT_SCRIPT,
        windows.length,
        ...windows.map((window, i) => `apibank:rl:${key}:${window.name}:${starts[i]}`),
        ...windows.map((window) => String(window.seconds + 1)),
      )) as number[];
      return windows.map((window, i) => ({
        window,
        used: Number(counts[i]),
        resetS: (starts[i] as number) + window.seconds - nowS,
      }));
    } catch (error) {
      this.#onFailure(error);
      if (this.#policy === 'closed') throw new RateLimiterUnavailable('the rate limiter is unavailable');
      return windows.map((window, i) => ({
        window,
        used: 0,
        resetS: (starts[i] as number) + window.seconds - nowS,
      }));
    }
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}
