// The production profile (FAPI 2.0 Security Profile) refuses what the sandbox tolerates.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair } from 'jose';
import * as client from 'openid-client';
import { totpFor } from '../customer-auth/service.ts';
import type { BuiltApp } from '../main.ts';
import { insecure, oauthError, registerApp, signUpDeveloper, startBank } from '../testing/bank.ts';
import { location, TestBrowser } from '../testing/browser.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';

const TOKEN = 'fapi-test-operator-token-0123456789abcdef';
const REDIRECT = 'https://tpp.example/callback';
const PASSWORD = 'a production password';

const [database] = testDatabases();

describe('FAPI 2.0 production profile', () => {
  let db: TestDb;
  let built: BuiltApp;
  let issuer: string;
  let config: client.Configuration;

  before(async () => {
    assert.ok(database);
    db = await database.open();
    ({ built, issuer } = await startBank(db, {
      adminToken: TOKEN,
      mode: 'production',
      routes: ({ app, requireAccess }) => {
        assert.ok(requireAccess);
        app.get('/v1/test/whoami', { onRequest: requireAccess('accounts') }, async (request) => ({
          subject: request.access?.subject,
        }));
      },
    }));
    const developer = await signUpDeveloper(built.app, 'fapi-dev@example.com', PASSWORD);
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const created = await registerApp(built.app, developer, {
      name: 'Regulated TPP',
      redirectUris: [REDIRECT],
      scopes: ['openid', 'accounts'],
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
  });
  after(async () => {
    await built.app.close();
    await db.close();
  });

  it('issues only sender-constrained tokens', async () => {
    assert.equal(
      await oauthError(client.clientCredentialsGrant(config, { scope: 'accounts' })),
      'invalid_grant',
    );
    const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
    const tokens = await client.clientCredentialsGrant(config, { scope: 'accounts' }, { DPoP });
    assert.equal(tokens.token_type, 'dpop');
    const asBearer = await fetch(`${issuer}/v1/test/whoami`, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    assert.equal(asBearer.status, 401);
  });

  it('requires pushed authorization requests and PKCE', async () => {
    const direct = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid accounts',
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const refused = await fetch(direct, { redirect: 'manual' });
    const errorLocation = new URL(refused.headers.get('location') ?? '', issuer);
    assert.equal(errorLocation.searchParams.get('error'), 'invalid_request');
    assert.match(
      errorLocation.searchParams.get('error_description') ?? '',
      /Pushed Authorization Request must be used/,
    );
    assert.equal(
      await oauthError(
        client.buildAuthorizationUrlWithPAR(config, { redirect_uri: REDIRECT, scope: 'openid accounts' }),
      ),
      'invalid_request',
    );
  });

  it('asks for a real TOTP code as the second factor, once per code', async () => {
    const login = await built.customerAuth?.createLogin({
      username: 'prod-customer',
      password: PASSWORD,
      displayName: 'Prod Customer',
      email: 'prod@example.com',
      emailVerified: true,
    });
    assert.ok(login?.totpSecret, 'production logins get a TOTP secret');
    const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
    const verifier = client.randomPKCECodeVerifier();
    const url = await client.buildAuthorizationUrlWithPAR(
      config,
      {
        redirect_uri: REDIRECT,
        scope: 'openid accounts',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      },
      { DPoP },
    );
    const browser = new TestBrowser(issuer);
    const interaction = location(await browser.get(url));
    const page = await (await browser.get(interaction)).text();
    assert.doesNotMatch(page, /123456/, 'no sandbox hint in production');
    const sandboxCode = await browser.postForm(`${interaction}/login`, {
      username: 'prod-customer',
      password: PASSWORD,
      code: '123456',
    });
    assert.equal(sandboxCode.status, 401);
    const code = totpFor(login.totpSecret).generate();
    const signedIn = await browser.postForm(`${interaction}/login`, {
      username: 'prod-customer',
      password: PASSWORD,
      code,
    });
    assert.equal(signedIn.status, 303);
    const again = await client.buildAuthorizationUrlWithPAR(
      config,
      {
        redirect_uri: REDIRECT,
        scope: 'openid accounts',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        prompt: 'login',
      },
      { DPoP },
    );
    const second = new TestBrowser(issuer);
    const secondInteraction = location(await second.get(again));
    const reused = await second.postForm(`${secondInteraction}/login`, {
      username: 'prod-customer',
      password: PASSWORD,
      code,
    });
    assert.equal(reused.status, 401, 'a TOTP code is accepted once');
  });
});
