// What the benchmarks share: settings, starting `apibank serve` on a database, the measured load loop,
// the OAuth client steps and the report's formatting. Each bench file keeps what it alone measures, so a
// change to how a run is timed or a table is printed is made once and holds for every figure.

import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, connect, createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { decodeJwt, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import * as client from 'openid-client';
import postgres from 'postgres';
import type { Db } from '../src/db/db.ts';
import type { BuiltApp } from '../src/main.ts';
import { testPii } from '../src/testing/pii.ts';

// ---------------------------------------------------------------------------------------------- settings

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const SECONDS = positiveNumber('BENCH_SECONDS', 10);
export const WARMUP_SECONDS = 2;
/** Error messages and server log lines shown in a report: the first few say what went wrong. */
export const ERROR_SAMPLES_MAX = 5;
export const PG_URL =
  process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';

function positiveNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

/** For each bench's first line: a figure means little without the machine it came from. */
export async function machine(): Promise<string> {
  const cpu = cpus();
  return `node ${process.version}, ${cpu.length} CPUs (${cpu[0]?.model ?? 'unknown'}); ${await calibration()}`;
}

/**
 * How fast this machine is at the moment, to read one run's figures against another's: its cores are shared,
 * and the same code has measured twice as fast on one day as on the next. Two fixed pieces of work:
 * computation (JSON in and out), and round trips over loopback TCP between two sockets
 * of this process, which cost what every call to the server and every query to the database costs in
 * system calls and wake-ups.
 */
async function calibration(): Promise<string> {
  // JSON in and out, as every call does: 100,000 times a payment-sized object.
  const payment = {
    id: randomUUID(),
    instructedAmount: { amount: '123.45', currency: 'EUR' },
    creditor: { name: 'Corner Shop', iban: 'DE89370400440532013000' },
    statusHistory: [{ status: 'received', at: new Date().toISOString() }],
  };
  const computing = performance.now();
  for (let i = 0; i < 100_000; i++) JSON.parse(JSON.stringify({ ...payment, seq: i }));
  const jsonMs = performance.now() - computing;

  const ROUND_TRIPS = 20_000;
  const echo = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('data', (chunk) => socket.write(chunk));
  });
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  const socket = connect((echo.address() as AddressInfo).port, '127.0.0.1').setNoDelay(true);
  try {
    await once(socket, 'connect');
    const started = performance.now();
    for (let i = 0; i < ROUND_TRIPS; i++) {
      const answered = once(socket, 'data');
      socket.write('x');
      await answered;
    }
    const roundTripUs = ((performance.now() - started) * 1000) / ROUND_TRIPS;
    return `right now 100,000 JSON round trips take ${jsonMs.toFixed(0)} ms and a loopback TCP round trip ${roundTripUs.toFixed(0)} µs`;
  } finally {
    socket.destroy();
    echo.close();
  }
}

// ---------------------------------------------------------------------------------------------- databases

/** A database for `apibank serve` to run on, fresh for one benchmark run. */
export interface Database {
  readonly name: 'PGlite' | 'PostgreSQL';
  /** The server's settings for it. */
  readonly env: Readonly<Record<string, string>>;
  /** To run once the server is ready: proof it writes where the run will clean up. */
  readonly check?: () => Promise<void>;
}

/** Runs `bench` on the embedded PGlite in a data directory of its own, removed afterwards. */
export async function onPglite<T>(tmpPrefix: string, bench: (database: Database) => Promise<T>): Promise<T> {
  const dataDir = await mkdtemp(join(tmpdir(), tmpPrefix));
  try {
    console.log('\n== PGlite (embedded)');
    return await bench({ name: 'PGlite', env: { APIBANK_DATA_DIR: dataDir } });
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

/**
 * Runs `bench` on PostgreSQL at PG_URL in `schema`, created empty and dropped afterwards; when no server
 * answers, says so and returns undefined. `admin` is a connection outside that schema, for the bench's own
 * queries while the schema still exists.
 *
 * The server has no schema setting, but postgres.js sends unknown URL parameters as startup parameters,
 * so `?search_path=` confines the server (and any CLI command given the same env) to the schema. Each
 * bench names its own, so two benches could run side by side.
 */
export async function onPostgres<T>(
  schema: string,
  tmpPrefix: string,
  bench: (database: Database, admin: postgres.Sql) => Promise<T>,
): Promise<T | undefined> {
  if (!(await postgresReachable(PG_URL))) {
    console.log(`\n== PostgreSQL: not reachable at ${redact(PG_URL)}; skipped (set BENCH_DATABASE_URL)`);
    return undefined;
  }
  console.log('\n== PostgreSQL');
  const admin = postgres(PG_URL, { max: 1, onnotice: () => {} });
  // The data directory still matters on PostgreSQL: the sandbox generates its OAuth keys there.
  const dataDir = await mkdtemp(join(tmpdir(), tmpPrefix));
  try {
    await admin.unsafe(`drop schema if exists ${schema} cascade; create schema ${schema}`);
    const url = new URL(PG_URL);
    url.searchParams.set('search_path', schema);
    return await bench(
      {
        name: 'PostgreSQL',
        env: { APIBANK_DATA_DIR: dataDir, DATABASE_URL: url.toString(), DATABASE_POOL_MAX: '20' },
        async check() {
          // Proof the search_path parameter took effect: otherwise the server wrote into another schema.
          const [row] = await admin<{ n: number }[]>`
            select count(*)::int as n from information_schema.tables
            where table_schema = ${schema} and table_name = 'schema_migrations'`;
          if (row?.n !== 1) throw new Error(`the server did not migrate into schema ${schema}`);
        },
      },
      admin,
    );
  } finally {
    await admin.unsafe(`drop schema if exists ${schema} cascade`).catch(() => {});
    await admin.end({ timeout: 5 });
    await rm(dataDir, { recursive: true, force: true });
  }
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

// ---------------------------------------------------------------------------------------------- server

export interface RunningServer {
  /** Where it listens, as `http://127.0.0.1:port`. */
  readonly origin: string;
  /** Its environment, for CLI commands that must see the same database afterwards. */
  readonly env: NodeJS.ProcessEnv;
  /** Its output; `stop` may add a line of its own. */
  readonly log: string[];
  /** Its process id, to count the CPU it takes (`cpuTaken`). */
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

/**
 * `apibank serve` as a child process in sandbox mode on `database`, on a free port, once it answers
 * /health/ready and `database.check` has passed. `env` adds to or clears the server's settings; `root` is the
 * checkout it runs from (another commit's, to compare).
 */
export async function startServer(
  database: Database,
  adminToken: string,
  env: NodeJS.ProcessEnv = {},
  root = ROOT,
): Promise<RunningServer> {
  const port = await freePort();
  const serverEnv: NodeJS.ProcessEnv = {
    ...process.env,
    // Never inherit a DATABASE_URL or production mode from the caller's shell: PGlite must be PGlite.
    DATABASE_URL: undefined,
    DATABASE_POOL_MAX: undefined,
    ...env,
    APIBANK_MODE: 'sandbox',
    HOST: '127.0.0.1',
    PORT: String(port),
    APIBANK_ADMIN_TOKEN: adminToken,
    LOG_LEVEL: 'warn',
    ...database.env,
  };
  const origin = `http://127.0.0.1:${port}`;
  const { child, lines: log } = spawnCli(['serve'], serverEnv, root);
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
    const ready = await fetch(`${origin}/health/ready`).then(
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

  const server: RunningServer = {
    origin,
    env: serverEnv,
    log,
    pid: child.pid,
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
  try {
    await database.check?.();
  } catch (error) {
    // The caller never gets the server to stop, so stop it here.
    await server.stop();
    throw error;
  }
  return server;
}

/** `apibank <args>` from the checkout, as `npm start` runs it, with its output collected. */
export function spawnCli(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  root = ROOT,
): { child: ChildProcess; lines: string[] } {
  // BENCH_CPU_PROF_DIR=dir: each server and CLI child writes a V8 CPU profile there when it exits (Node refuses
  // --cpu-prof in NODE_OPTIONS). Open one in Chrome DevTools' Performance panel.
  const profileDir = process.env.BENCH_CPU_PROF_DIR;
  const profile = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const child = spawn(process.execPath, [...profile, 'src/cli.ts', ...args], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return { child, lines: collectLines(child) };
}

// A bench stopped midway (a kill, Ctrl-C) stops what it started: a server left running keeps its database
// connections and background work, and skews every later run on this machine.
const children = new Set<ChildProcess>();
const stopChildren = () => {
  for (const child of children) child.kill('SIGKILL');
};
process.once('exit', stopChildren);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    stopChildren();
    process.kill(process.pid, signal); // the handler is gone: the signal now ends the bench as it would have
  });
}

/** The child's output, kept for the report: at LOG_LEVEL=warn every line is worth a look. */
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

/** A port nobody listens on now, for a server that must know its own origin before it starts. */
export function freePort(): Promise<number> {
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

/**
 * The full app in this process on an in-memory PGlite, opened as src/testing/databases.ts does, not yet
 * listening: routes must be added before `listen`. The issuer must be the origin callers use, so the port
 * is chosen before the app is built.
 */
export async function inProcessApp(
  adminToken: string,
  /** PostgreSQL to use; default: an in-memory PGlite. */
  databaseUrl?: string,
): Promise<{ db: Db; built: BuiltApp; port: number; issuer: string }> {
  // Loaded here rather than at the top: bench/ledger.ts only drives a child server and needs none of it.
  const [{ openDb }, { migrate }, { buildApp }, { generateOAuthKeys }] = await Promise.all([
    import('../src/db/db.ts'),
    import('../src/db/migrate.ts'),
    import('../src/main.ts'),
    import('../src/oauth/keys.ts'),
  ]);
  const db = await openDb(databaseUrl ? { url: databaseUrl } : {});
  await migrate(db);
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const built = buildApp({
    db,
    adminToken,
    oauth: { issuer, keys: await generateOAuthKeys() },
    pii: await testPii(db),
  });
  return { db, built, port, issuer };
}

/** Listens on 127.0.0.1 (`port` 0: any free one) and says which port. */
export async function listen(app: FastifyInstance | BuiltApp['app'], port = 0): Promise<number> {
  await app.listen({ port, host: '127.0.0.1' });
  const address = app.server.address();
  if (typeof address !== 'object' || address === null) throw new Error('the server has no port');
  return address.port;
}

// ---------------------------------------------------------------------------------------------- OAuth

export interface Credentials {
  readonly clientId: string;
  readonly clientSecret: string;
}

/**
 * One setup call to the API, however the bench reaches it (over HTTP, or `inject` in process): the answer's
 * JSON, or a throw when the status is not the one expected.
 */
export type Call = (
  method: 'POST' | 'PUT',
  path: string,
  body: unknown,
  token?: string,
) => Promise<Record<string, unknown>>;

/** A new developer, signed up and signed in through the public API as a person would: their session token. */
export async function signUpDeveloper(call: Call): Promise<string> {
  const email = `bench-${randomUUID()}@example.com`;
  const password = `bench ${randomUUID()}`;
  await call('POST', '/v1/developers', { name: 'Bench', email, password });
  const session = await call('POST', '/v1/developers/sessions', { email, password });
  return String(session.token);
}

/** A client-credentials app of `developer`'s allowed `scope`, with its id for the app API. */
export async function registerApp(
  call: Call,
  developer: string,
  name: string,
  scope: string,
): Promise<Credentials & { readonly id: string }> {
  const app = await call(
    'POST',
    '/v1/apps',
    {
      name,
      redirectUris: ['http://localhost:3000/callback'],
      scopes: [scope],
      tokenEndpointAuthMethod: 'client_secret_basic',
    },
    developer,
  );
  return { id: String(app.id), clientId: String(app.clientId), clientSecret: String(app.clientSecret) };
}

/** openid-client's view of `issuer` for `app`; plain HTTP, since every server here is on 127.0.0.1. */
export function discover(issuer: string, app: Credentials): Promise<client.Configuration> {
  return client.discovery(
    new URL(issuer),
    app.clientId,
    undefined,
    client.ClientSecretBasic(app.clientSecret),
    { execute: [client.allowInsecureRequests] },
  );
}

/**
 * A DPoP-bound client-credentials token for `scope`, and `sign` to make a fresh proof for GET `htu` with
 * it. Our own key pair rather than openid-client's, so we can sign the proofs for the timed requests.
 */
export async function dpopBound(
  config: client.Configuration,
  scope: string,
  htu: string,
): Promise<{ token: string; sign: () => Promise<string> }> {
  const keyPair = await generateKeyPair('ES256');
  const jwk: JWK = await exportJWK(keyPair.publicKey);
  const DPoP = client.getDPoPHandle(config, keyPair);
  const token = (await client.clientCredentialsGrant(config, { scope }, { DPoP })).access_token;
  if ((decodeJwt(token).cnf as { jkt?: unknown } | undefined)?.jkt === undefined) {
    throw new Error('the DPoP grant returned a token not bound to a key');
  }
  const ath = createHash('sha256').update(token).digest('base64url');
  // Each proof has its own jti, as the server demands.
  const sign = () =>
    new SignJWT({ jti: randomUUID(), iat: Math.floor(Date.now() / 1000), htm: 'GET', htu, ath })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
      .sign(keyPair.privateKey);
  return { token, sign };
}

// ---------------------------------------------------------------------------------------------- load

/** What one request did: units of work done and refused (transfers, tokens, calls), and why. */
export interface Outcome {
  readonly ok: number;
  readonly failed: number;
  readonly error?: string;
}

export interface Load {
  /** Concurrent loops, each with one request in flight; `send` is told which loop it serves. */
  readonly clients: number;
  readonly send: (client: number) => Promise<Outcome>;
  /** Units a request counts as failed when it gets no answer at all: a whole batch. Default 1. */
  readonly unitsPerRequest?: number;
  /**
   * Which requests answered inside the window give a latency sample: `all`, or only `successes`
   * (those with nothing failed), where a fast refusal would otherwise flatter the figure.
   */
  readonly timed: 'all' | 'successes';
  /** The warm-up and the measured window; WARMUP_SECONDS and SECONDS unless given. */
  readonly warmupSeconds?: number;
  readonly seconds?: number;
  /** Where the timed latencies are also added: one distribution over several runs. */
  readonly latencies?: number[];
  /** Called as the measured window opens and as it closes. */
  readonly window?: { opened(): void; closed(): void };
}

/** The figures of one load run, as every bench reports them. */
export interface Measured {
  /** Latency of the timed requests answered inside the window. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Timed requests answered inside the window. */
  readonly requests: number;
  /** Units failed over the whole run, warm-up included: an error is an error whenever it happens. */
  readonly errors: number;
  readonly errorSamples: readonly string[];
}

export interface LoadResult extends Measured {
  /** Units done by requests answered inside the window: divided by SECONDS, the throughput. */
  readonly ok: number;
}

/**
 * Runs `clients` loops of `send` for the warm-up and then the measured window of SECONDS. Throughput and
 * latency count the requests that complete inside the window, so requests in flight at either edge
 * balance out.
 */
export async function runLoad(load: Load): Promise<LoadResult> {
  const unitsPerRequest = load.unitsPerRequest ?? 1;
  const windowStart = performance.now() + (load.warmupSeconds ?? WARMUP_SECONDS) * 1000;
  const windowEnd = windowStart + (load.seconds ?? SECONDS) * 1000;
  const latencies: number[] = [];
  let ok = 0;
  let errors = 0;
  const samples = new Set<string>();

  const loop = async (client: number) => {
    while (performance.now() < windowEnd) {
      const started = performance.now();
      const outcome = await load.send(client).catch(
        (error: unknown): Outcome => ({
          ok: 0,
          failed: unitsPerRequest,
          error: `network: ${error instanceof Error ? error.message : String(error)}`,
        }),
      );
      const finished = performance.now();
      errors += outcome.failed;
      if (outcome.error !== undefined && samples.size < ERROR_SAMPLES_MAX) samples.add(outcome.error);
      if (finished >= windowStart && finished <= windowEnd) {
        if (load.timed === 'all' || outcome.failed === 0) latencies.push(finished - started);
        ok += outcome.ok;
      }
    }
  };
  const { window } = load;
  const timers = window && [
    // A turn without warm-up opens its window now: a delay a hair below zero would only draw a warning.
    setTimeout(() => window.opened(), Math.max(0, windowStart - performance.now())),
    setTimeout(() => window.closed(), Math.max(0, windowEnd - performance.now())),
  ];
  await Promise.all(Array.from({ length: load.clients }, (_, client) => loop(client)));
  for (const timer of timers ?? []) clearTimeout(timer);
  if (load.latencies) for (const latency of latencies) load.latencies.push(latency);

  const stats = summarize(latencies);
  return {
    p50Ms: stats.p50Ms,
    p99Ms: stats.p99Ms,
    requests: stats.count,
    ok,
    errors,
    errorSamples: [...samples],
  };
}

/**
 * Several servers measured in turns, so that a drift of the machine slows them alike instead of whichever ran
 * during it: each warms up, then `rounds` rounds give each SECONDS / rounds seconds, in an order rotated
 * each round. `measure` runs one turn and returns its rate. With one round, each simply warms up and runs
 * SECONDS. Returns each round's rate of the second participant over the first.
 */
export async function inTurns<T>(
  participants: readonly T[],
  rounds: number,
  measure: (participant: T, warmupSeconds: number, seconds: number) => Promise<number>,
): Promise<number[]> {
  for (const participant of participants) {
    await measure(participant, WARMUP_SECONDS, rounds === 1 ? SECONDS : 0);
  }
  const ratios: number[] = [];
  for (let round = 0; rounds > 1 && round < rounds; round++) {
    const rates = new Map<T, number>();
    for (let turn = 0; turn < participants.length; turn++) {
      const participant = participants[(round + turn) % participants.length] as T;
      rates.set(participant, await measure(participant, 0, SECONDS / rounds));
    }
    const [first, second] = participants.map((participant) => rates.get(participant) ?? Number.NaN);
    ratios.push((second ?? Number.NaN) / (first ?? Number.NaN));
  }
  return ratios;
}

/**
 * What one participant's turns (`inTurns`) gathered: successes, errors, one latency distribution and, given
 * a way to read it, the CPU its processes took in the measured windows.
 */
export class TurnTally {
  readonly #latencies: number[] = [];
  readonly #errorSamples = new Set<string>();
  readonly #cpu: (() => CpuTaken | undefined) | undefined;
  #cpuTaken: CpuTaken | undefined = { serverUs: 0, postgresUs: 0 };
  #ok = 0;
  #errors = 0;

  constructor(cpu?: () => CpuTaken | undefined) {
    this.#cpu = cpu;
  }

  /** One turn through `runLoad`; returns its window's successes a second (0 for a warm-up alone). */
  async run(load: Omit<Load, 'latencies' | 'window'>): Promise<number> {
    const cpu = this.#cpu;
    let opened: CpuTaken | undefined;
    const window = cpu && {
      opened: () => {
        opened = cpu();
      },
      closed: () => {
        const closed = cpu();
        this.#cpuTaken = opened &&
          closed &&
          this.#cpuTaken && {
            serverUs: this.#cpuTaken.serverUs + closed.serverUs - opened.serverUs,
            postgresUs: this.#cpuTaken.postgresUs + closed.postgresUs - opened.postgresUs,
          };
      },
    };
    const result = await runLoad({ ...load, latencies: this.#latencies, ...(window && { window }) });
    this.#ok += result.ok;
    this.#errors += result.errors;
    for (const sample of result.errorSamples) this.#errorSamples.add(sample);
    const seconds = load.seconds ?? SECONDS;
    return seconds > 0 ? result.ok / seconds : 0;
  }

  /** Every turn so far, as one run whose windows add up to `seconds`. */
  measured(seconds: number): Measured & { readonly perSecond: number; readonly cpuPerUnit?: CpuTaken } {
    const stats = summarize(this.#latencies);
    const taken = this.#cpu && this.#ok > 0 ? this.#cpuTaken : undefined;
    return {
      p50Ms: stats.p50Ms,
      p99Ms: stats.p99Ms,
      requests: stats.count,
      errors: this.#errors,
      errorSamples: [...this.#errorSamples],
      perSecond: this.#ok / seconds,
      ...(taken && {
        cpuPerUnit: { serverUs: taken.serverUs / this.#ok, postgresUs: taken.postgresUs / this.#ok },
      }),
    };
  }
}

/** CPU time, in microseconds: a server process's (all its threads), and every PostgreSQL process's. */
export interface CpuTaken {
  readonly serverUs: number;
  readonly postgresUs: number;
}

// /proc reports CPU time in USER_HZ ticks, 100 a second on Linux whatever the kernel's own rate.
const US_PER_TICK = 10_000;

/** The CPU taken so far by `pid` and by the processes named postgres (Linux's /proc); undefined elsewhere. */
export function cpuTaken(pid: number | undefined): CpuTaken | undefined {
  const ticks = (stat: string) => {
    // The fields after the command name (which may hold spaces), from the 3rd: utime is the 14th, stime 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  };
  try {
    if (pid === undefined) return undefined;
    const serverUs = ticks(readFileSync(`/proc/${pid}/stat`, 'utf8')) * US_PER_TICK;
    let postgresUs = 0;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        if (stat.includes(' (postgres) ')) postgresUs += ticks(stat) * US_PER_TICK;
      } catch {
        // ended meanwhile
      }
    }
    return { serverUs, postgresUs };
  } catch {
    return undefined;
  }
}

/** "0.61, 0.58, … (median 0.60)": the rounds' ratios as `inTurns` gave them. */
export function roundsReport(ratios: readonly number[]): string {
  const sorted = [...ratios].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  return `${ratios.map((ratio) => ratio.toFixed(2)).join(', ')} (median ${median?.toFixed(2)})`;
}

export interface Stats {
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly count: number;
}

export function summarize(latencies: readonly number[]): Stats {
  const sorted = Float64Array.from(latencies).sort();
  return { p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), count: sorted.length };
}

/** The nearest-rank percentile: a latency some request really had, never an interpolation. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

// ---------------------------------------------------------------------------------------------- report

export const format = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
/** Milliseconds with two decimals below 10, where a tenth would hide the differences. */
export const ms = (n: number) => n.toFixed(n < 10 ? 2 : 1);
export const truncate = (text: string, max = 300) => (text.length > max ? `${text.slice(0, max)}…` : text);

/** A URL fit to print: the password never reaches the terminal. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/**
 * A results table: the first two columns (what was measured) left-aligned, the figures right-aligned, and
 * the last column (the verdict, as long as it needs to be) left as it is.
 */
export function printTable(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const last = header.length - 1;
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : i === last ? c : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

/** The server's first log lines, if it logged any: at LOG_LEVEL=warn each is worth a look. */
export function printServerLog(prefix: string, log: readonly string[]): void {
  if (log.length === 0) return;
  console.log(`${prefix}server logged ${log.length} lines at warn or above; the first:`);
  for (const entry of log.slice(0, ERROR_SAMPLES_MAX)) console.log(`    ${truncate(entry)}`);
}
