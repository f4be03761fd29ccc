// DPoP proofs are single-use (RFC 9449 §11.1): the resource server remembers each proof's jti for as long
// as the proof could be accepted. In one process a bounded map does; several processes share Redis, so a
// proof replayed to another process of the same deployment is caught too.
import { Redis } from 'ioredis';
import type { RedisFailurePolicy } from '../gateway/rate-limit.ts';

export interface ReplayGuard {
  /** True the first time `id` is seen within `ttlS` seconds; false for a replay. */
  firstSeen(id: string, ttlS: number, nowS: number): Promise<boolean>;
  close(): Promise<void>;
}

export class MemoryReplayGuard implements ReplayGuard {
  readonly #expiries = new Map<string, number>();
  readonly #max: number;

  constructor(max = 200_000) {
    this.#max = max;
  }

  async firstSeen(id: string, ttlS: number, nowS: number): Promise<boolean> {
    const seen = this.#expiries.get(id);
    if (seen !== undefined && seen >= nowS) return false;
    this.#expiries.set(id, nowS + ttlS);
    // Bounded: expired entries go first (insertion order is roughly expiry order), then the oldest.
    if (this.#expiries.size > this.#max) {
      for (const [key, expiry] of this.#expiries) {
        if (expiry < nowS || this.#expiries.size > this.#max) this.#expiries.delete(key);
        else break;
      }
    }
    return true;
  }

  async close(): Promise<void> {}
}

/** Thrown when Redis cannot be reached and the policy is to fail closed. */
export class ReplayGuardUnavailable extends Error {
  override name = 'ReplayGuardUnavailable';
}

export class RedisReplayGuard implements ReplayGuard {
  readonly #redis: Redis;
  readonly #policy: RedisFailurePolicy;
  readonly #onFailure: (error: unknown) => void;

  constructor(url: string, policy: RedisFailurePolicy, onFailure: (error: unknown) => void) {
    this.#redis = new Redis(url, { commandTimeout: 500, maxRetriesPerRequest: 1, connectTimeout: 2000 });
    this.#redis.on('error', () => {}); // reported per call, with the policy applied
    this.#policy = policy;
    this.#onFailure = onFailure;
  }

  async firstSeen(id: string, ttlS: number, _nowS: number): Promise<boolean> {
    try {
      // SET NX: one atomic step decides which of two racing processes saw the proof first.
      return (await this.#redis.set(`apibank:dpop-jti:${id}`, '1', 'EX', ttlS, 'NX')) === 'OK';
    } catch (error) {
      this.#onFailure(error);
      if (this.#policy === 'closed') throw new ReplayGuardUnavailable('DPoP replay checks are unavailable');
      return true;
    }
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}
