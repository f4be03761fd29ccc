import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { type AddressInfo, connect } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { openDb } from '../db/db.ts';
import { migrate } from '../db/migrate.ts';
import { buildApp } from '../main.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { testPii } from '../testing/pii.ts';
import { type App, createHttpServer, JSON_DEPTH_MAX, nestsDeeperThan } from './app.ts';
import { PROBLEMS } from './problems.ts';

const TOKEN = 'app-test-operator-token-0123456789abcdef';

describe('error catalogue', () => {
  it('documents exactly the codes the code can answer with', () => {
    const documented = [
      ...readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8').matchAll(
        /^\| `([a-z_]+)` \| (\d{3}) \|/gm,
      ),
    ];
    assert.deepEqual(
      documented.map(([, code, status]) => `${code} ${status}`).sort(),
      Object.entries(PROBLEMS)
        .map(([code, p]) => `${code} ${p.status}`)
        .sort(),
    );
  });
});

describe("the caller's address", () => {
  it('comes from X-Forwarded-For only when the connection is from a trusted proxy', async () => {
    const ipOf = async (trustedProxies: readonly string[], remoteAddress: string) => {
      const server = createHttpServer({ trustedProxies });
      server.get('/ip', async (request) => ({ ip: request.ip }));
      const response = await server.inject({
        url: '/ip',
        remoteAddress,
        headers: { 'x-forwarded-for': '203.0.113.9' },
      });
      await server.close();
      return (response.json() as { ip: string }).ip;
    };
    assert.equal(await ipOf(['10.0.0.0/8'], '10.1.2.3'), '203.0.113.9');
    assert.equal(
      await ipOf(['10.0.0.0/8'], '198.51.100.4'),
      '198.51.100.4',
      'a stranger cannot claim an address',
    );
    assert.equal(await ipOf([], '10.1.2.3'), '10.1.2.3', 'no proxy is trusted by default');
  });
});

describe('readiness', () => {
  it('is not ready on a database without the migrations', async () => {
    const empty = await openDb({});
    // Encryption keys live in a migrated database; this one has none, and needs none to answer 503.
    const keys = await openDb({});
    await migrate(keys);
    const unready = buildApp({ db: empty, adminToken: TOKEN, pii: await testPii(keys) }).app;
    const response = await unready.inject('/health/ready');
    assert.equal(response.statusCode, 503);
    assert.equal(response.json().code, 'service_unavailable');
    await unready.close();
    await empty.close();
    await keys.close();
  });
});

for (const database of testDatabases()) {
  describe(`HTTP foundation on ${database.name}`, () => {
    let db: TestDb;
    let app: App;
    const logLines: string[] = [];

    before(async () => {
      db = await database.open();
      const sink = new Writable({
        write(chunk, _encoding, done) {
          logLines.push(String(chunk));
          done();
        },
      });
      app = buildApp({
        db,
        adminToken: TOKEN,
        logger: pino({ level: 'info' }, sink),
        pii: await testPii(db),
      }).app;
      app.get('/test/boom', async () => {
        throw new Error('secret internal detail');
      });
      // A unique violation nothing expected: PostgreSQL's detail quotes the value.
      await db.query('create table if not exists log_test_emails (email text unique)');
      app.get('/test/duplicate', async () => {
        await db.query('insert into log_test_emails values ($1), ($1)', ['pat.private@example.com']);
      });
      await app.ready();
    });
    after(async () => {
      await app.close();
      await db.close();
    });

    it('reports liveness and readiness', async () => {
      assert.deepEqual((await app.inject('/health/live')).json(), { status: 'ok' });
      const ready = await app.inject('/health/ready');
      assert.equal(ready.statusCode, 200);
    });

    it('exposes request counts, latency by route template and status, and pool use', async () => {
      await app.inject({
        url: '/v1/ledger/accounts/00000000-0000-7000-8000-000000000000',
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      const text = (await app.inject('/metrics')).body;
      assert.match(
        text,
        /http_requests_total\{method="GET",route="\/v1\/ledger\/accounts\/:id",status="404"\} 1/,
      );
      assert.match(
        text,
        /http_request_duration_seconds_bucket\{le="0\.005",method="GET",route="\/v1\/ledger\/accounts\/:id",status="404"\}/,
      );
      assert.match(text, /db_pool_connections_max \d+/);
      assert.match(text, /db_pool_waiting \d+/);
    });

    it('answers unknown routes and methods with a problem', async () => {
      const response = await app.inject('/v2/nothing');
      assert.equal(response.statusCode, 404);
      assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
      assert.deepEqual(response.json(), {
        type: '/problems/route_not_found',
        title: 'No such route',
        status: 404,
        code: 'route_not_found',
        instance: '/v2/nothing',
      });
    });

    it('answers a method a path does not take with 405 and the methods it does', async () => {
      const response = await app.inject({
        method: 'DELETE',
        url: '/health/live?x=1',
      });
      assert.equal(response.statusCode, 405);
      assert.equal(response.headers.allow, 'GET, HEAD');
      assert.equal(response.json().code, 'method_not_allowed');
      const transfers = await app.inject({ method: 'PUT', url: '/v1/ledger/transfers' });
      assert.equal(transfers.statusCode, 405);
      assert.equal(transfers.headers.allow, 'POST');
    });

    it('keeps a plain X-Request-Id and replaces anything else', async () => {
      assert.equal(
        (await app.inject({ url: '/health/live', headers: { 'x-request-id': 'abc-123' } })).headers[
          'x-request-id'
        ],
        'abc-123',
      );
      const replaced = (await app.inject({ url: '/health/live', headers: { 'x-request-id': 'a b<script>' } }))
        .headers['x-request-id'];
      assert.match(String(replaced), /^[0-9a-f-]{36}$/);
    });

    it('answers a programmer error opaquely, naming only the request id', async () => {
      const response = await app.inject({ url: '/test/boom', headers: { 'x-request-id': 'boom-1' } });
      assert.equal(response.statusCode, 500);
      assert.equal(response.json().code, 'internal_error');
      assert.doesNotMatch(response.body, /secret internal detail|at .*\.ts/);
      assert.match(response.body, /boom-1/);
      assert.ok(
        logLines.some((line) => line.includes('secret internal detail')),
        'the log keeps the detail',
      );
    });

    it("logs a database error without the values PostgreSQL's detail quotes", async () => {
      const response = await app.inject('/test/duplicate');
      assert.equal(response.statusCode, 500);
      const logged = logLines.filter((line) => line.includes('log_test_emails_email_key'));
      assert.ok(logged.length > 0, 'the error is logged');
      for (const line of logged) assert.ok(!line.includes('pat.private'), line);
    });

    /** A ledger account opened with `payload` as the JSON body's text, as the operator. */
    const openAccount = (payload: string) =>
      app.inject({
        method: 'POST',
        url: '/v1/ledger/accounts',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        payload,
      });
    const withMetadata = (metadata: unknown) =>
      openAccount(JSON.stringify({ currency: 'EUR', normalBalance: 'credit', metadata }));
    const accountCount = () => db.query<{ n: number }>('select count(*)::int as n from ledger_accounts');

    it('refuses the NUL character anywhere in a JSON body, and stores nothing', async () => {
      const before = await accountCount();
      for (const payload of [
        '{"currency":"EUR","normalBalance":"credit","metadata":{"note":"a\\u0000b"}}',
        '{"currency":"EUR","normalBalance":"credit","metadata":{"a\\u0000":"b"}}',
        '{"currency":"EUR","normalBalance":"credit","metadata":{"list":["x","\\u0000"]}}',
      ]) {
        const response = await openAccount(payload);
        assert.equal(response.statusCode, 400, payload);
        assert.equal(response.json().code, 'validation_failed');
      }
      assert.deepEqual(await accountCount(), before);
      // A backslash before "u0000" is plain text, not a NUL.
      const literal = await openAccount(
        '{"currency":"EUR","normalBalance":"credit","metadata":{"note":"\\\\u0000"}}',
      );
      assert.equal(literal.statusCode, 201, literal.body);
      assert.equal(literal.json().metadata.note, '\\u0000');
    });

    it('refuses JSON nested deeper than the limit before anything walks it, and stores nothing', async () => {
      const nested = (levels: number): unknown => (levels === 0 ? 'x' : { a: nested(levels - 1) });
      const create = (metadataLevels: number) => withMetadata(nested(metadataLevels));
      const before = await accountCount();
      // The body's object is one level, the metadata's objects the rest.
      const deepest = await create(JSON_DEPTH_MAX);
      assert.equal(deepest.statusCode, 400, deepest.body);
      assert.equal(deepest.json().code, 'malformed_json');
      assert.match(deepest.json().detail, /at most 32 levels/);
      for (const payload of ['['.repeat(20_000), `${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`]) {
        const response = await openAccount(payload);
        assert.equal(response.statusCode, 400);
        assert.equal(response.json().code, 'malformed_json');
      }
      assert.deepEqual(await accountCount(), before);
      // Exactly at the limit it is the route's own rules that answer.
      assert.notEqual((await create(JSON_DEPTH_MAX - 1)).json().code, 'malformed_json');
    });

    it('counts nesting outside strings only', () => {
      assert.equal(nestsDeeperThan('[[[]]]', 3), false);
      assert.equal(nestsDeeperThan('[[[[]]]]', 3), true);
      assert.equal(nestsDeeperThan(`{"a":"${'['.repeat(50)}"}`, 3), false);
      assert.equal(
        nestsDeeperThan(`{"a":"\\"${'['.repeat(50)}"}`, 3),
        false,
        'an escaped quote ends no string',
      );
      assert.equal(nestsDeeperThan(`{"a":"\\\\",${'['.repeat(5)}1${']'.repeat(5)}}`, 3), true);
      assert.equal(nestsDeeperThan('[1],[2],[3],[4],[5],[6],[7],[8]', 1), false, 'depth, not count');
    });

    it('answers requests refused before routing with a problem too', async () => {
      const badEncoding = await app.inject('/v1/ledger/accounts/%E0%A4%A');
      assert.equal(badEncoding.statusCode, 400);
      assert.match(String(badEncoding.headers['content-type']), /^application\/problem\+json/);
      assert.equal(badEncoding.json().code, 'malformed_request');
      assert.ok(badEncoding.headers['x-request-id']);
      const longSegment = await app.inject({
        url: `/v1/ledger/accounts/${'a'.repeat(120)}`,
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(longSegment.statusCode, 414);
      assert.equal(longSegment.json().code, 'uri_too_long');
      assert.match(String(longSegment.headers['content-type']), /^application\/problem\+json/);
    });

    it("answers a request Node's HTTP parser refuses with a problem, and closes the connection", async () => {
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as AddressInfo;
      const exchange = (request: string) =>
        new Promise<string>((resolve, reject) => {
          const socket = connect(port, '127.0.0.1', () => socket.end(request));
          let answer = '';
          socket.on('data', (chunk) => {
            answer += String(chunk);
          });
          socket.on('error', reject);
          socket.on('close', () => resolve(answer));
        });
      const controlByte = await exchange(
        'GET /health/live HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x7fb\r\n\r\n',
      );
      assert.match(controlByte, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.match(controlByte, /\r\nContent-Type: application\/problem\+json\r\n/);
      assert.equal(
        JSON.parse(controlByte.slice(controlByte.indexOf('\r\n\r\n') + 4)).code,
        'malformed_request',
      );
      const hugeHeaders = await exchange(
        `GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`,
      );
      assert.match(hugeHeaders, /^HTTP\/1\.1 431 /);
      assert.equal(
        JSON.parse(hugeHeaders.slice(hugeHeaders.indexOf('\r\n\r\n') + 4)).code,
        'headers_too_large',
      );
    });

    it('refuses a body too large for the route', async () => {
      const response = await withMetadata({ x: 'y'.repeat(300_000) });
      assert.equal(response.statusCode, 413);
      assert.equal(response.json().code, 'payload_too_large');
    });

    it('never writes the operator token to the log', async () => {
      await app.inject({ url: '/v1/ledger/accounts/x', headers: { authorization: `Bearer ${TOKEN}` } });
      await app.inject({
        url: '/v1/ledger/accounts/x',
        headers: { authorization: 'Bearer wrong-token-value' },
      });
      assert.ok(logLines.length > 0);
      for (const line of logLines) {
        assert.ok(!line.includes(TOKEN) && !line.includes('wrong-token-value'), line);
      }
    });
  });
}
