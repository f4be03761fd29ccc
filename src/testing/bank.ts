// Test support for tests that drive the bank over HTTP the way a third party does: a listening server
// with its authorization server, a signed-up developer, and OAuth error codes read the way clients see them.

import assert from 'node:assert/strict';
import * as client from 'openid-client';
import type { Logger } from 'pino';
import type { Mode } from '../config.ts';
import type { Db } from '../db/db.ts';
import { type RateLimiter, RedisRateLimiter } from '../gateway/rate-limit.ts';
import type { App } from '../http/app.ts';
import { DEFAULT_SCREENING_LISTS, loadScreeningLists, Screener } from '../kyc/screening.ts';
import type { Ledger } from '../ledger/service.ts';
import { type BuiltApp, buildApp } from '../main.ts';
import { parseAmount } from '../money.ts';
import { generateOAuthKeys, type OAuthKeys } from '../oauth/keys.ts';
import { RedisReplayGuard, type ReplayGuard } from '../oauth/replay.ts';
import { postgresDatabase } from './databases.ts';
import { freePort } from './http.ts';
import { testPii } from './pii.ts';

/** openid-client talks to http://127.0.0.1 only when told it may. */
export const insecure = { execute: [client.allowInsecureRequests] };

export interface RunningBank {
  readonly built: BuiltApp;
  readonly issuer: string;
  readonly keys: OAuthKeys;
  /** Where this instance listens (the issuer names the first instance's port). */
  readonly port: number;
}

/**
 * Builds the bank on `db` with its authorization server, lets the test add routes (before listening, as
 * Fastify requires), and listens on a free port that is also the issuer's.
 */
export async function startBank(
  db: Db,
  options: {
    adminToken: string;
    mode?: Mode;
    logger?: Logger;
    limiter?: RateLimiter;
    replay?: ReplayGuard;
    /** Reuse the keys (and issuer port) of another instance: two processes of one deployment. */
    shared?: { keys: OAuthKeys; port: number };
    routes?: (built: BuiltApp) => void;
  },
): Promise<RunningBank> {
  const port = await freePort();
  // Two processes of one deployment share keys and issuer (the load balancer's address); here, the first's.
  const issuer = `http://127.0.0.1:${options.shared?.port ?? port}`;
  const keys = options.shared?.keys ?? (await generateOAuthKeys());
  const built = buildApp({
    db,
    adminToken: options.adminToken,
    ...(options.mode && { mode: options.mode }),
    ...(options.logger && { logger: options.logger }),
    ...(options.limiter && { limiter: options.limiter }),
    ...(options.replay && { replay: options.replay }),
    oauth: { issuer, keys },
    pii: await testPii(db),
    screener: new Screener(await loadScreeningLists(DEFAULT_SCREENING_LISTS)),
  });
  options.routes?.(built);
  await built.app.listen({ port, host: '127.0.0.1' });
  return { built, issuer, keys, port };
}

/** Signs a developer up and in; returns the headers that authenticate as them. */
export async function signUpDeveloper(
  app: App,
  email: string,
  password = 'a developer password',
): Promise<Record<string, string>> {
  await app.inject({
    method: 'POST',
    url: '/v1/developers',
    payload: { name: 'Developer', email, password },
  });
  const session = (
    await app.inject({ method: 'POST', url: '/v1/developers/sessions', payload: { email, password } })
  ).json();
  return { authorization: `Bearer ${session.token}` };
}

/** Registers an app for the developer; throws unless it was created. */
export async function registerApp(
  app: App,
  developer: Record<string, string>,
  settings: Record<string, unknown>,
): Promise<{ id: string; clientSecret?: string }> {
  const response = await app.inject({
    method: 'POST',
    url: '/v1/apps',
    headers: developer,
    payload: settings,
  });
  if (response.statusCode !== 201) throw new Error(`app not created: ${response.body}`);
  return response.json();
}

/** The OAuth error code a rejected call carries, in the body (RFC 6749 §5.2) or the challenge (RFC 6750 §3). */
export async function oauthError(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    const { error: code, cause } = error as { error?: string; cause?: { parameters?: { error?: string } }[] };
    return code ?? cause?.[0]?.parameters?.error ?? String(error);
  }
  return 'no error';
}

/**
 * Two server processes of one deployment, as production runs them: one PostgreSQL schema, shared keys and
 * issuer, and Redis for rate limits and DPoP proof ids. `close` stops both and drops the schema.
 */
export async function startTwoProcesses(
  postgresUrl: string,
  redisUrl: string,
  options: { adminToken: string; routes?: (built: BuiltApp) => void },
): Promise<{ a: RunningBank; b: RunningBank; close(): Promise<void> }> {
  const first = await postgresDatabase(postgresUrl).open();
  const second = await postgresDatabase(postgresUrl).open({ schema: first.schema as string });
  const shared = [0, 1].map(() => ({
    limiter: new RedisRateLimiter(redisUrl, 'closed', () => {}),
    replay: new RedisReplayGuard(redisUrl, 'closed', () => {}),
  }));
  const a = await startBank(first, { ...options, ...shared[0] });
  const b = await startBank(second, { ...options, ...shared[1], shared: { keys: a.keys, port: a.port } });
  return {
    a,
    b,
    async close() {
      await a.built.app.close();
      await b.built.app.close();
      await Promise.all(shared.flatMap(({ limiter, replay }) => [limiter.close(), replay.close()]));
      await second.close();
      await first.close();
    },
  };
}

/** A customer with a login and accounts (no application), for tests that need somebody to sign in as. */
export async function createCustomer(
  built: BuiltApp,
  input: {
    username: string;
    password: string;
    legalName?: string;
    accounts?: readonly { product: 'current' | 'savings'; currency: string }[];
  },
): Promise<{ customerId: string; accountIds: string[]; ledgerAccountIds: string[] }> {
  if (!built.onboarding) throw new Error('createCustomer needs the bank built with oauth');
  const created = await built.onboarding.createDirectly({
    person: {
      legalName: input.legalName ?? `${input.username[0]?.toUpperCase()}${input.username.slice(1)} Tester`,
      dateOfBirth: '1990-04-12',
      nationality: 'GB',
      nationalId: null,
      address: { lines: ['1 Test Street'], city: 'London', postCode: 'EC1A 1BB', country: 'GB' },
      email: `${input.username}@example.com`,
      phone: '+447911123456',
    },
    username: input.username,
    password: input.password,
    accounts: input.accounts ?? [{ product: 'current', currency: 'EUR' }],
  });
  if (!created) throw new Error(`customer ${input.username} exists`);
  return {
    customerId: created.customerId,
    accountIds: created.accounts.map((account) => account.id),
    ledgerAccountIds: created.accounts.map((account) => account.ledgerAccountId),
  };
}

/**
 * A business customer with several users (the first is its representative), each signing in with their own
 * username and `password`, and accounts: for tests of what one user does and another approves.
 */
export async function createBusinessCustomer(
  built: BuiltApp,
  input: {
    name: string;
    usernames: readonly [string, string, ...string[]];
    password: string;
    accounts?: readonly { product: 'current' | 'savings'; currency: string }[];
  },
): Promise<{ customerId: string; loginIds: string[]; accountIds: string[]; ledgerAccountIds: string[] }> {
  if (!built.onboarding) throw new Error('createBusinessCustomer needs the bank built with oauth');
  const [first, ...others] = input.usernames;
  const created = await built.onboarding.createDirectly({
    person: {
      legalName: input.name,
      dateOfBirth: '1990-04-12',
      nationality: 'GB',
      nationalId: null,
      address: { lines: ['1 Business Park'], city: 'London', postCode: 'EC1A 1BB', country: 'GB' },
      email: `${first}@example.com`,
      phone: '+447911123456',
    },
    username: first,
    password: input.password,
    accounts: input.accounts ?? [{ product: 'current', currency: 'EUR' }],
    business: {
      users: others.map((username) => ({
        username,
        password: input.password,
        displayName: `${username[0]?.toUpperCase()}${username.slice(1)} Tester`,
        email: `${username}@example.com`,
      })),
    },
  });
  if (!created) throw new Error(`customer ${first} exists`);
  return {
    customerId: created.customerId,
    loginIds: created.loginIds,
    accountIds: created.accounts.map((account) => account.id),
    ledgerAccountIds: created.accounts.map((account) => account.ledgerAccountId),
  };
}

/** An app registered by `developer` with a client secret, discovered as an OAuth client, and its app token. */
export async function newClientApp(
  bank: { built: BuiltApp; issuer: string },
  developer: Record<string, string>,
  options: {
    name: string;
    scopes: readonly string[];
    redirectUri: string;
    tokenScopes?: readonly string[];
    /** Public keys the app registers (request signatures of the UK Open Banking facade, for one). */
    jwks?: { keys: Record<string, unknown>[] };
    /** Or where it publishes them. */
    jwksUri?: string;
  },
): Promise<{ id: string; config: client.Configuration; appToken: string }> {
  const { id, clientSecret } = await registerApp(bank.built.app, developer, {
    name: options.name,
    redirectUris: [options.redirectUri],
    scopes: options.scopes,
    tokenEndpointAuthMethod: 'client_secret_basic',
    ...(options.jwks && { jwks: options.jwks }),
    ...(options.jwksUri && { jwksUri: options.jwksUri }),
  });
  const config = await client.discovery(
    new URL(bank.issuer),
    id,
    undefined,
    client.ClientSecretBasic(clientSecret ?? ''),
    insecure,
  );
  const scope = (options.tokenScopes ?? options.scopes.filter((s) => s !== 'openid')).join(' ');
  const appToken = (await client.clientCredentialsGrant(config, { scope })).access_token;
  return { id, config, appToken };
}

/**
 * A ledger account standing for everyone outside the bank, and money booked between it and the customers'
 * accounts as the ledger books it: for tests that need an account's history, not a payment's lifecycle.
 */
export async function outsideTheBank(ledger: Ledger, currency: string) {
  const { account } = await ledger.createAccount({
    currency,
    exponent: 2,
    normalBalance: 'debit',
    allowOverdraft: false,
    code: null,
    metadata: {},
  });
  return {
    id: account.id,
    /** Books `amount` (a decimal) from one ledger account to another; the transfer's id. */
    async move(
      key: string,
      from: string,
      to: string,
      amount: string,
      metadata: Record<string, unknown>,
      pending = false,
    ): Promise<string> {
      const parsed = parseAmount(amount);
      assert.ok(parsed, amount);
      const outcome = await ledger.transfer(key, {
        postings: [{ debitAccountId: from, creditAccountId: to, amount: parsed }],
        pending,
        expiresAt: null,
        metadata,
      });
      if (!outcome.ok) assert.fail(`transfer ${key} of ${amount} refused: ${outcome.code}`);
      return outcome.transfer.id;
    },
  };
}
