// The authorization code flow as a third-party app and a customer live it: PAR, PKCE and DPoP through
// openid-client, the bank's sign-in and consent pages through plain form posts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair } from 'jose';
import * as client from 'openid-client';
import type { BuiltApp } from '../main.ts';
import {
  createCustomer,
  insecure,
  oauthError,
  registerApp,
  signUpDeveloper,
  startBank,
} from '../testing/bank.ts';
import { location, TestBrowser } from '../testing/browser.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';

const TOKEN = 'flow-test-operator-token-0123456789abcdef';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'alice sandbox password';

for (const database of testDatabases()) {
  describe(`authorization code flow on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let issuer: string;
    let config: client.Configuration;
    let customerId: string;
    let usernames = 0;

    before(async () => {
      db = await database.open();
      ({ built, issuer } = await startBank(db, {
        adminToken: TOKEN,
        routes: ({ app, requireAccess }) => {
          assert.ok(requireAccess);
          app.get('/v1/test/whoami', { onRequest: requireAccess('accounts') }, async (request) => ({
            subject: request.access?.subject,
            clientId: request.access?.clientId,
          }));
        },
      }));
      const developer = await signUpDeveloper(built.app, 'flow-dev@example.com', PASSWORD);
      const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
      const created = await registerApp(built.app, developer, {
        name: 'Budget Buddy',
        redirectUris: [REDIRECT],
        scopes: ['openid', 'profile', 'email', 'accounts'],
        tokenEndpointAuthMethod: 'private_key_jwt',
        jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] },
      });
      config = await client.discovery(
        new URL(issuer),
        created.id,
        undefined,
        client.PrivateKeyJwt({ key: privateKey, kid: 'k1' }),
        insecure,
      );
      customerId = await newCustomer();
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    const newCustomer = async (username = `alice${++usernames}`) => {
      // A customer account opening verified, so the bank vouches for them (kyc_verified).
      const { customerId } = await createCustomer(built, {
        username,
        password: PASSWORD,
        legalName: 'Alice Example',
      });
      return customerId;
    };

    /** Starts a flow with PAR and returns the browser at the sign-in page, with what the app must keep. */
    const start = async (scope = 'openid profile email offline_access accounts') => {
      const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const url = await client.buildAuthorizationUrlWithPAR(
        config,
        {
          redirect_uri: REDIRECT,
          scope,
          code_challenge: await client.calculatePKCECodeChallenge(verifier),
          code_challenge_method: 'S256',
          state,
          prompt: 'consent',
        },
        { DPoP },
      );
      const browser = new TestBrowser(issuer);
      const interaction = location(await browser.get(url));
      return { DPoP, verifier, state, browser, interaction };
    };
    /** Signs in and approves; returns the callback URL the browser is sent back to. */
    const signInAndApprove = async (flow: Awaited<ReturnType<typeof start>>, username = 'alice1') => {
      const signedIn = await flow.browser.postForm(`${flow.interaction}/login`, {
        username,
        password: PASSWORD,
        code: '123456',
      });
      const consent = location(await flow.browser.get(location(signedIn)));
      const page = await flow.browser.get(consent);
      assert.match(
        await page.text(),
        /Budget Buddy asks to:[\s\S]*See your accounts, balances and transactions/,
      );
      const approved = await flow.browser.postForm(`${consent}/confirm`, { decision: 'approve' });
      return new URL(location(await flow.browser.get(location(approved))));
    };

    it('runs PAR, sign-in with a second factor, consent, and a DPoP-bound code exchange', async () => {
      const flow = await start();
      const loginPage = await flow.browser.get(flow.interaction);
      assert.equal(loginPage.status, 200);
      const html = await loginPage.text();
      assert.match(html, /<label for="password">Password<\/label>/);
      assert.match(loginPage.headers.get('content-security-policy') ?? '', /default-src 'none'/);
      const callback = await signInAndApprove(flow);
      assert.equal(callback.searchParams.get('iss'), issuer, 'RFC 9207: the issuer comes back with the code');
      const tokens = await client.authorizationCodeGrant(
        config,
        callback,
        { pkceCodeVerifier: flow.verifier, expectedState: flow.state },
        undefined,
        { DPoP: flow.DPoP },
      );
      assert.equal(tokens.token_type, 'dpop');
      const idToken = tokens.claims();
      assert.deepEqual(
        [idToken?.sub, idToken?.name, idToken?.email, idToken?.email_verified, idToken?.kyc_verified],
        [customerId, 'Alice Example', 'alice1@example.com', true, true],
      );
      const response = await client.fetchProtectedResource(
        config,
        tokens.access_token,
        new URL(`${issuer}/v1/test/whoami`),
        'GET',
        undefined,
        undefined,
        {
          DPoP: flow.DPoP,
        },
      );
      assert.deepEqual(await response.json(), {
        subject: customerId,
        clientId: config.clientMetadata().client_id,
      });

      assert.ok(tokens.refresh_token);
      const introspected = await client.tokenIntrospection(config, tokens.refresh_token);
      assert.equal(introspected.active, true);
      const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, {
        DPoP: flow.DPoP,
      });
      assert.ok(refreshed.access_token);
      await client.tokenRevocation(config, tokens.refresh_token);
      assert.equal((await client.tokenIntrospection(config, tokens.refresh_token)).active, false);
      assert.equal(
        await oauthError(
          client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: flow.DPoP }),
        ),
        'invalid_grant',
      );
    });

    it('releases profile and email claims only when asked for', async () => {
      const flow = await start('openid accounts');
      const callback = await signInAndApprove(flow);
      const tokens = await client.authorizationCodeGrant(
        config,
        callback,
        { pkceCodeVerifier: flow.verifier, expectedState: flow.state },
        undefined,
        {
          DPoP: flow.DPoP,
        },
      );
      const claims = tokens.claims();
      assert.equal(claims?.sub, customerId);
      assert.equal(claims?.name, undefined);
      assert.equal(claims?.email, undefined);
      assert.equal(claims?.kyc_verified, undefined);
    });

    it('refuses a code exchanged twice, without its PKCE verifier, or with the wrong one', async () => {
      const flow = await start();
      const callback = await signInAndApprove(flow);
      const wrong = client.randomPKCECodeVerifier();
      assert.equal(
        await oauthError(
          client.authorizationCodeGrant(
            config,
            callback,
            { pkceCodeVerifier: wrong, expectedState: flow.state },
            undefined,
            { DPoP: flow.DPoP },
          ),
        ),
        'invalid_grant',
      );
      const missing = await start();
      const missingCallback = await signInAndApprove(missing);
      assert.equal(
        await oauthError(
          client.authorizationCodeGrant(
            config,
            missingCallback,
            { expectedState: missing.state },
            undefined,
            { DPoP: missing.DPoP },
          ),
        ),
        'invalid_grant',
      );
      const second = await start();
      const secondCallback = await signInAndApprove(second);
      const checks = { pkceCodeVerifier: second.verifier, expectedState: second.state };
      const first = await client.authorizationCodeGrant(config, secondCallback, checks, undefined, {
        DPoP: second.DPoP,
      });
      const whoami = () =>
        client
          .fetchProtectedResource(
            config,
            first.access_token,
            new URL(`${issuer}/v1/test/whoami`),
            'GET',
            undefined,
            undefined,
            { DPoP: second.DPoP },
          )
          .then(
            (response) => response.status,
            (error: { status?: number }) => error.status ?? 0,
          );
      assert.equal(await whoami(), 200);
      assert.equal(
        await oauthError(
          client.authorizationCodeGrant(config, secondCallback, checks, undefined, { DPoP: second.DPoP }),
        ),
        'invalid_grant',
      );
      // RFC 6749 §4.1.2: a code used twice revokes what it gave, the access token already issued too.
      // (The revocation follows the provider's event: waited for, not raced.)
      let after = await whoami();
      for (let tries = 0; tries < 50 && after === 200; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        after = await whoami();
      }
      assert.equal(after, 401);
    });

    it('refuses a redirect URI the app did not register', async () => {
      const verifier = client.randomPKCECodeVerifier();
      const attempt = client.buildAuthorizationUrlWithPAR(config, {
        redirect_uri: 'https://attacker.example/callback',
        scope: 'openid accounts',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      });
      await assert.rejects(attempt, {
        error: 'invalid_request',
        error_description: "redirect_uri did not match any of the client's registered redirect_uris",
      });
    });

    it('sends the customer back with access_denied when they decline', async () => {
      const flow = await start();
      const signedIn = await flow.browser.postForm(`${flow.interaction}/login`, {
        username: 'alice1',
        password: PASSWORD,
        code: '123456',
      });
      const consent = location(await flow.browser.get(location(signedIn)));
      const declined = await flow.browser.postForm(`${consent}/confirm`, { decision: 'reject' });
      const callback = new URL(location(await flow.browser.get(location(declined))));
      assert.equal(callback.searchParams.get('error'), 'access_denied');
      assert.equal(callback.searchParams.get('code'), null);
    });

    it('locks sign-in after repeated failures, and audits every attempt', async () => {
      const id = await newCustomer('mallory-target');
      const flow = await start();
      const attempt = (password: string, code = '123456') =>
        flow.browser.postForm(`${flow.interaction}/login`, { username: 'mallory-target', password, code });
      for (let i = 0; i < 4; i++) assert.equal((await attempt('wrong password')).status, 401);
      assert.equal((await attempt(PASSWORD, '000000')).status, 401, 'a wrong second factor counts too');
      const locked = await attempt(PASSWORD);
      assert.equal(locked.status, 429);
      assert.match(await locked.text(), /locked/);
      const audit = await db.query<{ outcome: string }>(
        'select outcome from login_attempts where customer_id = $1 order by id',
        [id],
      );
      assert.deepEqual(
        audit.map((row) => row.outcome),
        [
          'wrong_credentials',
          'wrong_credentials',
          'wrong_credentials',
          'wrong_credentials',
          'wrong_second_factor',
          'locked',
        ],
      );
      const unknown = await flow.browser.postForm(`${flow.interaction}/login`, {
        username: 'nobody',
        password: 'x',
        code: '1',
      });
      assert.equal(unknown.status, 401);
      const stored = await db.query<{ username_hash: string }>(
        `select username_hash from login_attempts where customer_id is null`,
      );
      assert.ok(
        stored.every((row) => !row.username_hash.includes('nobody')),
        'typed usernames are stored hashed',
      );
    });

    it('shows an error page, not a stack trace, for a stale or foreign interaction', async () => {
      const stranger = new TestBrowser(issuer);
      const response = await stranger.get('/interaction/not-a-real-uid');
      assert.equal(response.status, 400);
      assert.match(await response.text(), /This sign-in cannot continue/);
      const posted = await stranger.postForm('/interaction/not-a-real-uid/login', {
        username: 'alice1',
        password: PASSWORD,
        code: '123456',
      });
      assert.equal(posted.status, 400);
    });
  });
}
