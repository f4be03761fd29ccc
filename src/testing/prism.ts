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
import { type ChildProcess, spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CompactSign } from 'jose';
import type { Db } from '../db/db.ts';
import type { BuiltApp } from '../main.ts';
import { createCustomer, signUpDeveloper, startBank } from './bank.ts';
import { freePort } from './http.ts';

const PRISM_BIN = fileURLToPath(new URL('../../node_modules/.bin/prism', import.meta.url));
const STARTUP_TIMEOUT_MS = 30_000;
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
  /** Stops the proxies and the bank; every exchange the proxies saw, for the conformance table. */
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
  },
): Promise<BankBehindPrism> {
  const { built, issuer } = await startBank(db, { adminToken: options.adminToken });
  const upstream = `${issuer}${options.prefix}`;
  const [prism, lax] = await Promise.all([
    startPrism({ spec: options.spec, upstream }),
    startPrism({ spec: options.spec, upstream, validateRequest: false }),
  ]);
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
  return {
    built,
    issuer,
    prism,
    lax,
    developer,
    alice,
    bob,
    async close() {
      const exchanges = [...prism.exchanges, ...lax.exchanges];
      await Promise.all([prism.close(), lax.close()]);
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

/** A detached JWS of `body` (RFC 7515 appendix F), signed PS256 as a third party signs its requests. */
export async function detachedJws(
  key: Parameters<CompactSign['sign']>[0],
  kid: string,
  body: string,
): Promise<string> {
  const jws = await new CompactSign(new TextEncoder().encode(body))
    .setProtectedHeader({ alg: 'PS256', kid })
    .sign(key);
  const [header, , signature] = jws.split('.');
  return `${header}..${signature}`;
}
