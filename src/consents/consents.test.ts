// Consents end to end: created by the app, named in the authorization request (RFC 9396), shown to and
// approved by the customer, enforced on every call, and revoked with immediate effect.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as client from 'openid-client';
import { eventsAbout } from '../events/outbox.ts';
import type { BuiltApp } from '../main.ts';
import { createCustomer, newClientApp, signUpDeveloper, startBank } from '../testing/bank.ts';
import { location, TestBrowser } from '../testing/browser.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { consumeConsents } from './store.ts';

const TOKEN = 'consent-test-operator-token-0123456789abcdef';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'consent test password';
const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();

for (const database of testDatabases()) {
  describe(`consents on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let issuer: string;
    let developer: Record<string, string>;
    let apps = 0;
    let carolAccounts: string[] = [];

    before(async () => {
      db = await database.open();
      ({ built, issuer } = await startBank(db, {
        adminToken: TOKEN,
        routes: ({ app, requireAccess }) => {
          assert.ok(requireAccess);
          app.get('/v1/test/payment', { onRequest: requireAccess('payments') }, async (request) => ({
            consents: request.access?.consents.map((consent) => consent.id),
          }));
        },
      }));
      developer = await signUpDeveloper(built.app, 'consent-dev@example.com', PASSWORD);
      ({ accountIds: carolAccounts } = await createCustomer(built, {
        username: 'carol',
        password: PASSWORD,
        accounts: [
          { product: 'current', currency: 'EUR' },
          { product: 'current', currency: 'GBP' },
        ],
      }));
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    /** A payments app: its OAuth configuration and an app-level token to manage consents with. */
    const newApp = async () => {
      const { id, config, appToken } = await newClientApp({ built, issuer }, developer, {
        name: `Pay Later ${++apps}`,
        scopes: ['openid', 'payments'],
        redirectUri: REDIRECT,
      });
      const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
        fetch(`${issuer}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${appToken}`,
            ...(body ? { 'content-type': 'application/json' } : {}),
            ...headers,
          },
          ...(body ? { body: JSON.stringify(body) } : {}),
        });
      return { id, config, call };
    };
    const paymentConsent = {
      type: 'payment_initiation',
      instructedAmount: { amount: '12.50', currency: 'EUR' },
      creditor: { name: 'Corner Shop', iban: 'DE89370400440532013000' },
      reference: 'Invoice 42',
      expiresAt: inDays(1),
    };
    const authorize = async (
      app: Awaited<ReturnType<typeof newApp>>,
      consentId: string,
      decision = 'approve',
    ) => {
      const verifier = client.randomPKCECodeVerifier();
      const url = await client.buildAuthorizationUrlWithPAR(app.config, {
        redirect_uri: REDIRECT,
        scope: 'openid offline_access payments',
        // OpenID Connect Core §11: offline_access is granted only with prompt=consent.
        prompt: 'consent',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        authorization_details: JSON.stringify([{ type: 'payment_initiation', consentId }]),
      });
      const browser = new TestBrowser(issuer);
      const interaction = location(await browser.get(url));
      const signedIn = await browser.postForm(`${interaction}/login`, {
        username: 'carol',
        password: PASSWORD,
        code: '123456',
      });
      const consentUrl = location(await browser.get(location(signedIn)));
      const page = await (await browser.get(consentUrl)).text();
      // The payment is in EUR: only the EUR account is offered to pay from.
      const decided = await browser.postForm(`${consentUrl}/confirm`, {
        decision,
        account: carolAccounts[0] ?? '',
      });
      const callback = new URL(location(await browser.get(location(decided))));
      return { page, callback, verifier };
    };

    it('binds the authorisation to the exact payment the customer saw, and ends it on revocation', async () => {
      const app = await newApp();
      const created = await app.call('POST', '/v1/consents', paymentConsent);
      assert.equal(created.status, 201);
      const consent = (await created.json()) as { id: string; status: string };
      assert.equal(consent.status, 'awaiting_authorisation');
      // The terms name the payee: sealed at rest, shown to whoever may see the consent.
      const [stored] = await db.query<{ details: string }>(
        'select details::text as details from consents where id = $1',
        [consent.id],
      );
      assert.ok(stored && !stored.details.includes('Corner Shop') && !stored.details.includes('Invoice 42'));

      const { page, callback, verifier } = await authorize(app, consent.id);
      assert.match(
        page,
        /Pay 12\.50 EUR to Corner Shop \(DE89370400440532013000\), reference &quot;Invoice 42&quot;, once/,
      );
      const tokens = await client.authorizationCodeGrant(app.config, callback, {
        pkceCodeVerifier: verifier,
      });
      assert.deepEqual(tokens.authorization_details, [{ type: 'payment_initiation', consentId: consent.id }]);
      const status = (await (await app.call('GET', `/v1/consents/${consent.id}`)).json()) as {
        status: string;
      };
      assert.equal(status.status, 'authorised');

      const use = () =>
        fetch(`${issuer}/v1/test/payment`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      assert.deepEqual(await (await use()).json(), { consents: [consent.id] });
      assert.equal((await app.call('DELETE', `/v1/consents/${consent.id}`)).status, 204);
      assert.equal((await use()).status, 401, 'revocation ends the access token at once');
      assert.ok(tokens.refresh_token);
      await assert.rejects(client.refreshTokenGrant(app.config, tokens.refresh_token), {
        error: 'invalid_grant',
      });
      assert.equal(
        ((await (await app.call('GET', `/v1/consents/${consent.id}`)).json()) as { status: string }).status,
        'revoked',
      );
      // Each step is an event in the outbox, for the app's webhooks.
      const events = await eventsAbout(db, consent.id);
      assert.deepEqual(
        events.map((event) => event.type),
        ['consent.created', 'consent.authorised', 'consent.revoked'],
      );
      assert.ok(typeof events[0]?.payload.clientId === 'string');
    });

    it('consumes the authorised consents of one joint call, each once, with one event each', async () => {
      // A group's payments consume their consents in one statement (src/db/group-commit.ts).
      const app = await newApp();
      const create = async () =>
        ((await (await app.call('POST', '/v1/consents', paymentConsent)).json()) as { id: string }).id;
      const [authorised, awaiting] = [await create(), await create()];
      await authorize(app, authorised);
      const at = new Date();
      const item = (id: string) => ({
        id,
        event: { type: 'consent.consumed', subjectId: id, payload: { consentId: id } },
      });
      assert.deepEqual(await consumeConsents(db, at, [item(authorised), item(awaiting), item(authorised)]), [
        true,
        false,
        false,
      ]);
      const statuses = await db.query<{ id: string; status: string }>(
        'select id, status from consents where id = any($1::text::uuid[])',
        [`{${authorised},${awaiting}}`],
      );
      assert.deepEqual(
        new Map(statuses.map((row) => [row.id, row.status])),
        new Map([
          [authorised, 'consumed'],
          [awaiting, 'awaiting_authorisation'],
        ]),
      );
      const events = (id: string) =>
        eventsAbout(db, id).then((all) =>
          all.map(({ type, payload, createdAt }) => [type, payload, createdAt.getTime()]),
        );
      assert.deepEqual(
        (await events(authorised)).filter(([type]) => type === 'consent.consumed'),
        [['consent.consumed', { consentId: authorised }, at.getTime()]],
      );
      assert.deepEqual(
        (await events(awaiting)).map(([type]) => type),
        ['consent.created'],
      );
      // Once consumed, never again.
      assert.deepEqual(await consumeConsents(db, new Date(), [item(authorised)]), [false]);
    });

    it('records a rejection, and never lets a consent be authorised twice or by another app', async () => {
      const app = await newApp();
      const other = await newApp();
      const rejectedId = (
        (await (await app.call('POST', '/v1/consents', paymentConsent)).json()) as { id: string }
      ).id;
      const { callback } = await authorize(app, rejectedId, 'reject');
      assert.equal(callback.searchParams.get('error'), 'access_denied');
      assert.equal(
        ((await (await app.call('GET', `/v1/consents/${rejectedId}`)).json()) as { status: string }).status,
        'rejected',
      );

      const par = (config: client.Configuration, consentId: string) =>
        client.buildAuthorizationUrlWithPAR(config, {
          redirect_uri: REDIRECT,
          scope: 'openid payments',
          code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
          code_challenge_method: 'S256',
          authorization_details: JSON.stringify([{ type: 'payment_initiation', consentId }]),
        });
      await assert.rejects(par(app.config, rejectedId), { error: 'invalid_authorization_details' });
      const fresh = (
        (await (await app.call('POST', '/v1/consents', paymentConsent)).json()) as { id: string }
      ).id;
      await assert.rejects(par(other.config, fresh), { error: 'invalid_authorization_details' });
      assert.equal(
        (await other.call('GET', `/v1/consents/${fresh}`)).status,
        404,
        "another app's consent does not exist for it",
      );
      assert.equal((await other.call('DELETE', `/v1/consents/${fresh}`)).status, 404);
    });

    it("lets the customer see and revoke their consents, and nobody else's", async () => {
      const app = await newApp();
      const consent = (await (await app.call('POST', '/v1/consents', paymentConsent)).json()) as {
        id: string;
      };
      const { callback, verifier } = await authorize(app, consent.id);
      const tokens = await client.authorizationCodeGrant(app.config, callback, {
        pkceCodeVerifier: verifier,
      });
      const use = () =>
        fetch(`${issuer}/v1/test/payment`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      assert.equal((await use()).status, 200);

      const anonymous = new TestBrowser(issuer);
      assert.equal((await anonymous.get('/v1/me/consents')).status, 401);
      assert.match(
        await (await anonymous.get('/me/consents')).text(),
        /Sign in to review the apps you allowed/,
      );

      await createCustomer(built, { username: 'dave', password: PASSWORD });
      const dave = new TestBrowser(issuer);
      assert.equal(
        location(
          await dave.postForm('/me/sign-in', { username: 'dave', password: PASSWORD, code: '123456' }),
        ),
        '/me/consents',
      );
      assert.deepEqual(
        ((await (await dave.get('/v1/me/consents')).json()) as { consents: unknown[] }).consents,
        [],
      );
      const daveRevokes = await dave.delete(`/v1/me/consents/${consent.id}`);
      assert.equal(daveRevokes.status, 404, "another customer's consent does not exist for Dave");
      assert.equal((await anonymous.delete(`/v1/me/consents/${consent.id}`)).status, 401);

      const carol = new TestBrowser(issuer);
      const wrong = await carol.postForm('/me/sign-in', {
        username: 'carol',
        password: 'wrong',
        code: '123456',
      });
      assert.equal(wrong.status, 401);
      await carol.postForm('/me/sign-in', { username: 'carol', password: PASSWORD, code: '123456' });
      const page = await (await carol.get('/me/consents')).text();
      assert.match(page, /Pay Later \d+<\/strong>: Pay 12\.50 EUR to Corner Shop/);
      const mine = (
        (await (await carol.get('/v1/me/consents')).json()) as { consents: { id: string; status: string }[] }
      ).consents;
      assert.ok(mine.some((c) => c.id === consent.id && c.status === 'authorised'));
      assert.equal(location(await carol.postForm(`/me/consents/${consent.id}/revoke`, {})), '/me/consents');
      assert.equal((await use()).status, 401, 'the customer revoking ends the app token at once');
      assert.equal(
        ((await (await app.call('GET', `/v1/consents/${consent.id}`)).json()) as { status: string }).status,
        'revoked',
      );
      await carol.postForm('/me/sign-out', {});
      assert.equal((await carol.get('/v1/me/consents')).status, 401);
    });

    it('replays a consent creation under the same Idempotency-Key, per app', async () => {
      const app = await newApp();
      const other = await newApp();
      const create = (caller: typeof app, body: unknown, key: string) =>
        caller.call('POST', '/v1/consents', body, { 'idempotency-key': key });
      const first = await create(app, paymentConsent, 'consent-key-1');
      const again = await create(app, paymentConsent, 'consent-key-1');
      assert.equal(first.status, 201);
      assert.equal(again.status, 201);
      assert.equal(again.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(await again.json(), await first.json());
      const changed = await create(app, { ...paymentConsent, reference: 'other' }, 'consent-key-1');
      assert.deepEqual(
        [changed.status, ((await changed.json()) as { code: string }).code],
        [422, 'idempotency_key_reused'],
      );
      const otherApp = await create(other, paymentConsent, 'consent-key-1');
      assert.equal(otherApp.headers.get('idempotent-replayed'), null, 'keys are scoped to the app');
      const refused = await create(app, { ...paymentConsent, expiresAt: inDays(-1) }, 'consent-key-2');
      assert.equal(refused.status, 422);
      const corrected = await create(app, paymentConsent, 'consent-key-2');
      assert.equal(corrected.status, 201, 'a refusal leaves no key behind');
    });

    it('refuses malformed consents', async () => {
      const app = await newApp();
      const cases: [Record<string, unknown>, number, string][] = [
        [
          { ...paymentConsent, instructedAmount: { amount: '12.5', currency: 'EUR' } },
          400,
          'amount_scale_mismatch',
        ],
        [
          { ...paymentConsent, instructedAmount: { amount: '12.50', currency: 'XXX' } },
          400,
          'unsupported_currency',
        ],
        [{ ...paymentConsent, expiresAt: inDays(-1) }, 422, 'invalid_expiry'],
        [{ ...paymentConsent, expiresAt: inDays(400) }, 422, 'invalid_expiry'],
        [{ ...paymentConsent, creditor: { name: 'x', iban: 'not an iban' } }, 400, 'validation_failed'],
        [
          { type: 'account_information', permissions: ['balances'], expiresAt: inDays(30) },
          403,
          'insufficient_scope',
        ],
        [{ type: 'mystery', expiresAt: inDays(1) }, 400, 'validation_failed'],
      ];
      for (const [body, status, code] of cases) {
        const response = await app.call('POST', '/v1/consents', body);
        assert.deepEqual(
          [response.status, ((await response.json()) as { code: string }).code],
          [status, code],
          JSON.stringify(body),
        );
      }
      const anonymous = await fetch(`${issuer}/v1/consents`, {
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(anonymous.status, 401);
    });
  });
}
