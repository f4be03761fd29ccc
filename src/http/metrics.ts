import client from 'prom-client';
import type { Db } from '../db/db.ts';
import { type App, routeOf } from './app.ts';
import { bearerTokenCheck } from './auth.ts';
import { Problem } from './problems.ts';

/**
 * Prometheus metrics at `/metrics`: requests by route and status, their latency, and the database pool.
 * One registry per app (no global state), so tests and several apps in one process never share counters.
 */
export interface Metrics {
  readonly registry: client.Registry;
  readonly rejections: client.Counter<'reason'>;
  /** Counts a call through the gateway by app, product and status, with its latency. */
  apiCall(app: string, product: string, status: number, seconds: number): void;
}

/** Separates label values in a series key: no route template, status, app id or product holds it. */
export const SEPARATOR = '\u0000';

/** One series: its calls, their total time and how many fell in each bucket (the last: past every bound). */
interface Series {
  readonly values: readonly string[];
  count: number;
  sum: number;
  readonly buckets: number[];
}

/**
 * Calls counted and timed by label values, one map update each. prom-client's own counters and histograms
 * hash their labels object on every update, even a bound child's, a cost every API call would pay four
 * times. These tallies are read as a counter and a histogram only when `/metrics` is scraped.
 */
export class CallTallies {
  readonly #labelNames: readonly string[];
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, Series>();

  constructor(labelNames: readonly string[], bounds: readonly number[]) {
    this.#labelNames = labelNames;
    this.#bounds = bounds;
  }

  /** Counts a call of `seconds` in the series `key`: its label values joined by SEPARATOR. */
  observe(key: string, seconds: number): void {
    let series = this.#series.get(key);
    if (series === undefined) {
      series = { values: key.split(SEPARATOR), count: 0, sum: 0, buckets: this.#bounds.map(() => 0) };
      series.buckets.push(0);
      this.#series.set(key, series);
    }
    series.count += 1;
    series.sum += seconds;
    let bucket = 0;
    while (bucket < this.#bounds.length && seconds > (this.#bounds[bucket] as number)) bucket++;
    (series.buckets[bucket] as number) += 1;
  }

  /** The calls as a prom-client counter named `name`, by every label. */
  registerCounter(registry: client.Registry, name: string, help: string): void {
    const values = () =>
      [...this.#series.values()].map((series) => ({
        labels: this.#labels(series.values),
        value: series.count,
      }));
    register(registry, { name, help, type: 'counter', values });
  }

  /** The calls as a prom-client histogram named `name`, by the first `labelCount` labels. */
  registerHistogram(registry: client.Registry, name: string, help: string, labelCount: number): void {
    const values = () => {
      // Series that differ only in the labels left out add up.
      const merged = new Map<string, Series>();
      for (const series of this.#series.values()) {
        const kept = series.values.slice(0, labelCount);
        const key = kept.join(SEPARATOR);
        const into = merged.get(key) ?? {
          values: kept,
          count: 0,
          sum: 0,
          buckets: series.buckets.map(() => 0),
        };
        into.count += series.count;
        into.sum += series.sum;
        series.buckets.forEach((n, i) => {
          (into.buckets[i] as number) += n;
        });
        merged.set(key, into);
      }
      return [...merged.values()].flatMap((series) => {
        const labels = this.#labels(series.values);
        let cumulative = 0;
        const buckets = series.buckets.map((n, i) => {
          cumulative += n;
          const le = this.#bounds[i] ?? '+Inf';
          return { metricName: `${name}_bucket`, labels: { le, ...labels }, value: cumulative };
        });
        return [
          ...buckets,
          { metricName: `${name}_sum`, labels, value: series.sum },
          { metricName: `${name}_count`, labels, value: series.count },
        ];
      });
    };
    register(registry, { name, help, type: 'histogram', values });
  }

  #labels(values: readonly string[]): Record<string, string> {
    return Object.fromEntries(values.map((value, i) => [this.#labelNames[i], value]));
  }
}

/** A metric prom-client's registry prints as its own: the registry asks it only for `get()`. */
function register(
  registry: client.Registry,
  metric: { name: string; help: string; type: 'counter' | 'histogram'; values: () => unknown[] },
): void {
  const { name, help, type } = metric;
  registry.registerMetric({
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, aggregator: 'sum', values: metric.values() }),
    reset: () => {},
  } as unknown as client.Metric);
}

/**
 * `token`: the bearer token a scraper must send. The per-app series name the bank's partners and their
 * traffic, so production requires one (APIBANK_METRICS_TOKEN); without it anyone who reaches the server
 * reads them.
 */
export function registerMetrics(app: App, db: Db, options: { token?: string } = {}): Metrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const requests = new CallTallies(
    ['method', 'route', 'status'],
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  );
  requests.registerCounter(registry, 'http_requests_total', 'HTTP requests by route template and status');
  requests.registerHistogram(
    registry,
    'http_request_duration_seconds',
    'HTTP request latency by route template and status',
    3,
  );
  const pool = (name: string, help: string, read: (stats: ReturnType<Db['poolStats']>) => number) =>
    new client.Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(db.poolStats()));
      },
    });
  pool('db_pool_connections_max', 'Database connections the pool may open', (s) => s.max);
  pool('db_pool_connections_busy', 'Database connections running a query', (s) => s.busy);
  pool('db_pool_waiting', 'Database operations waiting for a connection', (s) => s.waiting);

  app.addHook('onResponse', (request, reply, done) => {
    // The route template, never the raw URL: ids in paths would make unbounded label sets.
    requests.observe(
      `${request.method}${SEPARATOR}${routeOf(request)}${SEPARATOR}${reply.statusCode}`,
      reply.elapsedTime / 1000,
    );
    done();
  });
  const sendsToken = options.token === undefined ? undefined : bearerTokenCheck(options.token);
  app.get('/metrics', { logLevel: 'warn' }, async (request, reply) => {
    if (sendsToken && !sendsToken(request)) {
      throw new Problem('unauthorized', 'send the metrics token as Authorization: Bearer <token>');
    }
    return reply.type(registry.contentType).send(await registry.metrics());
  });
  const rejections = new client.Counter({
    name: 'gateway_rejections_total',
    help: 'Calls refused by rate limits or quotas',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  // Per app: one label value per registered app, bounded by the app registry, not by the traffic.
  const apiCalls = new CallTallies(
    ['app', 'product', 'status'],
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  );
  apiCalls.registerCounter(registry, 'api_calls_total', 'Gateway calls by app, API product and status');
  apiCalls.registerHistogram(
    registry,
    'api_call_duration_seconds',
    'Gateway call latency by app and API product',
    2,
  );
  return {
    registry,
    rejections,
    apiCall(app, product, status, seconds) {
      apiCalls.observe(`${app}${SEPARATOR}${product}${SEPARATOR}${status}`, seconds);
    },
  };
}

/** Audit chain length and records lost to a full buffer (should stay 0). */
export function auditGauges(registry: client.Registry, audit: { length: number; dropped: number }): void {
  new client.Gauge({
    name: 'audit_chain_length',
    help: 'Records in the audit hash chain, as last written by this process',
    registers: [registry],
    collect() {
      this.set(audit.length);
    },
  });
  new client.Gauge({
    name: 'audit_records_dropped_total',
    help: 'Audit records lost because the buffer was full',
    registers: [registry],
    collect() {
      this.set(audit.dropped);
    },
  });
}
