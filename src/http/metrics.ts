import client from 'prom-client';
import type { Db } from '../db/db.ts';
import { type App, routeOf } from './app.ts';

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

/**
 * prom-client finds a series by hashing its labels object, sorting the keys, on every update. The label
 * sets here are few (route templates, statuses, apps), so each series is looked up once and kept by a
 * plain string key.
 */
function seriesCache<T>(make: (values: string[]) => T): (...values: string[]) => T {
  const series = new Map<string, T>();
  return (...values) => {
    const key = values.join('\u0000');
    let found = series.get(key);
    if (!found) {
      found = make(values);
      series.set(key, found);
    }
    return found;
  };
}

export function registerMetrics(app: App, db: Db): Metrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const labelNames = ['method', 'route', 'status'] as const;
  const requests = new client.Counter({
    name: 'http_requests_total',
    help: 'HTTP requests by route template and status',
    labelNames,
    registers: [registry],
  });
  const latency = new client.Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency by route template and status',
    labelNames,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
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

  const requestSeries = seriesCache((values) => ({
    count: requests.labels(...values),
    latency: latency.labels(...values),
  }));
  app.addHook('onResponse', (request, reply, done) => {
    // The route template, never the raw URL: ids in paths would make unbounded label sets.
    const series = requestSeries(request.method, routeOf(request), String(reply.statusCode));
    series.count.inc();
    series.latency.observe(reply.elapsedTime / 1000);
    done();
  });
  app.get('/metrics', { logLevel: 'warn' }, async (_request, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()),
  );
  const rejections = new client.Counter({
    name: 'gateway_rejections_total',
    help: 'Calls refused by rate limits or quotas',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  // Per app: one label value per registered app, bounded by the app registry, not by the traffic.
  const apiCalls = new client.Counter({
    name: 'api_calls_total',
    help: 'Gateway calls by app, API product and status',
    labelNames: ['app', 'product', 'status'] as const,
    registers: [registry],
  });
  const apiLatency = new client.Histogram({
    name: 'api_call_duration_seconds',
    help: 'Gateway call latency by app and API product',
    labelNames: ['app', 'product'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const callSeries = seriesCache(([app, product, status]) => ({
    count: apiCalls.labels(app as string, product as string, status as string),
    latency: apiLatency.labels(app as string, product as string),
  }));
  return {
    registry,
    rejections,
    apiCall(app, product, status, seconds) {
      const series = callSeries(app, product, String(status));
      series.count.inc();
      series.latency.observe(seconds);
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
