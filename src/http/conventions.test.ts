import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { type Db, openDb } from '../db/db.ts';
import { migrate } from '../db/migrate.ts';
import { buildApp } from '../main.ts';
import { testPii } from '../testing/pii.ts';
import type { App } from './app.ts';

describe('API conventions', () => {
  let db: Db;
  let app: App;
  const logLines: string[] = [];

  before(async () => {
    db = await openDb({});
    await migrate(db);
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    });
    app = buildApp({
      db,
      adminToken: 'conventions-operator-token-0123456789abcdef',
      mode: 'production',
      corsOrigins: ['https://portal.example'],
      logger: pino({ level: 'info' }, sink),
      pii: await testPii(db),
    }).app;
    app.get(
      '/v1/test/old',
      {
        config: {
          deprecation: {
            since: new Date('2026-01-01T00:00:00Z'),
            sunset: new Date('2027-01-01T00:00:00Z'),
            link: 'https://docs.example/v2',
          },
        },
      },
      async () => ({ ok: true }),
    );
    await app.ready();
  });
  after(async () => {
    await app.close();
    await db.close();
  });

  it('sends security headers, and keeps API answers out of caches', async () => {
    const response = await app.inject('/v1/test/old');
    assert.equal(response.headers['x-content-type-options'], 'nosniff');
    assert.equal(response.headers['x-frame-options'], 'DENY');
    assert.equal(response.headers['referrer-policy'], 'no-referrer');
    assert.equal(response.headers['cache-control'], 'no-store');
    assert.match(String(response.headers['strict-transport-security']), /max-age=31536000/);
  });

  it('announces deprecation and sunset on a deprecated route (RFC 9745, RFC 8594)', async () => {
    const response = await app.inject('/v1/test/old');
    assert.equal(response.headers.deprecation, `@${Date.parse('2026-01-01T00:00:00Z') / 1000}`);
    assert.equal(response.headers.sunset, 'Fri, 01 Jan 2027 00:00:00 GMT');
    assert.equal(response.headers.link, '<https://docs.example/v2>; rel="deprecation"');
    assert.equal((await app.inject('/health/live')).headers.deprecation, undefined);
  });

  it('allows configured browser origins only', async () => {
    const allowed = await app.inject({ url: '/health/live', headers: { origin: 'https://portal.example' } });
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://portal.example');
    const other = await app.inject({ url: '/health/live', headers: { origin: 'https://evil.example' } });
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/v1/consents',
      headers: {
        origin: 'https://portal.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,dpop',
      },
    });
    assert.equal(preflight.statusCode, 204);
    assert.match(String(preflight.headers['access-control-allow-headers']), /dpop/);
  });

  it('puts the caller’s W3C trace id on the request’s log lines', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    await app.inject({ url: '/v1/test/old', headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
    assert.ok(logLines.some((line) => line.includes(`"traceId":"${traceId}"`)));
    await app.inject({ url: '/v1/test/old', headers: { traceparent: 'garbage' } });
  });
});
