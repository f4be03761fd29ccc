// OAuth benchmark: `node bench/oauth.ts` (BENCH_SECONDS=10 by default).
//
// Two figures. First, client-credentials tokens per second from the real server (`apibank serve` as a
// child process) over HTTP, on the embedded PGlite and on PostgreSQL when one answers: that is what a
// fleet of machine clients refreshing their tokens costs the bank. Second, what a DPoP-bound access token
// adds to a request's latency. No customer-facing route needs a token yet, so that part builds the app in
// this process, adds a protected route and an open one, and compares the two over a real socket.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { decodeJwt, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import * as client from 'openid-client';
import postgres from 'postgres';
import { Client, Pool } from 'undici';
import { openDb } from '../src/db/db.ts';
import { migrate } from '../src/db/migrate.ts';
import { buildApp } from '../src/main.ts';
import { generateOAuthKeys } from '../src/oauth/keys.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SECONDS = positiveNumber('BENCH_SECONDS', 10);
const WARMUP_SECONDS = 2;
/** Concurrent token clients, each its own app with its own connection. */
const CLIENTS = 32;
const TOKENS_PER_SECOND_TARGET = 2_000;
/** Sequential requests per route in the DPoP comparison, after the warm-up rounds. */
const LATENCY_SAMPLES = 2_000;
const LATENCY_WARMUP = 300;
const DPOP_ADDED_P50_TARGET_MS = 1;
const PG_URL =
  process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';
// As in bench/ledger.ts: postgres.js sends unknown URL parameters as startup parameters, so
// `?search_path=` confines the server to a schema we drop afterwards. Its own name, so the two
// benchmarks could run side by side.
const PG_SCHEMA = 'apibank_bench_oauth';
const ERROR_SAMPLES_MAX = 5;
const ADMIN_TOKEN = randomBytes(32).toString('base64url');

interface TokenRun {
  readonly database: 'PGlite' | 'PostgreSQL';
  readonly tokensPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
  /** Non-200 answers and network failures over the whole run, warm-up included. */
  readonly errors: number;
  readonly errorSamples: readonly string[];
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

interface Stats {
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly count: number;
}

interface Credentials {
  readonly clientId: string;
  readonly clientSecret: string;
}

async function main(): Promise<void> {
  const cpu = cpus();
  console.log(
    `OAuth benchmark: tokens for ${SECONDS} s after ${WARMUP_SECONDS} s warm-up, ${CLIENTS} clients; ` +
      `DPoP latency over ${format(LATENCY_SAMPLES)} sequential requests per route; ` +
      `node ${process.version}, ${cpu.length} CPUs (${cpu[0]?.model ?? 'unknown'}); ` +
      'client, server and database share this machine',
  );
  const tokenRuns: TokenRun[] = [];

  const dataDir = await mkdtemp(join(tmpdir(), 'apibank-bench-oauth-'));
  try {
    console.log('\n== PGlite (embedded)');
    tokenRuns.push(await benchTokens('PGlite', { APIBANK_DATA_DIR: dataDir }));
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }

  if (await postgresReachable(PG_URL)) {
    console.log('\n== PostgreSQL');
    const admin = postgres(PG_URL, { max: 1, onnotice: () => {} });
    const pgDataDir = await mkdtemp(join(tmpdir(), 'apibank-bench-oauth-'));
    try {
      await admin.unsafe(`drop schema if exists ${PG_SCHEMA} cascade; create schema ${PG_SCHEMA}`);
      const url = new URL(PG_URL);
      url.searchParams.set('search_path', PG_SCHEMA);
      tokenRuns.push(
        await benchTokens(
          'PostgreSQL',
          // The data directory still matters: the sandbox generates its OAuth keys there.
          { APIBANK_DATA_DIR: pgDataDir, DATABASE_URL: url.toString(), DATABASE_POOL_MAX: '20' },
          async () => {
            // Proof the search_path parameter took effect: otherwise the server wrote into another schema.
            const [row] = await admin<{ n: number }[]>`
              select count(*)::int as n from information_schema.tables
              where table_schema = ${PG_SCHEMA} and table_name = 'schema_migrations'`;
            if (row?.n !== 1) throw new Error(`the server did not migrate into schema ${PG_SCHEMA}`);
          },
        ),
      );
    } finally {
      await admin.unsafe(`drop schema if exists ${PG_SCHEMA} cascade`).catch(() => {});
      await admin.end({ timeout: 5 });
      await rm(pgDataDir, { recursive: true, force: true });
    }
  } else {
    console.log(`\n== PostgreSQL: not reachable at ${redact(PG_URL)}; skipped (set BENCH_DATABASE_URL)`);
  }

  // Last, with no child server running, so nothing else competes for the CPUs while we time requests.
  console.log('\n== DPoP-bound request latency (in process, PGlite in memory)');
  const latency = await benchDpopLatency();

  printReport(tokenRuns, latency);
}

// ---------------------------------------------------------------------------------------------- tokens

async function benchTokens(
  database: TokenRun['database'],
  dbEnv: Record<string, string>,
  afterStart?: () => Promise<void>,
): Promise<TokenRun> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // Never inherit a database, a mode, an issuer or keys from the caller's shell: the issuer must be the
    // origin we call, and the sandbox must generate fresh keys into the fresh data directory.
    DATABASE_URL: undefined,
    DATABASE_POOL_MAX: undefined,
    APIBANK_PUBLIC_URL: undefined,
    APIBANK_OAUTH_KEYS_FILE: undefined,
    APIBANK_MODE: 'sandbox',
    HOST: '127.0.0.1',
    PORT: String(port),
    APIBANK_ADMIN_TOKEN: ADMIN_TOKEN,
    LOG_LEVEL: 'warn',
    ...dbEnv,
  };
  const origin = `http://127.0.0.1:${port}`;
  const server = await startServer(env);
  try {
    await afterStart?.();
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
      return { database, ...result, serverLog: server.log };
    } finally {
      await pool.close();
    }
  } finally {
    await server.stop();
  }
}

/** A developer and `count` client-credentials apps, through the public API as a developer would. */
async function registerApps(origin: string, count: number): Promise<Credentials[]> {
  const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${origin}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    if (response.status !== 201) throw new Error(`POST ${path}: ${response.status} ${truncate(text)}`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  const email = `bench-${randomBytes(4).toString('hex')}@example.com`;
  const password = randomBytes(18).toString('base64url');
  await post('/v1/developers', { name: 'Bench', email, password });
  const session = await post('/v1/developers/sessions', { email, password });
  const developer = { authorization: `Bearer ${String(session.token)}` };
  const apps: Credentials[] = [];
  for (let i = 0; i < count; i++) {
    const app = await post(
      '/v1/apps',
      {
        name: `bench ${i}`,
        redirectUris: ['http://localhost:3000/callback'],
        scopes: ['accounts'],
        tokenEndpointAuthMethod: 'client_secret_basic',
      },
      developer,
    );
    apps.push({ clientId: String(app.clientId), clientSecret: String(app.clientSecret) });
  }
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

/**
 * `CLIENTS` loops, each requesting tokens for its own app, for the warm-up and then the measured window.
 * Throughput and latency count the requests that complete inside the window.
 */
async function measureTokens(
  pool: Pool,
  apps: readonly Credentials[],
): Promise<Omit<TokenRun, 'database' | 'serverLog'>> {
  const windowStart = performance.now() + WARMUP_SECONDS * 1000;
  const windowEnd = windowStart + SECONDS * 1000;
  const latencies: number[] = [];
  let errors = 0;
  const samples = new Set<string>();
  const fail = (error: string) => {
    errors++;
    if (samples.size < ERROR_SAMPLES_MAX) samples.add(error);
  };

  const loop = async (app: Credentials) => {
    while (performance.now() < windowEnd) {
      const started = performance.now();
      let ok = false;
      try {
        const response = await requestToken(pool, app);
        const text = await response.body.text();
        // A 200 without a token would be a bug too; the substring test costs less than parsing.
        ok = response.statusCode === 200 && text.includes('"access_token"');
        if (!ok) fail(`${response.statusCode} ${truncate(text)}`);
      } catch (error) {
        fail(`network: ${error instanceof Error ? error.message : String(error)}`);
      }
      const finished = performance.now();
      if (ok && finished >= windowStart && finished <= windowEnd) latencies.push(finished - started);
    }
  };
  await Promise.all(apps.map(loop));

  const stats = summarize(latencies);
  return {
    tokensPerSecond: stats.count / SECONDS,
    p50Ms: stats.p50Ms,
    p99Ms: stats.p99Ms,
    requests: stats.count,
    errors,
    errorSamples: [...samples],
  };
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
  const db = await openDb({});
  await migrate(db);
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const built = buildApp({ db, adminToken: ADMIN_TOKEN, oauth: { issuer, keys: await generateOAuthKeys() } });
  const requireAccess = built.requireAccess;
  if (!requireAccess) throw new Error('buildApp made no resource server although oauth was given');
  built.app.get('/bench/open', async () => ({ ok: true }));
  built.app.get('/bench/protected', { onRequest: requireAccess('accounts') }, async () => ({ ok: true }));
  await built.app.listen({ port, host: '127.0.0.1' });
  const http = new Client(issuer, { pipelining: 1 });
  try {
    const app = (await registerApps(issuer, 1))[0] as Credentials;
    const config = await client.discovery(
      new URL(issuer),
      app.clientId,
      undefined,
      client.ClientSecretBasic(app.clientSecret),
      { execute: [client.allowInsecureRequests] },
    );
    // Our own key pair rather than openid-client's, so we can sign the proofs for the timed requests.
    const keyPair = await generateKeyPair('ES256');
    const publicJwk = await exportJWK(keyPair.publicKey);
    const DPoP = client.getDPoPHandle(config, keyPair);
    const dpopToken = (await client.clientCredentialsGrant(config, { scope: 'accounts' }, { DPoP }))
      .access_token;
    if ((decodeJwt(dpopToken).cnf as { jkt?: unknown } | undefined)?.jkt === undefined) {
      throw new Error('the DPoP grant returned a token not bound to a key');
    }
    const bearerToken = (await client.clientCredentialsGrant(config, { scope: 'accounts' })).access_token;
    const ath = createHash('sha256').update(dpopToken).digest('base64url');
    const htu = `${issuer}/bench/protected`;
    const proof = () =>
      new SignJWT({ jti: randomUUID(), iat: Math.floor(Date.now() / 1000), htm: 'GET', htu, ath })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: publicJwk satisfies JWK })
        .sign(keyPair.privateKey);

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
      const dpopProof = await proof();
      const proofMs = performance.now() - proofStarted;
      const dpopMs = await timed('/bench/protected', { authorization: `DPoP ${dpopToken}`, dpop: dpopProof });
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

// ---------------------------------------------------------------------------------------------- server

interface RunningServer {
  readonly log: string[];
  stop(): Promise<void>;
}

async function startServer(env: NodeJS.ProcessEnv): Promise<RunningServer> {
  const child = spawn(process.execPath, ['src/cli.ts', 'serve'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = collectLines(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });

  const deadline = performance.now() + 60_000;
  for (;;) {
    if (exitCode !== undefined) {
      throw new Error(`server exited (${exitCode}) before it was ready:\n${log.join('\n')}`);
    }
    const ready = await fetch(`http://127.0.0.1:${env.PORT}/health/ready`).then(
      (response) => response.status === 200,
      () => false,
    );
    if (ready) break;
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server not ready after 60 s:\n${log.join('\n')}`);
    }
    await sleep(100);
  }

  return {
    log,
    async stop() {
      if (exitCode !== undefined) return;
      child.kill('SIGTERM');
      const timeout = sleep(20_000).then(() => 'timeout' as const);
      if ((await Promise.race([exited, timeout])) === 'timeout') {
        log.push('(bench) server did not exit within 20 s of SIGTERM; killed');
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** The server's output, kept for the report: at LOG_LEVEL=warn every line is worth a look. */
function collectLines(child: ChildProcess): string[] {
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) if (line.trim() !== '') lines.push(line);
    });
  }
  return lines;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

async function postgresReachable(url: string): Promise<boolean> {
  const probe = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await probe`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await probe.end({ timeout: 1 }).catch(() => {});
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

  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : i === 7 ? c : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();

  console.log(
    `\n== Results (tokens: ${SECONDS} s, ${CLIENTS} clients; latency: ${format(LATENCY_SAMPLES)} ` +
      'sequential requests per route, in process)',
  );
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
  console.log(
    `\nDPoP proof signing on the client (excluded above): p50 ${ms(latency.proof.p50Ms)} ms, ` +
      `p99 ${ms(latency.proof.p99Ms)} ms`,
  );
  for (const sample of latency.errorSamples) console.log(`  latency error: ${sample}`);

  for (const run of tokenRuns) {
    for (const sample of run.errorSamples) console.log(`${run.database} token error: ${sample}`);
    if (run.serverLog.length > 0) {
      console.log(
        `${run.database}: server logged ${run.serverLog.length} lines at warn or above; the first:`,
      );
      for (const entry of run.serverLog.slice(0, ERROR_SAMPLES_MAX)) console.log(`    ${truncate(entry)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------- helpers

function summarize(latencies: readonly number[]): Stats {
  const sorted = Float64Array.from(latencies).sort();
  return { p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), count: sorted.length };
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

function positiveNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

const format = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
const ms = (n: number) => n.toFixed(n < 10 ? 2 : 1);
const truncate = (text: string, max = 300) => (text.length > max ? `${text.slice(0, max)}…` : text);

/** A URL fit to print: the password never reaches the terminal. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

await main();
