// Ledger throughput benchmark: `npm run bench` (BENCH_SECONDS=10 by default).
//
// It drives the real server (`apibank serve` as a child process) over HTTP, because that is what clients
// pay for: JSON, validation, idempotency and the batcher all sit between a request and its commit. It runs
// once on the embedded PGlite and once on PostgreSQL when one answers, and for PostgreSQL also measures the
// machine's raw one-statement transaction rate, so a figure can be read against what the hardware allows.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { Pool } from 'undici';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SECONDS = positiveNumber('BENCH_SECONDS', 10);
const WARMUP_SECONDS = 2;
const CUSTOMERS = 1000;
const CLIENTS = 64;
const BATCH_CLIENTS = 4;
const BATCH_SIZE = 1000;
const HOT_SHARE = 0.8;
// Enough that no customer can run dry however the random walk goes: the benchmark measures transfers,
// not insufficient_funds refusals.
const CUSTOMER_FUNDING = '1000000.00';
const PG_URL =
  process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';
// The server has no schema setting, but postgres.js sends unknown URL parameters as startup parameters,
// so `?search_path=` confines the server (and `ledger verify`) to a schema we can drop afterwards.
const PG_SCHEMA = 'apibank_bench';
const ERROR_SAMPLES_MAX = 5;

type ScenarioName = 'single' | 'batched' | 'hot';
const TARGETS: Record<ScenarioName, { perSecond: number; zeroErrors: boolean }> = {
  single: { perSecond: 4_000, zeroErrors: false },
  batched: { perSecond: 50_000, zeroErrors: false },
  hot: { perSecond: 2_000, zeroErrors: true },
};

interface ScenarioResult {
  readonly name: ScenarioName;
  readonly transfersPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
  /** Failed transfers over the whole run, warm-up included: an error is an error whenever it happens. */
  readonly errors: number;
  readonly errorSamples: readonly string[];
}

interface DatabaseRun {
  readonly database: 'PGlite' | 'PostgreSQL';
  readonly scenarios: readonly ScenarioResult[];
  readonly verify: string;
  readonly serverLog: readonly string[];
  readonly rawTps?: { readonly tps: number; readonly how: string };
}

/** What one request did: transfers written, transfers refused, and why (for the first few). */
interface Outcome {
  readonly ok: number;
  readonly failed: number;
  readonly error?: string;
}

interface AccountJson {
  readonly id: string;
}
interface BatchJson {
  readonly results: readonly { readonly status: number; readonly problem?: unknown }[];
}
interface Posting {
  readonly debitAccountId: string;
  readonly creditAccountId: string;
  readonly amount: string;
}

async function main(): Promise<void> {
  const cpu = cpus();
  console.log(
    `ledger benchmark: ${SECONDS} s per scenario after ${WARMUP_SECONDS} s warm-up; ` +
      `node ${process.version}, ${cpu.length} CPUs (${cpu[0]?.model ?? 'unknown'}); ` +
      'client, server and database share this machine',
  );
  const runs: DatabaseRun[] = [];

  const dataDir = await mkdtemp(join(tmpdir(), 'apibank-bench-'));
  try {
    console.log('\n== PGlite (embedded)');
    runs.push(await benchDatabase('PGlite', { APIBANK_DATA_DIR: dataDir }));
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }

  if (await postgresReachable(PG_URL)) {
    console.log('\n== PostgreSQL');
    const admin = postgres(PG_URL, { max: 1, onnotice: () => {} });
    const pgDataDir = await mkdtemp(join(tmpdir(), 'apibank-bench-'));
    try {
      await admin.unsafe(`drop schema if exists ${PG_SCHEMA} cascade; create schema ${PG_SCHEMA}`);
      const url = new URL(PG_URL);
      url.searchParams.set('search_path', PG_SCHEMA);
      const run = await benchDatabase(
        'PostgreSQL',
        { APIBANK_DATA_DIR: pgDataDir, DATABASE_URL: url.toString(), DATABASE_POOL_MAX: '20' },
        async () => {
          // Proof the search_path parameter took effect: otherwise the server wrote into another schema.
          const [row] = await admin<{ n: number }[]>`
            select count(*)::int as n from information_schema.tables
            where table_schema = ${PG_SCHEMA} and table_name = 'schema_migrations'`;
          if (row?.n !== 1) throw new Error(`the server did not migrate into schema ${PG_SCHEMA}`);
        },
      );
      // Measured with the server stopped, so it does not compete for the same CPUs and disk.
      console.log(`raw PostgreSQL reference (${SECONDS} s)…`);
      runs.push({ ...run, rawTps: await rawPostgresTps(admin) });
    } finally {
      await admin.unsafe(`drop schema if exists ${PG_SCHEMA} cascade`).catch(() => {});
      await admin.end({ timeout: 5 });
      await rm(pgDataDir, { recursive: true, force: true });
    }
  } else {
    console.log(`\n== PostgreSQL: not reachable at ${redact(PG_URL)}; skipped (set BENCH_DATABASE_URL)`);
  }

  printReport(runs);
}

async function benchDatabase(
  database: DatabaseRun['database'],
  dbEnv: Record<string, string>,
  afterStart?: () => Promise<void>,
): Promise<DatabaseRun> {
  const token = randomBytes(32).toString('base64url');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // Never inherit a DATABASE_URL or production mode from the caller's shell: PGlite must be PGlite.
    DATABASE_URL: undefined,
    DATABASE_POOL_MAX: undefined,
    APIBANK_MODE: 'sandbox',
    HOST: '127.0.0.1',
    PORT: String(await freePort()),
    APIBANK_ADMIN_TOKEN: token,
    LOG_LEVEL: 'warn',
    ...dbEnv,
  };
  const server = await startServer(env);
  const scenarios: ScenarioResult[] = [];
  try {
    await afterStart?.();
    const api = new Api(`http://127.0.0.1:${env.PORT}`, token);
    try {
      const accounts = await setUpAccounts(api);
      for (const name of ['single', 'batched', 'hot'] as const) {
        process.stdout.write(`${name}… `);
        const result = await runScenario(name, api, accounts);
        console.log(
          `${format(result.transfersPerSecond)} transfers/s, p50 ${result.p50Ms.toFixed(1)} ms, ` +
            `p99 ${result.p99Ms.toFixed(1)} ms, ${result.errors} errors`,
        );
        scenarios.push(result);
      }
    } finally {
      await api.close();
    }
  } finally {
    await server.stop();
  }
  // After the server stops: PGlite's data directory admits one process at a time.
  const verify = await ledgerVerify(env);
  return { database, scenarios, verify, serverLog: server.log };
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

async function ledgerVerify(env: NodeJS.ProcessEnv): Promise<string> {
  const child = spawn(process.execPath, ['src/cli.ts', 'ledger', 'verify'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = collectLines(child);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code === 0) return lines.at(-1) ?? '(no output)';
  // A failed verification is a correctness bug, not a slow run: make `npm run bench` fail.
  process.exitCode = 1;
  return `exit ${code}:\n    ${lines.join('\n    ')}`;
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

// ---------------------------------------------------------------------------------------------- client

class Api {
  readonly #pool: Pool;
  readonly #token: string;

  constructor(origin: string, token: string) {
    // One connection per concurrent client and no pipelining: each client waits for its answer, as a
    // real caller would, so latency is the server's and not a queue inside this process.
    this.#pool = new Pool(origin, { connections: CLIENTS, pipelining: 1 });
    this.#token = token;
  }

  async post(
    path: string,
    body: unknown,
    idempotencyKey?: string,
  ): Promise<{ status: number; text: string }> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.#token}`,
      'content-type': 'application/json',
    };
    if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey;
    const response = await this.#pool.request({ path, method: 'POST', headers, body: JSON.stringify(body) });
    return { status: response.statusCode, text: await response.body.text() };
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

// Unique across runs too, so a rerun against a kept database could never replay an old response.
const KEY_PREFIX = `bench-${randomBytes(6).toString('hex')}`;
let keyCounter = 0;
const nextKey = () => `${KEY_PREFIX}-${keyCounter++}`;

const isSuccess = (status: number) => status >= 200 && status < 300;

interface Accounts {
  readonly customers: readonly string[];
  readonly merchant: string;
}

async function setUpAccounts(api: Api): Promise<Accounts> {
  const create = async (body: Record<string, unknown>): Promise<string> => {
    const response = await api.post('/v1/ledger/accounts', { currency: 'EUR', ...body });
    if (response.status !== 201) throw new Error(`creating an account: ${response.status} ${response.text}`);
    return (JSON.parse(response.text) as AccountJson).id;
  };
  // The funding account is the bank's own money: it may go negative, customers may not.
  const funding = await create({ normalBalance: 'credit', allowOverdraft: true, code: 'bench-funding' });
  const merchant = await create({ normalBalance: 'credit', code: 'bench-merchant' });
  const customers: string[] = [];
  for (let i = 0; i < CUSTOMERS; i += CLIENTS) {
    const size = Math.min(CLIENTS, CUSTOMERS - i);
    customers.push(
      ...(await Promise.all(Array.from({ length: size }, () => create({ normalBalance: 'credit' })))),
    );
  }
  const funded = await api.post('/v1/ledger/transfer-batches', {
    atomic: false,
    transfers: customers.map((customer) => ({
      key: nextKey(),
      postings: [{ debitAccountId: funding, creditAccountId: customer, amount: CUSTOMER_FUNDING }],
    })),
  });
  const failed = isSuccess(funded.status)
    ? (JSON.parse(funded.text) as BatchJson).results.filter((r) => !isSuccess(r.status)).length
    : CUSTOMERS;
  if (failed > 0)
    throw new Error(`funding ${failed} customers failed: ${funded.status} ${truncate(funded.text)}`);
  console.log(`set up ${CUSTOMERS} funded customers, a funding and a merchant account`);
  return { customers, merchant };
}

// ---------------------------------------------------------------------------------------------- scenarios

function runScenario(name: ScenarioName, api: Api, accounts: Accounts): Promise<ScenarioResult> {
  const { customers, merchant } = accounts;
  const customer = () => customers[Math.floor(Math.random() * customers.length)] as string;
  // A posting must move money between two different accounts.
  const customerToCustomer = (): Posting => {
    const from = customer();
    let to = customer();
    while (to === from) to = customer();
    return { debitAccountId: from, creditAccountId: to, amount: '0.01' };
  };
  const single = async (posting: Posting): Promise<Outcome> => {
    const response = await api.post('/v1/ledger/transfers', { postings: [posting] }, nextKey());
    return isSuccess(response.status)
      ? { ok: 1, failed: 0 }
      : { ok: 0, failed: 1, error: `${response.status} ${truncate(response.text)}` };
  };

  switch (name) {
    case 'single':
      return measure(name, CLIENTS, 1, () => single(customerToCustomer()));
    case 'hot':
      // Most transfers credit one account: the case where every transfer wants the same row lock.
      return measure(name, CLIENTS, 1, () =>
        single(
          Math.random() < HOT_SHARE
            ? { debitAccountId: customer(), creditAccountId: merchant, amount: '0.01' }
            : customerToCustomer(),
        ),
      );
    case 'batched':
      return measure(name, BATCH_CLIENTS, BATCH_SIZE, async () => {
        const transfers = Array.from({ length: BATCH_SIZE }, () => ({
          key: nextKey(),
          postings: [customerToCustomer()],
        }));
        const response = await api.post('/v1/ledger/transfer-batches', { atomic: false, transfers });
        if (!isSuccess(response.status)) {
          return { ok: 0, failed: BATCH_SIZE, error: `${response.status} ${truncate(response.text)}` };
        }
        // A non-atomic batch answers 200 even when some transfers fail: count them one by one.
        const refused = (JSON.parse(response.text) as BatchJson).results.filter((r) => !isSuccess(r.status));
        const first = refused[0];
        return {
          ok: BATCH_SIZE - refused.length,
          failed: refused.length,
          ...(first && { error: `item ${first.status} ${truncate(JSON.stringify(first.problem))}` }),
        };
      });
  }
}

/**
 * Runs `clients` loops of `send` for the warm-up and then the measured window. Throughput and latency
 * count the requests that complete inside the window, so requests in flight at either edge balance out.
 */
async function measure(
  name: ScenarioName,
  clients: number,
  transfersPerRequest: number,
  send: () => Promise<Outcome>,
): Promise<ScenarioResult> {
  const windowStart = performance.now() + WARMUP_SECONDS * 1000;
  const windowEnd = windowStart + SECONDS * 1000;
  const latencies: number[] = [];
  let transfers = 0;
  let errors = 0;
  const samples = new Set<string>();

  const loop = async () => {
    while (performance.now() < windowEnd) {
      const started = performance.now();
      const outcome = await send().catch(
        (error: unknown): Outcome => ({
          ok: 0,
          failed: transfersPerRequest,
          error: `network: ${error instanceof Error ? error.message : String(error)}`,
        }),
      );
      const finished = performance.now();
      errors += outcome.failed;
      if (outcome.error !== undefined && samples.size < ERROR_SAMPLES_MAX) samples.add(outcome.error);
      if (finished >= windowStart && finished <= windowEnd) {
        latencies.push(finished - started);
        transfers += outcome.ok;
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, loop));

  const sorted = Float64Array.from(latencies).sort();
  return {
    name,
    transfersPerSecond: transfers / SECONDS,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    requests: sorted.length,
    errors,
    errorSamples: [...samples],
  };
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

// ---------------------------------------------------------------------------------------------- PostgreSQL

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

/**
 * The machine's rate of one-statement write transactions from 64 clients: an upper bound of sorts for
 * single transfers, each of which must also be durable. pgbench when installed (no client overhead worth
 * speaking of); otherwise the same loop through postgres.js.
 */
async function rawPostgresTps(admin: postgres.Sql): Promise<{ tps: number; how: string }> {
  const rows = 10_000;
  await admin.unsafe(`
    create table ${PG_SCHEMA}.bench_ref (id int primary key, n bigint not null default 0);
    insert into ${PG_SCHEMA}.bench_ref (id) select generate_series(1, ${rows});`);
  const statement = `update ${PG_SCHEMA}.bench_ref set n = n + 1 where id = `;

  const dir = await mkdtemp(join(tmpdir(), 'apibank-pgbench-'));
  try {
    const script = join(dir, 'update.sql');
    await writeFile(script, `\\set id random(1, ${rows})\n${statement}:id;\n`);
    const args = [
      '-n',
      '-c',
      String(CLIENTS),
      '-j',
      '2',
      '-T',
      String(Math.ceil(SECONDS)),
      '-f',
      script,
      PG_URL,
    ];
    const result = await run('pgbench', args);
    const tps = /tps = ([\d.]+)/.exec(result.stdout)?.[1];
    if (result.code === 0 && tps !== undefined) {
      return { tps: Number(tps), how: `pgbench -c ${CLIENTS}, one-row update` };
    }
    if (result.code !== 'missing') {
      console.log(`pgbench failed (${result.code}); falling back to postgres.js:\n${result.stderr}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  const sql = postgres(PG_URL, { max: CLIENTS, onnotice: () => {} });
  try {
    const end = performance.now() + SECONDS * 1000;
    let done = 0;
    const loop = async () => {
      while (performance.now() < end) {
        await sql.unsafe(`${statement}$1`, [1 + Math.floor(Math.random() * rows)]);
        done++;
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, loop));
    return { tps: done / SECONDS, how: `postgres.js ${CLIENTS} loops, one-row update (pgbench not found)` };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

function run(
  command: string,
  args: readonly string[],
): Promise<{ code: number | 'missing' | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('error', (error: NodeJS.ErrnoException) =>
      resolve({ code: error.code === 'ENOENT' ? 'missing' : null, stdout, stderr: error.message }),
    );
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

// ---------------------------------------------------------------------------------------------- report

function printReport(runs: readonly DatabaseRun[]): void {
  const header = ['database', 'scenario', 'transfers/s', 'p50 ms', 'p99 ms', 'requests', 'errors', 'target'];
  const rows: string[][] = [];
  for (const run of runs) {
    for (const s of run.scenarios) {
      const target = TARGETS[s.name];
      const wanted = `≥ ${format(target.perSecond)}/s${target.zeroErrors ? ', 0 errors' : ''}`;
      const met = s.transfersPerSecond >= target.perSecond && (!target.zeroErrors || s.errors === 0);
      rows.push([
        run.database,
        s.name,
        format(s.transfersPerSecond),
        s.p50Ms.toFixed(1),
        s.p99Ms.toFixed(1),
        format(s.requests),
        String(s.errors),
        // Targets are for PostgreSQL; PGlite is one in-process connection, shown for information.
        run.database === 'PostgreSQL' ? `${wanted} ${met ? 'met' : 'MISSED'}` : `(info) ${wanted}`,
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : i === 7 ? c : c.padStart(widths[i] ?? 0)))
      .join('  ');

  console.log(
    `\n== Results (${SECONDS} s per scenario, ${CLIENTS} clients; batched: ${BATCH_CLIENTS} × ${BATCH_SIZE})`,
  );
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));

  for (const run of runs) {
    console.log(`\n${run.database}`);
    console.log(`  ledger verify: ${run.verify}`);
    if (run.rawTps) {
      const single = run.scenarios.find((s) => s.name === 'single');
      const ratio = single ? (single.transfersPerSecond / run.rawTps.tps).toFixed(2) : 'n/a';
      console.log(`  raw PostgreSQL: ${format(run.rawTps.tps)} tps (${run.rawTps.how})`);
      console.log(`  single transfers/s ÷ raw tps: ${ratio}`);
    }
    for (const s of run.scenarios) {
      for (const sample of s.errorSamples) console.log(`  ${s.name} error: ${sample}`);
    }
    if (run.serverLog.length > 0) {
      console.log(`  server logged ${run.serverLog.length} lines at warn or above; the first:`);
      for (const entry of run.serverLog.slice(0, ERROR_SAMPLES_MAX)) console.log(`    ${truncate(entry)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------- helpers

function positiveNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

const format = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
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
