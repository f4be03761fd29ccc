// OAuth benchmark: `node bench/oauth.ts` (BENCH_SECONDS=10 by default).
//
// Two figures. First, client-credentials tokens per second from the real server (`apibank serve` as a
// child process) over HTTP, on the embedded PGlite and on PostgreSQL when one answers: that is what a
// fleet of machine clients refreshing their tokens costs the bank. Second, what a DPoP-bound access token
// adds to a request's latency. No customer-facing route needs a token yet, so that part builds the app in
// this process, adds a protected route and an open one, and compares the two over a real socket.
import { randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import { Client, Pool } from 'undici';
import {
  type Call,
  type Credentials,
  type Database,
  discover,
  dpopBound,
  ERROR_SAMPLES_MAX,
  format,
  inProcessApp,
  listen,
  type Measured,
  machine,
  ms,
  onPglite,
  onPostgres,
  printServerLog,
  printTable,
  registerApp,
  runLoad,
  SECONDS,
  type Stats,
  signUpDeveloper,
  startServer,
  summarize,
  truncate,
  WARMUP_SECONDS,
} from './support.ts';

/** Concurrent token clients, each its own app with its own connection. */
const CLIENTS = 32;
const TOKENS_PER_SECOND_TARGET = 2_000;
/** Sequential requests per route in the DPoP comparison, after the warm-up rounds. */
const LATENCY_SAMPLES = 2_000;
const LATENCY_WARMUP = 300;
const DPOP_ADDED_P50_TARGET_MS = 1;
// Not bench/ledger.ts's, so the two benchmarks could run side by side (see onPostgres).
const PG_SCHEMA = 'apibank_bench_oauth';
const ADMIN_TOKEN = randomBytes(32).toString('base64url');

/** `errors` counts non-200 answers and network failures. */
interface TokenRun extends Measured {
  readonly database: Database['name'];
  readonly tokensPerSecond: number;
  readonly serverLog: readonly string[];
}

interface LatencyRun {
  readonly open: Stats;
  readonly bearer: Stats;
  readonly dpop: Stats;
  /** Signing one DPoP proof on the client: excluded from `dpop`, shown for scale. */
  readonly proof: Stats;
  readonly errors: number;
  readonly errorSamples: readonly string[];
}

async function main(): Promise<void> {
  console.log(
    `OAuth benchmark: tokens for ${SECONDS} s after ${WARMUP_SECONDS} s warm-up, ${CLIENTS} clients; ` +
      `DPoP latency over ${format(LATENCY_SAMPLES)} sequential requests per route; ${await machine()}; ` +
      'client, server and database share this machine',
  );
  const tokenRuns: TokenRun[] = [];
  tokenRuns.push(await onPglite('apibank-bench-oauth-', benchTokens));
  const postgresRun = await onPostgres(PG_SCHEMA, 'apibank-bench-oauth-', benchTokens);
  if (postgresRun) tokenRuns.push(postgresRun);

  // Last, with no child server running, so nothing else competes for the CPUs while we time requests.
  console.log('\n== DPoP-bound request latency (in process, PGlite in memory)');
  const latency = await benchDpopLatency();

  printReport(tokenRuns, latency);
}

// ---------------------------------------------------------------------------------------------- tokens

async function benchTokens(database: Database): Promise<TokenRun> {
  // Never inherit an issuer or keys from the caller's shell either: the issuer must be the origin we call,
  // and the sandbox must generate fresh keys into the fresh data directory.
  const server = await startServer(database, ADMIN_TOKEN, {
    APIBANK_PUBLIC_URL: undefined,
    APIBANK_OAUTH_KEYS_FILE: undefined,
  });
  const { origin } = server;
  try {
    // One connection per client and no pipelining: each client waits for its token, as a real one would,
    // so latency is the server's and not a queue inside this process.
    const pool = new Pool(origin, { connections: CLIENTS, pipelining: 1 });
    try {
      const apps = await registerApps(origin, CLIENTS);
      await checkToken(pool, origin, apps[0] as Credentials);
      process.stdout.write('client_credentials… ');
      const result = await measureTokens(pool, apps);
      console.log(
        `${format(result.tokensPerSecond)} tokens/s, p50 ${result.p50Ms.toFixed(1)} ms, ` +
          `p99 ${result.p99Ms.toFixed(1)} ms, ${result.errors} errors`,
      );
      return { database: database.name, ...result, serverLog: server.log };
    } finally {
      await pool.close();
    }
  } finally {
    await server.stop();
  }
}

/** A developer and `count` client-credentials apps, through the public API over HTTP. */
async function registerApps(origin: string, count: number): Promise<Credentials[]> {
  const call: Call = async (method, path, body, token) => {
    const response = await fetch(`${origin}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    if (response.status !== 201) throw new Error(`${method} ${path}: ${response.status} ${truncate(text)}`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  const developer = await signUpDeveloper(call);
  const apps: Credentials[] = [];
  for (let i = 0; i < count; i++) apps.push(await registerApp(call, developer, `bench ${i}`, 'accounts'));
  console.log(`registered ${count} app${count === 1 ? '' : 's'} (client_secret_basic, scope accounts)`);
  return apps;
}

/** RFC 6749 §2.3.1: client id and secret are form-urlencoded before they are joined and base64-encoded. */
const basicAuth = ({ clientId, clientSecret }: Credentials) =>
  `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`;

const TOKEN_REQUEST_BODY = 'grant_type=client_credentials&scope=accounts';

function requestToken(pool: Pool, app: Credentials) {
  return pool.request({
    path: '/oauth/token',
    method: 'POST',
    headers: { authorization: basicAuth(app), 'content-type': 'application/x-www-form-urlencoded' },
    body: TOKEN_REQUEST_BODY,
  });
}

/** Once, before timing: the token is the one the benchmark means to count, not some error that says 200. */
async function checkToken(pool: Pool, origin: string, app: Credentials): Promise<void> {
  const response = await requestToken(pool, app);
  const text = await response.body.text();
  if (response.statusCode !== 200) throw new Error(`token request: ${response.statusCode} ${truncate(text)}`);
  const json = JSON.parse(text) as { access_token?: string; token_type?: string };
  const claims = decodeJwt(json.access_token ?? '');
  const seen = [json.token_type, claims.iss, claims.aud, claims.client_id, claims.scope];
  const wanted = ['Bearer', origin, `${origin}/v1`, app.clientId, 'accounts'];
  if (seen.some((value, i) => value !== wanted[i])) {
    throw new Error(`unexpected token: ${JSON.stringify(seen)}, wanted ${JSON.stringify(wanted)}`);
  }
}

/** `runLoad` with one loop per app, each requesting tokens for its own; only tokens received are timed. */
async function measureTokens(
  pool: Pool,
  apps: readonly Credentials[],
): Promise<Omit<TokenRun, 'database' | 'serverLog'>> {
  const { ok, ...measured } = await runLoad({
    clients: apps.length,
    timed: 'successes',
    async send(client) {
      const response = await requestToken(pool, apps[client] as Credentials);
      const text = await response.body.text();
      // A 200 without a token would be a bug too; the substring test costs less than parsing.
      return response.statusCode === 200 && text.includes('"access_token"')
        ? { ok: 1, failed: 0 }
        : { ok: 0, failed: 1, error: `${response.statusCode} ${truncate(text)}` };
    },
  });
  return { tokensPerSecond: ok / SECONDS, ...measured };
}

// ---------------------------------------------------------------------------------------------- DPoP

/**
 * p50/p99 of an open route, the same route behind a Bearer token, and behind a DPoP-bound token with a
 * fresh proof each time. Sequential (one request in flight) so each figure is the request's own cost and
 * not queueing; the three are interleaved round by round so drift (GC, JIT, a noisy neighbour) hits all
 * of them alike. Client and server share this process and its event loop, which adds the client's own
 * overhead to every figure equally: the difference is the server's work.
 */
async function benchDpopLatency(): Promise<LatencyRun> {
  const { db, built, port, issuer } = await inProcessApp(ADMIN_TOKEN);
  const requireAccess = built.requireAccess;
  if (!requireAccess) throw new Error('buildApp made no resource server although oauth was given');
  built.app.get('/bench/open', async () => ({ ok: true }));
  built.app.get('/bench/protected', { onRequest: requireAccess('accounts') }, async () => ({ ok: true }));
  await listen(built.app, port);
  const http = new Client(issuer, { pipelining: 1 });
  try {
    const app = (await registerApps(issuer, 1))[0] as Credentials;
    const config = await discover(issuer, app);
    const dpopAuth = await dpopBound(config, 'accounts', `${issuer}/bench/protected`);
    const bearerToken = (await client.clientCredentialsGrant(config, { scope: 'accounts' })).access_token;

    let errors = 0;
    const samples = new Set<string>();
    const timed = async (path: string, headers: Record<string, string> = {}): Promise<number> => {
      const started = performance.now();
      const response = await http.request({ path, method: 'GET', headers });
      const text = await response.body.text();
      const elapsed = performance.now() - started;
      if (response.statusCode !== 200) {
        errors++;
        if (samples.size < ERROR_SAMPLES_MAX)
          samples.add(`${path}: ${response.statusCode} ${truncate(text)}`);
      }
      return elapsed;
    };

    const open: number[] = [];
    const bearer: number[] = [];
    const dpop: number[] = [];
    const proofs: number[] = [];
    for (let round = 0; round < LATENCY_WARMUP + LATENCY_SAMPLES; round++) {
      const keep = round >= LATENCY_WARMUP;
      const openMs = await timed('/bench/open');
      const bearerMs = await timed('/bench/protected', { authorization: `Bearer ${bearerToken}` });
      // The proof is made before the clock starts: its cost is the client's, not the server's.
      const proofStarted = performance.now();
      const dpopProof = await dpopAuth.sign();
      const proofMs = performance.now() - proofStarted;
      const dpopMs = await timed('/bench/protected', {
        authorization: `DPoP ${dpopAuth.token}`,
        dpop: dpopProof,
      });
      if (keep) {
        open.push(openMs);
        bearer.push(bearerMs);
        proofs.push(proofMs);
        dpop.push(dpopMs);
      }
    }
    const result = {
      open: summarize(open),
      bearer: summarize(bearer),
      dpop: summarize(dpop),
      proof: summarize(proofs),
      errors,
      errorSamples: [...samples],
    };
    console.log(
      `open p50 ${ms(result.open.p50Ms)} ms, Bearer p50 ${ms(result.bearer.p50Ms)} ms, ` +
        `DPoP p50 ${ms(result.dpop.p50Ms)} ms (proof signing p50 ${ms(result.proof.p50Ms)} ms, excluded), ` +
        `${errors} errors`,
    );
    return result;
  } finally {
    await http.close();
    await built.app.close();
    await db.close();
  }
}

// ---------------------------------------------------------------------------------------------- report

function printReport(tokenRuns: readonly TokenRun[], latency: LatencyRun): void {
  const header = ['database', 'measurement', 'result', 'p50 ms', 'p99 ms', 'requests', 'errors', 'target'];
  const rows: string[][] = [];
  for (const run of tokenRuns) {
    const met = run.tokensPerSecond >= TOKENS_PER_SECOND_TARGET && run.errors === 0;
    rows.push([
      run.database,
      'client_credentials token',
      `${format(run.tokensPerSecond)}/s`,
      ms(run.p50Ms),
      ms(run.p99Ms),
      format(run.requests),
      String(run.errors),
      `≥ ${format(TOKENS_PER_SECOND_TARGET)}/s, 0 errors ${met ? 'met' : 'MISSED'}`,
    ]);
  }
  const routes: [string, Stats][] = [
    ['GET /bench/open', latency.open],
    ['GET /bench/protected Bearer', latency.bearer],
    ['GET /bench/protected DPoP', latency.dpop],
  ];
  for (const [name, stats] of routes) {
    const added = stats.p50Ms - latency.open.p50Ms;
    const isDpop = stats === latency.dpop;
    const met = added <= DPOP_ADDED_P50_TARGET_MS && latency.errors === 0;
    rows.push([
      'PGlite',
      name,
      stats === latency.open ? 'baseline' : `${added < 0 ? '' : '+'}${ms(added)} ms p50`,
      ms(stats.p50Ms),
      ms(stats.p99Ms),
      format(stats.count),
      // The errors of the whole comparison, on the row that is judged.
      isDpop ? String(latency.errors) : '',
      isDpop ? `≤ +${DPOP_ADDED_P50_TARGET_MS} ms p50, 0 errors ${met ? 'met' : 'MISSED'}` : '',
    ]);
  }

  console.log(
    `\n== Results (tokens: ${SECONDS} s, ${CLIENTS} clients; latency: ${format(LATENCY_SAMPLES)} ` +
      'sequential requests per route, in process)',
  );
  printTable(header, rows);
  console.log(
    `\nDPoP proof signing on the client (excluded above): p50 ${ms(latency.proof.p50Ms)} ms, ` +
      `p99 ${ms(latency.proof.p99Ms)} ms`,
  );
  for (const sample of latency.errorSamples) console.log(`  latency error: ${sample}`);

  for (const run of tokenRuns) {
    for (const sample of run.errorSamples) console.log(`${run.database} token error: ${sample}`);
    printServerLog(`${run.database}: `, run.serverLog);
  }
}

await main();
