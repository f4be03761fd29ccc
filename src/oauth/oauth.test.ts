// The authorization and resource servers against a real OAuth client library (openid-client), over HTTP.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  calculateJwkThumbprint,
  decodeJwt,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  type KeyInput,
  SignJWT,
  UnsecuredJWT,
} from 'jose';
import * as client from 'openid-client';
import { openDb } from '../db/db.ts';
import { migrate } from '../db/migrate.ts';
import { type BuiltApp, buildApp } from '../main.ts';
import { insecure, oauthError, signUpDeveloper, startBank } from '../testing/bank.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { testPii } from '../testing/pii.ts';
import { generateOAuthKeys, type OAuthKeys } from './keys.ts';

const TOKEN = 'oauth-test-operator-token-0123456789abcdef';

for (const database of testDatabases()) {
  describe(`OAuth on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let issuer: string;
    let keys: OAuthKeys;
    let developer: Record<string, string>;
    let counter = 0;

    before(async () => {
      db = await database.open();
      ({ built, issuer, keys } = await startBank(db, {
        adminToken: TOKEN,
        routes: ({ app, requireAccess }) => {
          assert.ok(requireAccess);
          app.get('/v1/test/whoami', { onRequest: requireAccess('accounts') }, async (request) => ({
            ...request.access,
            scopes: [...(request.access?.scopes ?? [])],
          }));
          app.get('/v1/test/payments', { onRequest: requireAccess('payments') }, async () => ({ ok: true }));
        },
      }));
      developer = await signUpDeveloper(built.app, 'oauth-dev@example.com');
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    const createApp = async (settings: Record<string, unknown> = {}) => {
      const response = await built.app.inject({
        method: 'POST',
        url: '/v1/apps',
        headers: developer,
        payload: {
          name: `App ${++counter}`,
          redirectUris: ['http://localhost:3000/callback'],
          scopes: ['accounts'],
          tokenEndpointAuthMethod: 'client_secret_basic',
          ...settings,
        },
      });
      assert.equal(response.statusCode, 201, response.body);
      return response.json() as { id: string; clientSecret?: string };
    };
    const secretClient = async (scopes = ['accounts']) => {
      const created = await createApp({ scopes });
      return {
        id: created.id,
        config: await client.discovery(
          new URL(issuer),
          created.id,
          undefined,
          client.ClientSecretBasic(created.clientSecret ?? ''),
          insecure,
        ),
      };
    };
    const whoami = (token: string, scheme = 'Bearer', extra: Record<string, string> = {}) =>
      fetch(`${issuer}/v1/test/whoami`, { headers: { authorization: `${scheme} ${token}`, ...extra } });
    /** The hash of an access token a DPoP proof names (`ath`, RFC 9449 §4.2). */
    const athOf = (token: string) => createHash('sha256').update(token).digest('base64url');
    /** A DPoP proof for GET /v1/test/whoami, made now, signed by `signer`; `claims` add to or replace its own. */
    const whoamiProof = (
      signer: KeyInput,
      header: { jwk: JWK; alg?: string; typ?: string },
      claims: Record<string, unknown> = {},
    ) =>
      new SignJWT({
        jti: crypto.randomUUID(),
        iat: Math.floor(Date.now() / 1000),
        htm: 'GET',
        htu: `${issuer}/v1/test/whoami`,
        ...claims,
      })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', ...header })
        .sign(signer);
    const signAccessToken = async (
      claims: Record<string, unknown>,
      key: JWK = keys.signingKeys[0] as JWK,
      header: { typ?: string; kid?: string } = {},
    ) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: key.alg ?? 'ES256', typ: 'at+jwt', kid: key.kid as string, ...header })
        .sign(await importJWK(key, key.alg ?? 'ES256'));

    it('publishes its metadata: PAR, DPoP, iss in responses, FAPI algorithms', async () => {
      const metadata = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as Record<
        string,
        unknown
      >;
      assert.equal(metadata.issuer, issuer);
      assert.equal(metadata.token_endpoint, `${issuer}/oauth/token`);
      assert.equal(metadata.pushed_authorization_request_endpoint, `${issuer}/oauth/par`);
      assert.equal(metadata.authorization_response_iss_parameter_supported, true);
      assert.deepEqual(metadata.dpop_signing_alg_values_supported, ['ES256', 'EdDSA', 'Ed25519']);
      assert.deepEqual(metadata.code_challenge_methods_supported, ['S256']);
      const jwks = (await (await fetch(`${issuer}/oauth/jwks`)).json()) as { keys: JWK[] };
      assert.deepEqual(jwks.keys.map((key) => key.alg).sort(), ['ES256', 'PS256']);
      assert.ok(
        jwks.keys.every((key) => key.d === undefined),
        'no private key material is published',
      );
    });

    it('issues a client-credentials JWT access token that the API accepts', async () => {
      const { id, config } = await secretClient();
      const tokens = await client.clientCredentialsGrant(config, { scope: 'accounts' });
      assert.equal(tokens.token_type, 'bearer');
      const claims = decodeJwt(tokens.access_token);
      assert.deepEqual(
        [claims.iss, claims.aud, claims.client_id, claims.scope],
        [issuer, `${issuer}/v1`, id, 'accounts'],
      );
      const response = await whoami(tokens.access_token);
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), {
        clientId: id,
        subject: id,
        scopes: ['accounts'],
        authorizationDetails: [],
        consents: [],
        tokenId: claims.jti,
      });
    });

    it('authenticates a client with private_key_jwt', async () => {
      const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
      const created = await createApp({
        tokenEndpointAuthMethod: 'private_key_jwt',
        jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] },
      });
      assert.equal(created.clientSecret, undefined);
      const config = await client.discovery(
        new URL(issuer),
        created.id,
        undefined,
        client.PrivateKeyJwt({ key: privateKey, kid: 'k1' }),
        insecure,
      );
      const tokens = await client.clientCredentialsGrant(config, { scope: 'accounts' });
      assert.equal((await whoami(tokens.access_token)).status, 200);
      const other = await generateKeyPair('ES256');
      const impostor = await client.discovery(
        new URL(issuer),
        created.id,
        undefined,
        client.PrivateKeyJwt({ key: other.privateKey, kid: 'k1' }),
        insecure,
      );
      assert.equal(
        await oauthError(client.clientCredentialsGrant(impostor, { scope: 'accounts' })),
        'invalid_client',
      );
    });

    it('refuses a wrong secret and a scope the app was not registered for', async () => {
      const created = await createApp();
      const wrong = await client.discovery(
        new URL(issuer),
        created.id,
        undefined,
        client.ClientSecretBasic('not-the-secret'),
        insecure,
      );
      assert.equal(
        await oauthError(client.clientCredentialsGrant(wrong, { scope: 'accounts' })),
        'invalid_client',
      );
      const { config } = await secretClient(['accounts']);
      assert.equal(
        await oauthError(client.clientCredentialsGrant(config, { scope: 'payments' })),
        'invalid_scope',
      );
    });

    it('binds a token to a DPoP key and checks every proof', async () => {
      const { config } = await secretClient();
      const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
      const tokens = await client.clientCredentialsGrant(config, { scope: 'accounts' }, { DPoP });
      assert.equal(tokens.token_type, 'dpop');
      const url = new URL(`${issuer}/v1/test/whoami?page=2`);
      const ok = await client.fetchProtectedResource(
        config,
        tokens.access_token,
        url,
        'GET',
        undefined,
        undefined,
        { DPoP },
      );
      assert.equal(ok.status, 200);

      const proof = async (claims: Record<string, unknown>) => {
        const pair = await generateKeyPair('ES256', { extractable: true });
        return whoamiProof(pair.privateKey, { jwk: await exportJWK(pair.publicKey) }, claims);
      };
      const failures = async (headers: Record<string, string>) => {
        const response = await whoami(tokens.access_token, 'DPoP', headers);
        return [response.status, ((await response.json()) as { code: string }).code];
      };
      // The bound key is not exportable from openid-client's handle, so the negative proofs use fresh keys:
      // every one of them must fail, whichever check catches it first.
      assert.deepEqual(await failures({}), [401, 'invalid_dpop_proof']);
      assert.deepEqual(await failures({ dpop: await proof({}) }), [401, 'invalid_dpop_proof']);
      const asBearer = await whoami(tokens.access_token);
      assert.equal(asBearer.status, 401);
      assert.match(asBearer.headers.get('www-authenticate') ?? '', /^DPoP error="invalid_token"/);

      // A replayed proof: capture one openid-client made, then send it again.
      let captured = '';
      config[client.customFetch] = (input: string, init: RequestInit) => {
        captured = new Headers(init.headers).get('dpop') ?? '';
        return fetch(input, init);
      };
      await client.fetchProtectedResource(
        config,
        tokens.access_token,
        new URL(`${issuer}/v1/test/whoami`),
        'GET',
        undefined,
        undefined,
        { DPoP },
      );
      delete config[client.customFetch];
      assert.deepEqual(await failures({ dpop: captured }), [401, 'invalid_dpop_proof']);
      const otherUrl = await fetch(`${issuer}/v1/test/payments`, {
        headers: { authorization: `DPoP ${tokens.access_token}`, dpop: captured },
      });
      assert.equal(otherUrl.status, 401);
    });

    it('checks every part of a proof signed by the bound key, and refuses one that carries the private key', async () => {
      const { config } = await secretClient();
      const keys = await generateKeyPair('ES256', { extractable: true });
      const DPoP = client.getDPoPHandle(config, keys);
      const tokens = await client.clientCredentialsGrant(config, { scope: 'accounts' }, { DPoP });
      const privateJwk = await exportJWK(keys.privateKey);
      const { d: _d, ...publicJwk } = privateJwk;
      const stranger = await generateKeyPair('ES256');
      const proof = (
        claims: Record<string, unknown> = {},
        header: { jwk?: JWK; typ?: string } = {},
        signer: KeyInput = keys.privateKey,
      ) => whoamiProof(signer, { jwk: publicJwk, ...header }, { ath: athOf(tokens.access_token), ...claims });
      const call = async (dpop: string) => (await whoami(tokens.access_token, 'DPoP', { dpop })).status;
      assert.equal(await call(await proof()), 200, 'a proof signed by the bound key passes');
      const refused: [string, string][] = [
        ['the private key in its header', await proof({}, { jwk: privateJwk })],
        ['signed by another key under the bound key', await proof({}, {}, stranger.privateKey)],
        ['another type of JWT', await proof({}, { typ: 'JWT' })],
        ['issued five minutes ago', await proof({ iat: Math.floor(Date.now() / 1000) - 300 })],
        ['its time as text', await proof({ iat: String(Math.floor(Date.now() / 1000)) })],
        ['for another method', await proof({ htm: 'POST' })],
        ['for another token', await proof({ ath: athOf('x') })],
      ];
      for (const [name, dpop] of refused) assert.equal(await call(dpop), 401, name);

      // Ed25519, the other algorithm the bank accepts for proofs: named Ed25519 (RFC 9864), as openid-client
      // signs them, from the token endpoint to the API.
      const edClient = await secretClient();
      const edDPoP = client.getDPoPHandle(edClient.config, await client.randomDPoPKeyPair('EdDSA'));
      const edGrant = await client.clientCredentialsGrant(
        edClient.config,
        { scope: 'accounts' },
        { DPoP: edDPoP },
      );
      const edResource = await client.fetchProtectedResource(
        edClient.config,
        edGrant.access_token,
        new URL(`${issuer}/v1/test/whoami`),
        'GET',
        undefined,
        undefined,
        { DPoP: edDPoP },
      );
      assert.equal(edResource.status, 200);
      // And named EdDSA, on a token bound to such a key.
      const ed = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
      const edJwk = await exportJWK(ed.publicKey);
      const nowS = Math.floor(Date.now() / 1000);
      const edToken = await signAccessToken({
        iss: issuer,
        aud: `${issuer}/v1`,
        client_id: edClient.id,
        sub: edClient.id,
        scope: 'accounts',
        jti: crypto.randomUUID(),
        iat: nowS,
        exp: nowS + 60,
        cnf: { jkt: await calculateJwkThumbprint(edJwk) },
      });
      const edProof = (signer: KeyInput) =>
        whoamiProof(signer, { jwk: edJwk, alg: 'EdDSA' }, { iat: nowS, ath: athOf(edToken) });
      const edCall = async (signer: KeyInput) =>
        (await whoami(edToken, 'DPoP', { dpop: await edProof(signer) })).status;
      assert.equal(await edCall(ed.privateKey), 200);
      assert.equal(await edCall((await generateKeyPair('EdDSA', { crv: 'Ed25519' })).privateKey), 401);
    });

    it('refuses forged, expired and misdirected tokens', async () => {
      const { id } = await secretClient();
      const base = { iss: issuer, aud: `${issuer}/v1`, client_id: id, sub: id, scope: 'accounts', jti: 'x' };
      const nowS = Math.floor(Date.now() / 1000);
      const genuine = await signAccessToken({ ...base, iat: nowS, exp: nowS + 60 });
      assert.equal(
        (await whoami(genuine)).status,
        200,
        'a correctly signed token passes: the cases below differ in one way each',
      );
      const stranger = await generateKeyPair('ES256', { extractable: true });
      const strangerJwk = {
        ...(await exportJWK(stranger.privateKey)),
        kid: (keys.signingKeys[0] as JWK).kid,
      };
      const rsa = keys.signingKeys.find((key) => key.alg === 'PS256') as JWK;
      assert.equal(
        (await whoami(await signAccessToken({ ...base, iat: nowS, exp: nowS + 60 }, rsa))).status,
        200,
        "a token signed with the bank's other key (PS256) passes too",
      );
      const expired = await whoami(await signAccessToken({ ...base, iat: nowS - 600, exp: nowS - 300 }));
      assert.equal(expired.status, 401);
      assert.match(expired.headers.get('www-authenticate') ?? '', /the access token has expired/);
      const { client_id: _clientId, ...noClient } = base;
      const cases: [string, string][] = [
        ['alg none', new UnsecuredJWT({ ...base, iat: nowS, exp: nowS + 60 }).encode()],
        ['another key', await signAccessToken({ ...base, iat: nowS, exp: nowS + 60 }, strangerJwk)],
        [
          'an unknown key id',
          await signAccessToken({ ...base, iat: nowS, exp: nowS + 60 }, undefined, { kid: 'unknown' }),
        ],
        [
          "the RSA key's id over an ES256 signature",
          await signAccessToken({ ...base, iat: nowS, exp: nowS + 60 }, undefined, {
            kid: rsa.kid as string,
          }),
        ],
        ['expired', await signAccessToken({ ...base, iat: nowS - 600, exp: nowS - 300 })],
        ['not yet valid', await signAccessToken({ ...base, iat: nowS, nbf: nowS + 300, exp: nowS + 600 })],
        ['no expiry', await signAccessToken({ ...base, iat: nowS })],
        ['no client', await signAccessToken({ ...noClient, iat: nowS, exp: nowS + 60 })],
        [
          'another type of token (an ID token)',
          await signAccessToken({ ...base, iat: nowS, exp: nowS + 60 }, undefined, { typ: 'JWT' }),
        ],
        [
          'another audience',
          await signAccessToken({ ...base, aud: 'https://other.example', iat: nowS, exp: nowS + 60 }),
        ],
        [
          'another issuer',
          await signAccessToken({ ...base, iss: 'https://evil.example', iat: nowS, exp: nowS + 60 }),
        ],
        ['garbage', 'not-a-jwt'],
        // The genuine token's signature, verified and remembered above, under a payload it did not sign.
        [
          'another payload under a known signature',
          [
            genuine.split('.')[0],
            Buffer.from(
              JSON.stringify({ ...base, scope: 'accounts payments', iat: nowS, exp: nowS + 60 }),
            ).toString('base64url'),
            genuine.split('.')[2],
          ].join('.'),
        ],
      ];
      for (const [name, token] of cases) {
        const response = await whoami(token);
        assert.equal(response.status, 401, name);
        assert.equal(((await response.json()) as { code: string }).code, 'invalid_token', name);
      }
      const noHeader = await fetch(`${issuer}/v1/test/whoami`);
      assert.equal(noHeader.status, 401);
      const inQuery = await fetch(`${issuer}/v1/test/whoami?access_token=${genuine}`);
      assert.equal(inQuery.status, 401, 'tokens are never taken from the query string');
      const narrow = await fetch(`${issuer}/v1/test/payments`, {
        headers: { authorization: `Bearer ${genuine}` },
      });
      assert.deepEqual(
        [narrow.status, ((await narrow.json()) as { code: string }).code],
        [403, 'insufficient_scope'],
      );
    });

    it("stops a suspended app's tokens at once, and its token requests", async () => {
      const { id, config } = await secretClient();
      const tokens = await client.clientCredentialsGrant(config, { scope: 'accounts' });
      assert.equal((await whoami(tokens.access_token)).status, 200);
      const admin = { authorization: `Bearer ${TOKEN}` };
      await built.app.inject({ method: 'POST', url: `/v1/admin/apps/${id}/suspend`, headers: admin });
      assert.equal((await whoami(tokens.access_token)).status, 401);
      assert.equal(
        await oauthError(client.clientCredentialsGrant(config, { scope: 'accounts' })),
        'invalid_client',
      );
      await built.app.inject({ method: 'POST', url: `/v1/admin/apps/${id}/reinstate`, headers: admin });
      assert.equal((await whoami(tokens.access_token)).status, 200);
    });
  });
}

describe('the authorization server behind a proxy that ends TLS', () => {
  it('names its endpoints by the public URL, whatever protocol and Host a request arrives with, and answers with the security headers', async () => {
    const db = await openDb({});
    await migrate(db);
    const built = buildApp({
      db,
      adminToken: TOKEN,
      oauth: { issuer: 'https://bank.example', keys: await generateOAuthKeys() },
      pii: await testPii(db),
    });
    try {
      for (const headers of [
        { host: 'bank.example' },
        { host: 'evil.example' },
        { host: 'evil.example', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'evil.example' },
      ]) {
        const response = await built.app.inject({ url: '/.well-known/openid-configuration', headers });
        // The provider answers on the raw response; the headers every answer carries are there too.
        assert.equal(response.headers['x-frame-options'], 'DENY');
        assert.equal(response.headers['x-content-type-options'], 'nosniff');
        assert.ok(response.headers['x-request-id']);
        const metadata = response.json() as Record<string, unknown>;
        assert.equal(metadata.issuer, 'https://bank.example');
        assert.equal(metadata.token_endpoint, 'https://bank.example/oauth/token', JSON.stringify(headers));
        assert.equal(metadata.pushed_authorization_request_endpoint, 'https://bank.example/oauth/par');
        assert.equal(metadata.jwks_uri, 'https://bank.example/oauth/jwks');
      }
    } finally {
      await built.app.close();
      await db.close();
    }
  });
});
