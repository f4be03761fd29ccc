import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as client from 'openid-client';
import type { BuiltApp } from '../main.ts';
import { insecure, registerApp, signUpDeveloper, startBank, startTwoProcesses } from '../testing/bank.ts';
import { POSTGRES_URL, type TestDb, testDatabases } from '../testing/databases.ts';
import { percentile } from './metering.ts';
import { MemoryRateLimiter, RateLimiterUnavailable, RedisRateLimiter, type Window } from './rate-limit.ts';

const TOKEN = 'gateway-test-operator-token-0123456789abcdef';
const admin = { authorization: `Bearer ${TOKEN}` };
const PASSWORD = 'gateway test password';
const REDIS_URL = process.env.TEST_REDIS_URL || undefined;
const SOME_CONSENT = '00000000-0000-7000-8000-000000000000';

describe('latency percentiles from histograms', () => {
  it('reports the upper bound of the bucket holding each quantile', () => {
    // Bounds 1, 2, 5, 10 ms …: 50 calls ≤1 ms, 45 ≤2 ms, 5 ≤10 ms.
    const buckets = [50, 45, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert.deepEqual(
      [percentile(buckets, 0.5), percentile(buckets, 0.95), percentile(buckets, 0.99)],
      [1, 2, 10],
    );
    assert.equal(percentile(new Array(13).fill(0), 0.5), null);
  });
});

describe('rate-limit windows', () => {
  const windows: Window[] = [
    { name: 'minute', limit: 2, seconds: 60 },
    { name: 'day', limit: 3, seconds: 86_400 },
  ];
  it('counts per window and starts again when a window turns over', async () => {
    const limiter = new MemoryRateLimiter();
    const day = new Date('2026-11-26T10:00:00Z');
    const used = async (at: Date) => (await limiter.hit(['k'], windows, at)).map((s) => s.used);
    assert.deepEqual(await used(day), [1, 1]);
    assert.deepEqual(await used(day), [2, 2]);
    assert.deepEqual(await used(new Date('2026-11-26T10:01:00Z')), [1, 3]);
    assert.deepEqual(await used(new Date('2026-11-26T10:02:00Z')), [1, 4], 'the daily quota is over');
    assert.deepEqual(await used(new Date('2026-11-27T00:00:00Z')), [1, 1], 'and resets at 00:00 UTC');
    const [other] = await limiter.hit(['another key'], windows, day);
    assert.equal(other?.used, 1, 'keys are independent');
    // Several keys in one call: each key's windows, key by key.
    const both = await limiter.hit(['another key', 'a third key'], windows, day);
    assert.deepEqual(
      both.map((s) => [s.window.name, s.used]),
      [
        ['minute', 2],
        ['day', 2],
        ['minute', 1],
        ['day', 1],
      ],
    );
  });

  it('enforces one limit across processes through Redis', {
    skip: REDIS_URL ? false : 'TEST_REDIS_URL is not set',
  }, async () => {
    const failures: unknown[] = [];
    const processes = [0, 1].map(
      () => new RedisRateLimiter(REDIS_URL as string, 'closed', (e) => failures.push(e)),
    );
    try {
      const key = `test-${process.pid}-${Date.now()}`;
      const at = new Date();
      const counts: number[] = [];
      for (let i = 0; i < 6; i++) {
        const [state] = await (processes[i % 2] as RedisRateLimiter).hit([key], windows, at);
        counts.push(state?.used ?? -1);
      }
      assert.deepEqual(counts, [1, 2, 3, 4, 5, 6]);
      // An app's key and its customer's key, in one round trip, each with its own counts.
      const both = await (processes[0] as RedisRateLimiter).hit([key, `${key}:customer`], windows, at);
      assert.deepEqual(
        both.map((s) => s.used),
        [7, 7, 1, 1],
      );
      assert.deepEqual(failures, []);
    } finally {
      await Promise.all(processes.map((p) => p.close()));
    }
  });

  it('fails open or closed, as configured, when Redis is unreachable', async () => {
    const reported: unknown[] = [];
    const open = new RedisRateLimiter('redis://127.0.0.1:1', 'open', (e) => reported.push(e));
    const closed = new RedisRateLimiter('redis://127.0.0.1:1', 'closed', (e) => reported.push(e));
    try {
      const [state] = await open.hit(['k'], windows, new Date());
      assert.equal(state?.used, 0, 'open: the call goes through uncounted');
      await assert.rejects(
        Promise.resolve().then(() => closed.hit(['k'], windows, new Date())),
        RateLimiterUnavailable,
      );
      assert.equal(reported.length, 2, 'each failure is reported');
    } finally {
      await Promise.all([open.close(), closed.close()]);
    }
  });
});

for (const database of testDatabases()) {
  describe(`gateway on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let issuer: string;
    let developer: Record<string, string>;
    let appCount = 0;

    before(async () => {
      db = await database.open();
      ({ built, issuer } = await startBank(db, { adminToken: TOKEN }));
      developer = await signUpDeveloper(built.app, 'gateway-dev@example.com', PASSWORD);
      const plan = (id: string, body: Record<string, unknown>) =>
        built.app.inject({
          method: 'PUT',
          url: `/v1/admin/plans/${id}`,
          headers: admin,
          payload: {
            name: id,
            productIds: ['consents'],
            ratePerSecond: 100,
            ratePerMinute: 1000,
            dailyQuota: 10000,
            requiresApproval: false,
            ...body,
          },
        });
      assert.equal((await plan('tiny', { ratePerMinute: 3 })).statusCode, 200);
      assert.equal((await plan('no-consents', { productIds: ['accounts'] })).statusCode, 200);
      assert.equal((await plan('partner', { requiresApproval: true })).statusCode, 200);
      assert.equal((await plan('bogus', { productIds: ['nope'] })).json().code, 'unknown_product');
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    /** An app on `planId` (the default plan when undefined) and a caller with its client-credentials token. */
    const appOn = async (planId?: string) => {
      const created = (
        await built.app.inject({
          method: 'POST',
          url: '/v1/apps',
          headers: developer,
          payload: {
            name: `App ${++appCount}`,
            redirectUris: ['http://localhost/cb'],
            scopes: ['payments'],
            tokenEndpointAuthMethod: 'client_secret_basic',
          },
        })
      ).json();
      if (planId) {
        const chosen = await built.app.inject({
          method: 'PUT',
          url: `/v1/apps/${created.id}/subscription`,
          headers: developer,
          payload: { planId },
        });
        assert.equal(chosen.statusCode, 200, chosen.body);
      }
      const config = await client.discovery(
        new URL(issuer),
        created.id,
        undefined,
        client.ClientSecretBasic(created.clientSecret),
        insecure,
      );
      const token = (await client.clientCredentialsGrant(config, { scope: 'payments' })).access_token;
      return {
        id: created.id as string,
        call: () =>
          fetch(`${issuer}/v1/consents/${SOME_CONSENT}`, { headers: { authorization: `Bearer ${token}` } }),
      };
    };
    const code = async (response: Response) => ((await response.json()) as { code: string }).code;

    it('subscribes new apps to the default plan and says where each call stands', async () => {
      const app = await appOn();
      const subscription = (
        await built.app.inject({ url: `/v1/apps/${app.id}/subscription`, headers: developer })
      ).json();
      assert.deepEqual(subscription, { appId: app.id, planId: 'standard', status: 'active' });
      const response = await app.call();
      assert.equal(response.status, 404, 'through the gateway to the route');
      assert.equal(
        response.headers.get('ratelimit-policy'),
        '"second";q=50;w=1, "minute";q=1000;w=60, "day";q=100000;w=86400',
      );
      assert.match(response.headers.get('ratelimit') ?? '', /^"second";r=49;t=1$/);
    });

    it('keeps the default plan the default when an operator changes it without saying, and unsets it only when told', async () => {
      const listed = await built.app.inject({ url: '/v1/admin/plans', headers: admin });
      const { id, isDefault, ...standard } = listed
        .json()
        .plans.find((p: { id: string }) => p.id === 'standard');
      assert.equal(isDefault, true);
      const put = (body: object) =>
        built.app.inject({ method: 'PUT', url: `/v1/admin/plans/${id}`, headers: admin, payload: body });
      const changed = await put({ ...standard, ratePerSecond: 60 });
      assert.equal(changed.statusCode, 200, changed.body);
      assert.equal(changed.json().isDefault, true, 'still the default');
      const subscription = async () => {
        const app = await appOn();
        return (
          await built.app.inject({ url: `/v1/apps/${app.id}/subscription`, headers: developer })
        ).json();
      };
      assert.equal((await subscription()).planId, 'standard');
      assert.equal((await put({ ...standard, isDefault: false })).json().isDefault, false);
      assert.equal(
        (await subscription()).code,
        'not_found',
        'told to, there is no default plan: no subscription',
      );
      assert.equal((await put({ ...standard, isDefault: true })).json().isDefault, true);
    });

    it('limits each app on its own', async () => {
      const limited = await appOn('tiny');
      const other = await appOn('tiny');
      for (let i = 0; i < 3; i++) assert.equal((await limited.call()).status, 404);
      const refused = await limited.call();
      assert.equal(refused.status, 429);
      assert.equal(await code(refused), 'rate_limited');
      assert.ok(Number(refused.headers.get('retry-after')) > 0);
      assert.match(refused.headers.get('ratelimit') ?? '', /^"minute";r=0;t=\d+$/);
      assert.equal((await other.call()).status, 404, 'another app on the same plan is not affected');
      const metrics = (await built.app.inject('/metrics')).body;
      assert.match(metrics, /gateway_rejections_total\{reason="rate_limited"\} [1-9]/);
    });

    it('refuses products outside the plan, and plans awaiting approval until approved', async () => {
      const outside = await appOn('no-consents');
      const refused = await outside.call();
      assert.deepEqual([refused.status, await code(refused)], [403, 'product_not_in_plan']);
      const pending = await appOn('partner');
      const waiting = await pending.call();
      assert.deepEqual([waiting.status, await code(waiting)], [403, 'subscription_pending']);
      const approved = await built.app.inject({
        method: 'POST',
        url: `/v1/admin/apps/${pending.id}/subscription/approve`,
        headers: admin,
      });
      assert.equal(approved.json().status, 'active');
      assert.equal((await pending.call()).status, 404);
    });

    it('meters every call per product and minute, and reports usage with latency percentiles', async () => {
      const app = await appOn();
      const from = new Date(Date.now() - 60_000).toISOString();
      for (let i = 0; i < 5; i++) await app.call();
      const to = new Date(Date.now() + 60_000).toISOString();
      const usage = await built.app.inject({
        url: `/v1/apps/${app.id}/usage?from=${from}&to=${to}`,
        headers: developer,
      });
      assert.equal(usage.statusCode, 200, usage.body);
      const [consents] = usage.json().products;
      assert.equal(consents.product, 'consents');
      assert.equal(consents.calls, 5);
      assert.equal(consents.errors, 5, 'the 404s count as errors');
      assert.ok(
        typeof consents.latencyMs.p50 === 'number' && consents.latencyMs.p99 >= consents.latencyMs.p50,
      );
      const metrics = (await built.app.inject('/metrics')).body;
      assert.match(
        metrics,
        new RegExp(`api_calls_total\\{app="${app.id}",product="consents",status="404"\\} 5`),
      );
      const badRange = await built.app.inject({
        url: `/v1/apps/${app.id}/usage?from=${to}&to=${from}`,
        headers: developer,
      });
      assert.equal(badRange.statusCode, 400);
      // Instants PostgreSQL cannot store: year 0000, and a year past 9999 once the offset is applied.
      const unstorable: [string, string][] = [
        ['0000-01-01T00:00:00Z', '0000-01-02T00:00:00Z'],
        ['9999-12-31T23:00:00-23:59', '9999-12-31T23:30:00-23:59'],
      ];
      for (const [start, end] of unstorable) {
        const outOfRange = await built.app.inject({
          url: `/v1/apps/${app.id}/usage?from=${encodeURIComponent(start)}&to=${encodeURIComponent(end)}`,
          headers: developer,
        });
        assert.equal(outOfRange.statusCode, 400, `${start}: ${outOfRange.body}`);
        assert.match(String(outOfRange.headers['content-type']), /^application\/problem\+json/);
      }
    });

    it("keeps developers to their own apps' subscriptions", async () => {
      const app = await appOn();
      const email = 'other-gateway-dev@example.com';
      await built.app.inject({
        method: 'POST',
        url: '/v1/developers',
        payload: { name: 'Other', email, password: PASSWORD },
      });
      const session = (
        await built.app.inject({
          method: 'POST',
          url: '/v1/developers/sessions',
          payload: { email, password: PASSWORD },
        })
      ).json();
      const other = { authorization: `Bearer ${session.token}` };
      assert.equal(
        (await built.app.inject({ url: `/v1/apps/${app.id}/subscription`, headers: other })).statusCode,
        404,
      );
      const change = await built.app.inject({
        method: 'PUT',
        url: `/v1/apps/${app.id}/subscription`,
        headers: other,
        payload: { planId: 'tiny' },
      });
      assert.equal(change.statusCode, 404);
      const usage = await built.app.inject({
        url: `/v1/apps/${app.id}/usage?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z`,
        headers: other,
      });
      assert.equal(usage.statusCode, 404);
    });
  });
}

describe('one limit across two server processes', {
  skip: REDIS_URL && POSTGRES_URL ? false : 'needs TEST_REDIS_URL and TEST_DATABASE_URL',
}, () => {
  it('counts calls to either process against the same plan limit', async () => {
    const { a, b, close } = await startTwoProcesses(POSTGRES_URL as string, REDIS_URL as string, {
      adminToken: TOKEN,
    });
    try {
      const developer = await signUpDeveloper(a.built.app, 'two-processes@example.com', PASSWORD);
      await a.built.app.inject({
        method: 'PUT',
        url: '/v1/admin/plans/shared-tiny',
        headers: admin,
        payload: {
          name: 'shared',
          productIds: ['consents'],
          ratePerSecond: 100,
          ratePerMinute: 4,
          dailyQuota: 100,
          requiresApproval: false,
        },
      });
      const created = await registerApp(a.built.app, developer, {
        name: 'Two processes',
        redirectUris: ['http://localhost/cb'],
        scopes: ['payments'],
        tokenEndpointAuthMethod: 'client_secret_basic',
      });
      await a.built.app.inject({
        method: 'PUT',
        url: `/v1/apps/${created.id}/subscription`,
        headers: developer,
        payload: { planId: 'shared-tiny' },
      });
      const config = await client.discovery(
        new URL(a.issuer),
        created.id,
        undefined,
        client.ClientSecretBasic(created.clientSecret ?? ''),
        insecure,
      );
      const { access_token: token } = await client.clientCredentialsGrant(config, { scope: 'payments' });
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const port = i % 2 === 0 ? a.port : b.port;
        const response = await fetch(`http://127.0.0.1:${port}/v1/consents/${SOME_CONSENT}`, {
          headers: { authorization: `Bearer ${token}` },
        });
        statuses.push(response.status);
      }
      assert.deepEqual(
        statuses,
        [404, 404, 404, 404, 429, 429],
        'four calls per minute in all, whichever process answers',
      );
    } finally {
      await close();
    }
  });
});
