import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { App } from '../http/app.ts';
import { buildApp } from '../main.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { testPii } from '../testing/pii.ts';

const TOKEN = 'apps-test-operator-token-0123456789abcdef';
const admin = { authorization: `Bearer ${TOKEN}` };

interface Json {
  [key: string]: unknown;
}

for (const database of testDatabases()) {
  describe(`developers and apps on ${database.name}`, () => {
    let db: TestDb;
    let app: App;
    let production: App;
    let emailCounter = 0;

    before(async () => {
      db = await database.open();
      app = buildApp({ db, adminToken: TOKEN, pii: await testPii(db) }).app;
      production = buildApp({ db, adminToken: TOKEN, mode: 'production', pii: await testPii(db) }).app;
      await Promise.all([app.ready(), production.ready()]);
    });
    after(async () => {
      await app.close();
      await production.close();
      await db.close();
    });

    const signUpAndLogIn = async (target = app) => {
      const email = `Dev${++emailCounter}@Example.com`;
      const password = 'correct horse battery staple';
      const created = await target.inject({
        method: 'POST',
        url: '/v1/developers',
        payload: { name: 'Ada', email, password },
      });
      assert.equal(created.statusCode, 201, created.body);
      const session = await target.inject({
        method: 'POST',
        url: '/v1/developers/sessions',
        payload: { email, password },
      });
      assert.equal(session.statusCode, 201, session.body);
      return {
        id: created.json().id as string,
        headers: { authorization: `Bearer ${session.json().token}` },
      };
    };
    const newApp = (extra: Json = {}) => ({
      name: 'Checkout',
      redirectUris: ['https://shop.example/callback', 'http://localhost:3000/cb'],
      scopes: ['openid', 'accounts'],
      tokenEndpointAuthMethod: 'client_secret_basic',
      ...extra,
    });

    it('signs a developer up once per email, logs in, and refuses a wrong password alike for unknown emails', async () => {
      const payload = { name: 'Grace', email: 'grace@example.com', password: 'a long enough password' };
      const created = await app.inject({ method: 'POST', url: '/v1/developers', payload });
      assert.equal(created.statusCode, 201);
      assert.equal(created.json().email, 'grace@example.com');
      assert.equal(created.json().password, undefined);
      const again = await app.inject({
        method: 'POST',
        url: '/v1/developers',
        payload: { ...payload, email: 'GRACE@example.com' },
      });
      assert.deepEqual([again.statusCode, again.json().code], [409, 'email_taken']);
      const wrong = await app.inject({
        method: 'POST',
        url: '/v1/developers/sessions',
        payload: { email: 'grace@example.com', password: 'not the password' },
      });
      const unknown = await app.inject({
        method: 'POST',
        url: '/v1/developers/sessions',
        payload: { email: 'nobody@example.com', password: 'not the password' },
      });
      assert.deepEqual([wrong.statusCode, wrong.json().code], [401, 'invalid_credentials']);
      assert.deepEqual(unknown.json(), { ...wrong.json() });
      const short = await app.inject({
        method: 'POST',
        url: '/v1/developers',
        payload: { ...payload, email: 'x@example.com', password: 'short' },
      });
      assert.equal(short.json().code, 'validation_failed');
      const stored = await db.query<{ password_hash: string }>(
        `select password_hash from developers where email = 'grace@example.com'`,
      );
      assert.match(stored[0]?.password_hash ?? '', /^scrypt\$32768\$8\$1\$/);
    });

    it('ends a session on log-out', async () => {
      const { headers } = await signUpAndLogIn();
      assert.equal((await app.inject({ url: '/v1/developers/me', headers })).statusCode, 200);
      assert.equal(
        (await app.inject({ method: 'DELETE', url: '/v1/developers/sessions/current', headers })).statusCode,
        204,
      );
      assert.equal((await app.inject({ url: '/v1/developers/me', headers })).statusCode, 401);
    });

    it('creates an app as an OAuth client and shows its secret once', async () => {
      const { headers } = await signUpAndLogIn();
      const created = await app.inject({ method: 'POST', url: '/v1/apps', headers, payload: newApp() });
      assert.equal(created.statusCode, 201, created.body);
      const body = created.json();
      assert.equal(body.clientId, body.id);
      assert.match(body.clientSecret, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(body.status, 'active');
      const fetched = (await app.inject({ url: `/v1/apps/${body.id}`, headers })).json();
      assert.equal(fetched.clientSecret, undefined);
      const [stored] = await db.query<{ client_secret_enc: string }>(
        'select client_secret_enc from apps where id = $1',
        [body.id],
      );
      assert.match(String(stored?.client_secret_enc), /^v1\./, 'sealed at rest');
      assert.ok(!stored?.client_secret_enc.includes(body.clientSecret));
      const rotated = (
        await app.inject({ method: 'POST', url: `/v1/apps/${body.id}/secret`, headers })
      ).json();
      assert.notEqual(rotated.clientSecret, body.clientSecret);
      const renamed = await app.inject({
        method: 'PATCH',
        url: `/v1/apps/${body.id}`,
        headers,
        payload: { name: 'Checkout 2' },
      });
      assert.deepEqual(
        [renamed.statusCode, renamed.json().name, renamed.json().clientSecret],
        [200, 'Checkout 2', undefined],
      );
      const listed = (await app.inject({ url: '/v1/apps', headers })).json();
      assert.deepEqual(
        listed.apps.map((a: Json) => a.id),
        [body.id],
      );
    });

    it('creates one app per Idempotency-Key, replays its answer with the secret, and stores that answer sealed', async () => {
      const dev = await signUpAndLogIn();
      const other = await signUpAndLogIn();
      const create = (who: typeof dev, key: string, payload = newApp()) =>
        app.inject({
          method: 'POST',
          url: '/v1/apps',
          headers: { ...who.headers, 'idempotency-key': key },
          payload,
        });
      const first = await create(dev, 'create-checkout-1');
      assert.equal(first.statusCode, 201, first.body);
      assert.equal(first.headers['idempotent-replayed'], undefined);
      const again = await create(dev, 'create-checkout-1');
      assert.equal(again.statusCode, 201);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.deepEqual(again.json(), first.json(), 'the lost answer, secret included, comes back');
      const listed = await app.inject({ method: 'GET', url: '/v1/apps', headers: dev.headers });
      assert.equal(listed.json().apps.length, 1, 'one app, not two');

      const changed = await create(dev, 'create-checkout-1', newApp({ name: 'Another' }));
      assert.deepEqual([changed.statusCode, changed.json().code], [422, 'idempotency_key_reused']);
      const othersKey = await create(other, 'create-checkout-1');
      assert.equal(othersKey.statusCode, 201, 'keys are scoped to the developer');
      assert.notEqual(othersKey.json().clientId, first.json().clientId);

      const rows = await db.query<{ response: unknown; response_enc: string | null }>(
        `select response, response_enc from idempotency_keys where scope like '/v1/apps:%'`,
      );
      assert.equal(rows.length, 2);
      for (const row of rows) {
        assert.equal(row.response, null);
        assert.match(row.response_enc ?? '', /^v1\./);
      }
      const dump = JSON.stringify(rows);
      assert.ok(!dump.includes(first.json().clientSecret) && !dump.includes(othersKey.json().clientSecret));
    });

    it("never shows, changes or deletes another developer's app", async () => {
      const owner = await signUpAndLogIn();
      const other = await signUpAndLogIn();
      const id = (
        await app.inject({ method: 'POST', url: '/v1/apps', headers: owner.headers, payload: newApp() })
      ).json().id;
      const attempts = [
        app.inject({ url: `/v1/apps/${id}`, headers: other.headers }),
        app.inject({
          method: 'PATCH',
          url: `/v1/apps/${id}`,
          headers: other.headers,
          payload: { name: 'mine now' },
        }),
        app.inject({ method: 'POST', url: `/v1/apps/${id}/secret`, headers: other.headers }),
        app.inject({ method: 'DELETE', url: `/v1/apps/${id}`, headers: other.headers }),
      ];
      for (const response of await Promise.all(attempts)) {
        assert.deepEqual([response.statusCode, response.json().code], [404, 'not_found']);
      }
      assert.deepEqual((await app.inject({ url: '/v1/apps', headers: other.headers })).json().apps, []);
      assert.equal(
        (await app.inject({ url: `/v1/apps/${id}`, headers: owner.headers })).json().name,
        'Checkout',
      );
      assert.equal(
        (await app.inject({ method: 'DELETE', url: `/v1/apps/${id}`, headers: owner.headers })).statusCode,
        204,
      );
      assert.equal((await app.inject({ url: `/v1/apps/${id}`, headers: owner.headers })).statusCode, 404);
    });

    it('refuses unsafe app settings', async () => {
      const { headers } = await signUpAndLogIn();
      const cases: [Json, string][] = [
        [{ redirectUris: ['http://shop.example/cb'] }, 'invalid_redirect_uri'],
        [{ redirectUris: ['https://shop.example/cb#frag'] }, 'invalid_redirect_uri'],
        [{ redirectUris: ['/relative'] }, 'invalid_redirect_uri'],
        [{ scopes: ['admin'] }, 'validation_failed'],
        [{ tokenEndpointAuthMethod: 'private_key_jwt' }, 'invalid_client_keys'],
        [
          {
            tokenEndpointAuthMethod: 'private_key_jwt',
            jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'a', y: 'b', d: 'secret' }] },
          },
          'invalid_client_keys',
        ],
        [{ tokenEndpointAuthMethod: 'none' }, 'validation_failed'],
        [{ name: '' }, 'validation_failed'],
        [{ unknown: true }, 'validation_failed'],
      ];
      for (const [change, code] of cases) {
        const response = await app.inject({
          method: 'POST',
          url: '/v1/apps',
          headers,
          payload: newApp(change),
        });
        assert.equal(response.json().code, code, JSON.stringify(change));
      }
      assert.deepEqual((await app.inject({ url: '/v1/apps', headers })).json().apps, []);
      assert.equal(
        (await app.inject({ method: 'POST', url: '/v1/apps', payload: newApp() })).statusCode,
        401,
      );
    });

    it('allows only private_key_jwt client authentication and https redirects in production', async () => {
      const { headers } = await signUpAndLogIn(production);
      const register = (settings: Record<string, unknown>) =>
        production.inject({ method: 'POST', url: '/v1/apps', headers, payload: newApp(settings) });
      const https = { redirectUris: ['https://a.example/cb'] };
      const secret = await register(https);
      assert.equal(secret.json().code, 'auth_method_not_allowed');
      const local = await register({ tokenEndpointAuthMethod: 'tls_client_auth' });
      assert.equal(local.json().code, 'invalid_redirect_uri');
      const mtls = await register({ ...https, tokenEndpointAuthMethod: 'tls_client_auth' });
      assert.equal(mtls.json().code, 'auth_method_not_allowed', 'mutual TLS is not offered yet');
      const keyJwt = { ...https, tokenEndpointAuthMethod: 'private_key_jwt' };
      const ok = await register({
        ...keyJwt,
        jwks: {
          keys: [
            {
              kty: 'EC',
              crv: 'P-256',
              x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
              y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
            },
          ],
        },
      });
      assert.equal(ok.statusCode, 201, ok.body);
      assert.equal(ok.json().clientSecret, undefined);
      // The bank fetches a JWKS URI: never one on its own network.
      for (const jwksUri of [
        'https://127.0.0.1/jwks',
        'https://[::ffff:169.254.169.254]/jwks',
        'https://10.0.0.8/',
      ]) {
        assert.equal((await register({ ...keyJwt, jwksUri })).json().code, 'invalid_client_keys', jwksUri);
      }
    });

    it('lets operators list, suspend and reinstate apps', async () => {
      const { headers } = await signUpAndLogIn();
      const id = (await app.inject({ method: 'POST', url: '/v1/apps', headers, payload: newApp() })).json()
        .id;
      assert.equal(
        (await app.inject({ method: 'POST', url: `/v1/admin/apps/${id}/suspend`, headers })).statusCode,
        401,
      );
      const suspended = await app.inject({
        method: 'POST',
        url: `/v1/admin/apps/${id}/suspend`,
        headers: admin,
      });
      assert.equal(suspended.json().status, 'suspended');
      const change = await app.inject({
        method: 'PATCH',
        url: `/v1/apps/${id}`,
        headers,
        payload: { name: 'x' },
      });
      assert.equal(change.json().code, 'app_suspended');
      assert.equal(
        (await app.inject({ method: 'POST', url: `/v1/admin/apps/${id}/reinstate`, headers: admin })).json()
          .status,
        'active',
      );
      const all = (await app.inject({ url: '/v1/admin/apps?limit=100', headers: admin })).json();
      assert.ok(all.apps.some((a: Json) => a.id === id));
      assert.ok(all.apps.every((a: Json) => a.clientSecret === undefined));
    });
  });
}
