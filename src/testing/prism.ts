// The conformance harness: Stoplight Prism in proxy mode with --errors, against an unmodified official
// OpenAPI file, in front of a running bank. Every request and response of a test passes through it, and a
// test fails on any violation Prism reports, whatever its severity.
//
// How Prism reports (measured with Prism 5.16 in proxy mode): a response that breaks the spec (body, a
// required header) becomes a 500 `application/problem+json` of type
// `https://stoplight.io/prism/errors#VIOLATIONS` with the list in `validation`; a status the operation does
// not declare passes through with a Warning in the `sl-violations` response header; a request that breaks
// the spec is answered by Prism itself (422 VIOLATIONS, 401 UNAUTHORIZED without `Authorization`) and
// never reaches the bank. Every one of them is a Prism-made `type` or an `sl-violations` header.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { CompactSign, compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import type { Db } from '../db/db.ts';
import type { BuiltApp } from '../main.ts';
import { parseAmount } from '../money.ts';
import { createCustomer, signUpDeveloper, startBank } from './bank.ts';
import { freePort } from './http.ts';

const PRISM_BIN = fileURLToPath(new URL('../../node_modules/.bin/prism', import.meta.url));
// Prism starts in a few seconds; a machine busy with other tests can take many times that.
const STARTUP_TIMEOUT_MS = 60_000;
const PRISM_ERROR_TYPE = 'https://stoplight.io/prism/errors#';

/** One call as the third party saw it: what the conformance table is built from. */
export interface Exchange {
  readonly method: string;
  /** The path under the spec's base path, without the query. */
  readonly path: string;
  readonly status: number;
}

export interface PrismProxy {
  /** Where the proxy listens; paths are the spec's, without its server base path. */
  readonly url: string;
  /** Sends through the proxy; throws when Prism reports any violation of the request or the response. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** Every exchange that passed without a violation, in order. */
  readonly exchanges: readonly Exchange[];
  close(): Promise<void>;
}

export class ConformanceViolation extends Error {
  readonly exchange: Exchange;
  readonly violations: unknown;

  constructor(exchange: Exchange, violations: unknown) {
    super(
      `${exchange.method} ${exchange.path} → ${exchange.status}: Prism reports ${JSON.stringify(violations)}`,
    );
    this.name = 'ConformanceViolation';
    this.exchange = exchange;
    this.violations = violations;
  }
}

/**
 * Starts Prism (a few seconds: start one per test file) in front of `upstream`, the bank's base URL for the
 * spec (e.g. http://127.0.0.1:PORT/open-banking/v4.0/aisp). `validateRequest: false` lets a test send a
 * request the spec forbids, to see the bank's own refusal, while the response is still checked.
 */
export async function startPrism(options: {
  spec: string;
  upstream: string;
  validateRequest?: boolean;
}): Promise<PrismProxy> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      realpathSync(PRISM_BIN),
      'proxy',
      '--errors',
      `--validate-request=${options.validateRequest ?? true}`,
      '--cors=false',
      '-v',
      'warn',
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      options.spec,
      options.upstream,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const keep = (chunk: Buffer) => {
    // The last few kilobytes are enough to say why it did not start.
    output = (output + chunk.toString()).slice(-8192);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  await waitUntilListening(child, url, () => output);
  // A proxy shared by a test file's suites lives as long as the process: it never keeps it running, and
  // ends with it.
  child.unref();
  (child.stdout as Socket | null)?.unref();
  (child.stderr as Socket | null)?.unref();
  process.once('exit', () => child.kill());

  const exchanges: Exchange[] = [];
  return {
    url,
    exchanges,
    async fetch(path, init = {}) {
      const response = await fetch(`${url}${path}`, { ...init, redirect: 'manual' });
      const exchange = {
        method: (init.method ?? 'GET').toUpperCase(),
        path: new URL(path, url).pathname,
        status: response.status,
      };
      const header = response.headers.get('sl-violations');
      if (header) throw new ConformanceViolation(exchange, JSON.parse(header));
      if (response.headers.get('content-type')?.startsWith('application/problem+json')) {
        const body = (await response.clone().json()) as { type?: string; validation?: unknown };
        if (body.type?.startsWith(PRISM_ERROR_TYPE)) {
          throw new ConformanceViolation(exchange, body.validation ?? body);
        }
      }
      exchanges.push(exchange);
      return response;
    },
    close: () => stop(child),
  };
}

async function waitUntilListening(child: ChildProcess, url: string, output: () => string): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`prism exited (${child.exitCode}): ${output()}`);
    try {
      // Any answer means it listens; the path need not exist.
      await fetch(`${url}/__prism_ready`, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      if (Date.now() > deadline) {
        await stop(child);
        throw new Error(`prism did not start within ${STARTUP_TIMEOUT_MS} ms: ${output()}`);
      }
      await new Promise((done) => setTimeout(done, 100));
    }
  }
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    child.once('exit', () => done());
    child.kill('SIGTERM');
  });
}

type Customer = Awaited<ReturnType<typeof createCustomer>>;
type AccountRequest = { product: 'current' | 'savings'; currency: string };

/** The two proxies of a spec, and where they send calls now. */
interface SharedProxies {
  readonly prism: PrismProxy;
  readonly lax: PrismProxy;
  /** The bank (its origin) the proxies' calls go to from now on; undefined: none (502). */
  route(origin: string | undefined): void;
}

const sharedBySpec = new Map<string, Promise<SharedProxies>>();

/**
 * Prism takes seconds of CPU to start (it reads the whole spec), so the database suites of a test file share
 * one strict and one lax proxy per spec and prefix, started once and stopped when the process exits. They
 * call a switch on this process's loopback, which forwards each call to the bank of the suite running now
 * (a file's suites run one after the other).
 */
function sharedProxies(spec: string, prefix: string): Promise<SharedProxies> {
  const key = `${spec} ${prefix}`;
  let proxies = sharedBySpec.get(key);
  if (!proxies) {
    proxies = startSharedProxies(spec, prefix);
    sharedBySpec.set(key, proxies);
    proxies.catch(() => sharedBySpec.delete(key));
  }
  return proxies;
}

async function startSharedProxies(spec: string, prefix: string): Promise<SharedProxies> {
  let target: string | undefined;
  const server = createServer((request, response) => {
    if (!target) {
      response.writeHead(502).end();
      return;
    }
    const destination = new URL(request.url ?? '/', target);
    const forwarded = httpRequest(
      destination,
      { method: request.method, headers: { ...request.headers, host: destination.host } },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    forwarded.on('error', () => response.destroy());
    request.pipe(forwarded);
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  server.unref();
  const { port } = server.address() as AddressInfo;
  const upstream = `http://127.0.0.1:${port}${prefix}`;
  const started = await Promise.allSettled([
    startPrism({ spec, upstream }),
    startPrism({ spec, upstream, validateRequest: false }),
  ]);
  const [prism, lax] = started.map((result) => (result.status === 'fulfilled' ? result.value : undefined));
  if (!prism || !lax) {
    await Promise.all([prism?.close(), lax?.close()]);
    server.close();
    throw started.find((result) => result.status === 'rejected')?.reason;
  }
  return {
    prism,
    lax,
    route(origin) {
      target = origin;
    },
  };
}

/** A bank with two customers behind two Prism proxies of one spec: what every facade test starts from. */
export interface BankBehindPrism {
  readonly built: BuiltApp;
  readonly issuer: string;
  /** Checks requests and responses: a third party's calls must conform. */
  readonly prism: PrismProxy;
  /** Checks responses only: a test sends a request the spec forbids, to see the bank's own refusal. */
  readonly lax: PrismProxy;
  /** A signed-up developer's headers, for registering apps. */
  readonly developer: Record<string, string>;
  readonly alice: Customer;
  readonly bob: Customer;
  /** The bank's published signing keys, to verify its signed answers (signedObAnswer). */
  readonly bankKeys: ReturnType<typeof createLocalJWKSet>;
  /** An account's IBAN. */
  ibanOf(accountId: string | undefined): Promise<string>;
  /** Stops the bank; every exchange the proxies saw of it, for the conformance table. */
  close(): Promise<Exchange[]>;
}

export async function bankBehindPrism(
  db: Db,
  options: {
    spec: string;
    /** The facade's base path, e.g. /open-banking/v4.0/aisp. */
    prefix: string;
    adminToken: string;
    password: string;
    aliceAccounts: readonly AccountRequest[];
    bobAccounts?: readonly AccountRequest[];
    /**
     * Money for Alice's first account, in its currency, paid in from another bank as the scheme brings it:
     * what leaves later settles out of the same account.
     */
    aliceFunds?: { readonly amount: string; readonly from: string };
  },
): Promise<BankBehindPrism> {
  const { built, issuer } = await startBank(db, { adminToken: options.adminToken });
  let proxies: SharedProxies;
  try {
    proxies = await sharedProxies(options.spec, options.prefix);
  } catch (error) {
    // Nothing left running to keep the test process alive: a file whose setup failed must still end.
    await built.app.close();
    throw error;
  }
  const { prism, lax } = proxies;
  proxies.route(issuer);
  // The proxies outlive this bank: its exchanges are the ones from now on.
  const seen = [prism.exchanges.length, lax.exchanges.length] as const;
  const developer = await signUpDeveloper(built.app, 'facade-developer@example.com', options.password);
  const alice = await createCustomer(built, {
    username: 'alice',
    password: options.password,
    legalName: 'Alice Able',
    accounts: options.aliceAccounts,
  });
  const bob = await createCustomer(built, {
    username: 'bob',
    password: options.password,
    legalName: 'Bob Baker',
    ...(options.bobAccounts && { accounts: options.bobAccounts }),
  });
  const ibanOf = async (accountId: string | undefined) => {
    const account = await built.accounts?.find(accountId ?? '');
    assert.ok(account, `no account ${accountId}`);
    return account.iban;
  };
  if (options.aliceFunds) {
    const amount = parseAmount(options.aliceFunds.amount);
    const [first] = options.aliceAccounts;
    assert.ok(amount && first && built.payments);
    const funded = await built.payments.receiveIncoming(`${options.prefix}-fund-alice`, {
      creditorIban: await ibanOf(alice.accountIds[0]),
      amount,
      currency: first.currency,
      debtorName: options.aliceFunds.from,
      reference: 'Salary',
    });
    assert.ok(funded.ok, `funding Alice: ${funded.ok || funded.code}`);
  }
  const jwks = (await (await fetch(`${issuer}/oauth/jwks`)).json()) as JSONWebKeySet;
  return {
    built,
    issuer,
    prism,
    lax,
    developer,
    alice,
    bob,
    bankKeys: createLocalJWKSet(jwks),
    ibanOf,
    async close() {
      const exchanges = [...prism.exchanges.slice(seen[0]), ...lax.exchanges.slice(seen[1])];
      proxies.route(undefined);
      await built.app.close();
      return exchanges;
    },
  };
}

export interface ThirdPartyCall {
  readonly method?: string;
  /** Sent as JSON. */
  readonly body?: unknown;
  /** Added last: they override the rest. */
  readonly headers?: Record<string, string>;
}

/**
 * A third party's call through `proxy` with its bearer token, JSON in and out. `withBody` gives the headers a
 * standard asks of a request carrying a body (its detached signature, an idempotency key, …).
 */
export async function callAsThirdParty(
  proxy: PrismProxy,
  token: string,
  path: string,
  init: ThirdPartyCall = {},
  withBody: (body: string) => Record<string, string> | Promise<Record<string, string>> = () => ({}),
): Promise<Response> {
  const body = init.body === undefined ? undefined : JSON.stringify(init.body);
  return proxy.fetch(path, {
    method: init.method ?? 'GET',
    headers: {
      authorization: `Bearer ${token}`,
      accept: 'application/json',
      ...(body !== undefined && { 'content-type': 'application/json', ...(await withBody(body)) }),
      ...init.headers,
    },
    ...(body !== undefined && { body }),
  });
}

/** A Berlin Group TPP's call: a fresh X-Request-ID every time, the PSU's IP address with every body. */
export function berlinGroupCall(proxy: PrismProxy, token: string, path: string, init: ThirdPartyCall = {}) {
  return callAsThirdParty(
    proxy,
    token,
    path,
    { ...init, headers: { 'x-request-id': randomUUID(), ...init.headers } },
    () => ({ 'psu-ip-address': '192.0.2.1' }),
  );
}

/** A Berlin Group answer's JSON, after checking its status and the X-Request-ID it echoes. */
export async function berlinGroupAnswer<T>(response: Response, status: number): Promise<T> {
  assert.equal(response.status, status, await response.clone().text());
  assert.match(response.headers.get('x-request-id') ?? '', INTERACTION_ID);
  return (await response.json()) as T;
}

/** The codes of a Berlin Group refusal's tppMessages, after checking its status. */
export async function tppMessageCodes(response: Response, status: number): Promise<string[]> {
  const { tppMessages } = await berlinGroupAnswer<{ tppMessages: { code: string }[] }>(response, status);
  return tppMessages.map((message) => message.code);
}

/**
 * A detached JWS of `body` (RFC 7515 appendix F), signed PS256 as a third party signs its requests; `header`
 * adds to (or replaces) the protected header's parameters, e.g. `obSignatureClaims(…)`.
 */
export async function detachedJws(
  key: Parameters<CompactSign['sign']>[0],
  kid: string,
  body: string,
  header: Record<string, unknown> = {},
): Promise<string> {
  const protectedHeader: Record<string, unknown> & { alg: string } = { alg: 'PS256', kid, ...header };
  const crit = Array.isArray(protectedHeader.crit) ? (protectedHeader.crit as string[]) : [];
  const jws = await new CompactSign(new TextEncoder().encode(body))
    .setProtectedHeader(protectedHeader)
    .sign(key, { crit: Object.fromEntries(crit.map((name) => [name, true])) });
  const [encoded, , signature] = jws.split('.');
  return `${encoded}..${signature}`;
}

// The claims the UK Open Banking profile makes critical in every signature, the bank's answers too
// (Read/Write API profile, "Message Signing").
const OB_CRITICAL_CLAIMS = [
  'http://openbanking.org.uk/iat',
  'http://openbanking.org.uk/iss',
  'http://openbanking.org.uk/tan',
];

/**
 * The critical claims of a request signature: issued now, by the app (its client id), under the trust
 * anchor (the bank's default).
 */
export function obSignatureClaims(clientId: string, overrides: Record<string, unknown> = {}) {
  return {
    'http://openbanking.org.uk/iat': Math.floor(Date.now() / 1000),
    'http://openbanking.org.uk/iss': clientId,
    'http://openbanking.org.uk/tan': 'openbanking.org.uk',
    crit: [...OB_CRITICAL_CLAIMS],
    ...overrides,
  };
}
const INTERACTION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * A UK Open Banking answer's JSON, after checking its status, its interaction id and the bank's detached
 * signature over its body (verified with `bankKeys`, the bank's published JWKS).
 */
export async function signedObAnswer<T>(
  bankKeys: Parameters<typeof compactVerify>[1],
  response: Response,
  status: number,
): Promise<T> {
  const text = await response.text();
  assert.equal(response.status, status, text);
  assert.match(response.headers.get('x-fapi-interaction-id') ?? '', INTERACTION_ID);
  const [header, empty, signature] = (response.headers.get('x-jws-signature') ?? '').split('.');
  assert.equal(empty, '', 'a detached JWS');
  const payload = Buffer.from(text).toString('base64url');
  await compactVerify(`${header}.${payload}.${signature}`, bankKeys, {
    crit: Object.fromEntries(OB_CRITICAL_CLAIMS.map((name) => [name, true])),
  });
  return JSON.parse(text) as T;
}
