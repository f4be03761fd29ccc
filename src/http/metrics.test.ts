import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import client from 'prom-client';
import { openDb } from '../db/db.ts';
import { createHttpServer } from './app.ts';
import { CallTallies, registerMetrics, SEPARATOR } from './metrics.ts';

const key = (...values: string[]) => values.join(SEPARATOR);

/** The registry's text, one sample per line, by its name and labels. */
async function samples(registry: client.Registry): Promise<Map<string, number>> {
  const lines = (await registry.metrics()).split('\n').filter((line) => line && !line.startsWith('#'));
  return new Map(
    lines.map((line) => {
      const at = line.lastIndexOf(' ');
      return [line.slice(0, at), Number(line.slice(at + 1))];
    }),
  );
}

describe('call tallies', () => {
  it('count each series, and time series that differ only in the labels left out together', async () => {
    const registry = new client.Registry();
    const tallies = new CallTallies(['app', 'product', 'status'], [0.01, 0.1]);
    tallies.registerCounter(registry, 'calls_total', 'calls');
    tallies.registerHistogram(registry, 'call_seconds', 'latency', 2);
    tallies.observe(key('a1', 'payments', '200'), 0.004);
    tallies.observe(key('a1', 'payments', '200'), 0.01); // on a bound: in that bucket (le is "less or equal")
    tallies.observe(key('a1', 'payments', '422'), 0.05);
    tallies.observe(key('a1', 'accounts', '200'), 3);
    tallies.observe(key('a2', 'payments', '200'), 0.2);

    const got = await samples(registry);
    assert.equal(got.get('calls_total{app="a1",product="payments",status="200"}'), 2);
    assert.equal(got.get('calls_total{app="a1",product="payments",status="422"}'), 1);
    assert.equal(got.get('calls_total{app="a2",product="payments",status="200"}'), 1);
    const a1 = 'app="a1",product="payments"';
    assert.deepEqual(
      ['0.01', '0.1', '+Inf'].map((le) => got.get(`call_seconds_bucket{le="${le}",${a1}}`)),
      [2, 3, 3],
      'buckets are cumulative, over both statuses',
    );
    assert.equal(got.get(`call_seconds_count{${a1}}`), 3);
    assert.ok(Math.abs((got.get(`call_seconds_sum{${a1}}`) as number) - 0.064) < 1e-9);
    assert.equal(got.get('call_seconds_bucket{le="0.1",app="a1",product="accounts"}'), 0);
    assert.equal(got.get('call_seconds_bucket{le="+Inf",app="a1",product="accounts"}'), 1);
    assert.equal(
      [...got.keys()].filter((name) => name.startsWith('call_seconds_count')).length,
      3,
      'one histogram per app and product',
    );
  });
});

describe('/metrics', () => {
  it('asks a scraper for the metrics token when one is set, and answers anyone otherwise', async () => {
    const db = await openDb({});
    const token = 'metrics-token-0123456789abcdef0123456789';
    const guarded = createHttpServer();
    registerMetrics(guarded, db, { token });
    const open = createHttpServer();
    registerMetrics(open, db);
    try {
      const scrape = (app: typeof open, authorization?: string) =>
        app.inject({ url: '/metrics', headers: authorization ? { authorization } : {} });
      for (const authorization of [undefined, `Bearer ${token}x`, `Basic ${token}`, token]) {
        const refused = await scrape(guarded, authorization);
        assert.equal(refused.statusCode, 401, String(authorization));
        assert.equal(refused.json().code, 'unauthorized');
        assert.doesNotMatch(refused.body, /http_requests_total/);
      }
      const scraped = await scrape(guarded, `Bearer ${token}`);
      assert.equal(scraped.statusCode, 200);
      assert.match(scraped.body, /# TYPE http_requests_total counter/);
      assert.match(scraped.body, /http_requests_total\{method="GET",route="\/metrics",status="401"\} 4/);
      assert.equal((await scrape(open)).statusCode, 200);
    } finally {
      await guarded.close();
      await open.close();
      await db.close();
    }
  });
});
