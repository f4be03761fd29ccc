// Metering: every gateway call counted per app, product and minute, with its latency in a fixed-bucket
// histogram. Counts gather in memory and are added to the database every few seconds, so metering costs a
// request a map update, not a write.
import type { Db } from '../db/db.ts';

/** Latency bucket upper bounds in milliseconds; the last bucket takes everything slower. */
export const LATENCY_BOUNDS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] as const;
const BUCKETS = LATENCY_BOUNDS_MS.length + 1;
const PENDING_KEYS_MAX = 100_000;

interface Tally {
  calls: number;
  errors: number;
  buckets: number[];
}

export interface ProductUsage {
  readonly product: string;
  readonly calls: number;
  readonly errors: number;
  readonly latencyMs: {
    readonly p50: number | null;
    readonly p95: number | null;
    readonly p99: number | null;
  };
}

export class Meter {
  readonly #db: Db;
  #pending = new Map<string, Tally>();

  constructor(options: { db: Db }) {
    this.#db = options.db;
  }

  record(appId: string, product: string, status: number, latencyMs: number, at: Date): void {
    // The minute as a number here; turned into a time only when written.
    const key = `${appId}|${product}|${Math.floor(at.getTime() / 60_000)}`;
    let tally = this.#pending.get(key);
    if (!tally) {
      if (this.#pending.size >= PENDING_KEYS_MAX) return; // bounded; flushing empties it within seconds
      tally = { calls: 0, errors: 0, buckets: new Array(BUCKETS).fill(0) };
      this.#pending.set(key, tally);
    }
    tally.calls += 1;
    if (status >= 400) tally.errors += 1;
    let bucket = 0;
    while (bucket < LATENCY_BOUNDS_MS.length && latencyMs > (LATENCY_BOUNDS_MS[bucket] as number)) bucket++;
    (tally.buckets[bucket] as number) += 1;
  }

  /** Adds what gathered since the last flush to the stored minutes. */
  async flush(): Promise<void> {
    if (this.#pending.size === 0) return;
    const batch = this.#pending;
    this.#pending = new Map();
    const rows = [...batch].map(([key, tally]) => {
      const [app_id, product, minuteNumber] = key.split('|');
      const minute = new Date(Number(minuteNumber) * 60_000).toISOString();
      return {
        app_id,
        product,
        minute,
        calls: tally.calls,
        errors: tally.errors,
        latency_buckets: tally.buckets,
      };
    });
    await this.#db.query(
      `insert into usage_minutes (app_id, product, minute, calls, errors, latency_buckets)
       select r.app_id, r.product, r.minute, r.calls, r.errors, array(select jsonb_array_elements_text(r.latency_buckets)::bigint)
         from jsonb_to_recordset($1::text::jsonb) as r(app_id uuid, product text, minute timestamptz, calls bigint, errors bigint,
                                                       latency_buckets jsonb)
       on conflict (app_id, minute, product) do update set
         calls = usage_minutes.calls + excluded.calls,
         errors = usage_minutes.errors + excluded.errors,
         latency_buckets = array(select a + b from unnest(usage_minutes.latency_buckets, excluded.latency_buckets) as t(a, b))`,
      [JSON.stringify(rows)],
    );
  }

  /** Calls, errors and latency percentiles per product for one app, over [from, to). */
  async usage(appId: string, from: Date, to: Date): Promise<ProductUsage[]> {
    const rows = await this.#db.query<{ product: string; calls: string; errors: string; buckets: string[] }>(
      `select product, sum(calls)::text as calls, sum(errors)::text as errors,
              (select to_jsonb(array_agg(s::text order by i)) from (
                 select i, sum(u2.latency_buckets[i]) as s from usage_minutes u2, generate_series(1, ${BUCKETS}) as i
                  where u2.app_id = u.app_id and u2.product = u.product and u2.minute >= $2 and u2.minute < $3
                  group by i) as b) as buckets
         from usage_minutes u where app_id = $1 and minute >= $2 and minute < $3
        group by app_id, product order by product`,
      [appId, from, to],
    );
    return rows.map((row) => {
      const buckets = row.buckets.map(Number);
      return {
        product: row.product,
        calls: Number(row.calls),
        errors: Number(row.errors),
        latencyMs: {
          p50: percentile(buckets, 0.5),
          p95: percentile(buckets, 0.95),
          p99: percentile(buckets, 0.99),
        },
      };
    });
  }
}

/** The upper bound of the bucket holding the q-quantile (null past the last bound or with no calls). */
export function percentile(buckets: readonly number[], q: number): number | null {
  const total = buckets.reduce((sum, n) => sum + n, 0);
  if (total === 0) return null;
  let seen = 0;
  for (const [i, count] of buckets.entries()) {
    seen += count;
    if (seen >= q * total) return LATENCY_BOUNDS_MS[i] ?? null;
  }
  return null;
}
