import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as client from 'openid-client';
import type { BuiltApp } from '../main.ts';
import { insecure, registerApp, signUpDeveloper, startTwoProcesses } from '../testing/bank.ts';
import { POSTGRES_URL } from '../testing/databases.ts';
import { MemoryReplayGuard, RedisReplayGuard, ReplayGuardUnavailable } from './replay.ts';

const REDIS_URL = process.env.TEST_REDIS_URL || undefined;

describe('DPoP replay guard', () => {
  it('remembers an id for its window, then forgets it', async () => {
    const guard = new MemoryReplayGuard();
    assert.equal(await guard.firstSeen('a', 120, 1000), true);
    assert.equal(await guard.firstSeen('a', 120, 1100), false);
    assert.equal(await guard.firstSeen('b', 120, 1100), true);
    assert.equal(await guard.firstSeen('a', 120, 1121), true, 'after its window the id may come back');
  });

  it('shares what it saw between processes through Redis', {
    skip: REDIS_URL ? false : 'TEST_REDIS_URL is not set',
  }, async () => {
    const guards = [0, 1].map(() => new RedisReplayGuard(REDIS_URL as string, 'closed', () => {}));
    try {
      const id = `jti-${process.pid}-${Date.now()}`;
      assert.equal(await guards[0]?.firstSeen(id, 60, 0), true);
      assert.equal(await guards[1]?.firstSeen(id, 60, 0), false, 'the other process knows it');
    } finally {
      await Promise.all(guards.map((guard) => guard.close()));
    }
  });

  it('fails open or closed, as configured, when Redis is unreachable', async () => {
    const open = new RedisReplayGuard('redis://127.0.0.1:1', 'open', () => {});
    const closed = new RedisReplayGuard('redis://127.0.0.1:1', 'closed', () => {});
    try {
      assert.equal(await open.firstSeen('x', 60, 0), true);
      await assert.rejects(closed.firstSeen('x', 60, 0), ReplayGuardUnavailable);
    } finally {
      await Promise.all([open.close(), closed.close()]);
    }
  });
});

describe('a DPoP proof across two server processes', {
  skip: REDIS_URL && POSTGRES_URL ? false : 'needs TEST_REDIS_URL and TEST_DATABASE_URL',
}, () => {
  it('is refused by the second process when replayed there', async () => {
    const routes = ({ app, requireAccess }: BuiltApp) => {
      assert.ok(requireAccess);
      app.get('/v1/test/whoami', { onRequest: requireAccess('payments') }, async () => ({
        ok: true,
      }));
    };
    const { a, b, close } = await startTwoProcesses(POSTGRES_URL as string, REDIS_URL as string, {
      adminToken: 'replay-test-operator-token-0123456789abcdef',
      routes,
    });
    try {
      const developer = await signUpDeveloper(a.built.app, 'replay@example.com');
      const created = await registerApp(a.built.app, developer, {
        name: 'Replay',
        redirectUris: ['http://localhost/cb'],
        scopes: ['payments'],
        tokenEndpointAuthMethod: 'client_secret_basic',
      });
      const config = await client.discovery(
        new URL(a.issuer),
        created.id,
        undefined,
        client.ClientSecretBasic(created.clientSecret ?? ''),
        insecure,
      );
      const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
      const { access_token: token } = await client.clientCredentialsGrant(
        config,
        { scope: 'payments' },
        { DPoP },
      );
      let proof = '';
      config[client.customFetch] = (input: string, init: RequestInit) => {
        proof = new Headers(init.headers).get('dpop') ?? '';
        return fetch(input, init);
      };
      const used = await client.fetchProtectedResource(
        config,
        token,
        new URL(`${a.issuer}/v1/test/whoami`),
        'GET',
        undefined,
        undefined,
        { DPoP },
      );
      assert.equal(used.status, 200);
      const replayed = await fetch(`http://127.0.0.1:${b.port}/v1/test/whoami`, {
        headers: { authorization: `DPoP ${token}`, dpop: proof },
      });
      assert.equal(replayed.status, 401);
      assert.equal(((await replayed.json()) as { code: string }).code, 'invalid_dpop_proof');
    } finally {
      await close();
    }
  });
});
