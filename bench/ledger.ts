// Ledger throughput benchmark: `npm run bench` (BENCH_SECONDS=10 by default).
//
// It drives the real server (`apibank serve` as a child process) over HTTP, because that is what clients
// pay for: JSON, validation, idempotency and the batcher all sit between a request and its commit. It runs
// once on the embedded PGlite and once on PostgreSQL when one answers, and for PostgreSQL also measures the
// machine's raw one-statement transaction rate, so a figure can be read against what the hardware allows.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { Pool } from 'undici';
import {
  type Database,
  format,
  type Measured,
  machine,
  type Outcome,
  onPglite,
  onPostgres,
  PG_URL,
  printServerLog,
  printTable,
  runLoad,
  SECONDS,
  spawnCli,
  startServer,
  truncate,
  WARMUP_SECONDS,
} from './support.ts';

const CUSTOMERS = 1000;
const CLIENTS = 64;
const BATCH_CLIENTS = 4;
const BATCH_SIZE = 1000;
const HOT_SHARE = 0.8;
// Enough that no customer can run dry however the random walk goes: the benchmark measures transfers,
// not insufficient_funds refusals.
const CUSTOMER_FUNDING = '1000000.00';
// Where the PostgreSQL run lives (see onPostgres): the server, `ledger verify` and the raw reference.
const PG_SCHEMA = 'apibank_bench';

type ScenarioName = 'single' | 'batched' | 'hot';
const TARGETS: Record<ScenarioName, { perSecond: number; zeroErrors: boolean }> = {
  single: { perSecond: 4_000, zeroErrors: false },
  batched: { perSecond: 50_000, zeroErrors: false },
  hot: { perSecond: 2_000, zeroErrors: true },
};

/** `errors` counts failed transfers, not requests: a batch can fail some of its transfers. */
interface ScenarioResult extends Measured {
  readonly name: ScenarioName;
  readonly transfersPerSecond: number;
}

interface DatabaseRun {
  readonly database: Database['name'];
  readonly scenarios: readonly ScenarioResult[];
  readonly verify: string;
  readonly serverLog: readonly string[];
  readonly rawTps?: { readonly tps: number; readonly how: string };
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
  console.log(
    `ledger benchmark: ${SECONDS} s per scenario after ${WARMUP_SECONDS} s warm-up; ${await machine()}; ` +
      'client, server and database share this machine',
  );
  const runs: DatabaseRun[] = [];
  runs.push(await onPglite('apibank-bench-', benchDatabase));
  const postgresRun = await onPostgres(PG_SCHEMA, 'apibank-bench-', async (database, admin) => {
    const run = await benchDatabase(database);
    // Measured with the server stopped, so it does not compete for the same CPUs and disk.
    console.log(`raw PostgreSQL reference (${SECONDS} s)…`);
    return { ...run, rawTps: await rawPostgresTps(admin) };
  });
  if (postgresRun) runs.push(postgresRun);
  printReport(runs);
}

async function benchDatabase(database: Database): Promise<DatabaseRun> {
  const token = randomBytes(32).toString('base64url');
  const server = await startServer(database, token);
  const scenarios: ScenarioResult[] = [];
  try {
    const api = new Api(server.origin, token);
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
  const verify = await ledgerVerify(server.env);
  return { database: database.name, scenarios, verify, serverLog: server.log };
}

async function ledgerVerify(env: NodeJS.ProcessEnv): Promise<string> {
  const { child, lines } = spawnCli(['ledger', 'verify'], env);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code === 0) return lines.at(-1) ?? '(no output)';
  // A failed verification is a correctness bug, not a slow run: make `npm run bench` fail.
  process.exitCode = 1;
  return `exit ${code}:\n    ${lines.join('\n    ')}`;
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

/** `runLoad` for one scenario: each failed transfer is an error, and every request is timed. */
async function measure(
  name: ScenarioName,
  clients: number,
  transfersPerRequest: number,
  send: () => Promise<Outcome>,
): Promise<ScenarioResult> {
  // Refusals stay in the latency figures: a batch with a few refused transfers is still a request whose
  // wait counts, and the errors column says how many there were.
  const { ok, ...measured } = await runLoad({
    clients,
    send,
    unitsPerRequest: transfersPerRequest,
    timed: 'all',
  });
  return { name, transfersPerSecond: ok / SECONDS, ...measured };
}

// ---------------------------------------------------------------------------------------------- PostgreSQL

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
  console.log(
    `\n== Results (${SECONDS} s per scenario, ${CLIENTS} clients; batched: ${BATCH_CLIENTS} × ${BATCH_SIZE})`,
  );
  printTable(header, rows);

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
    printServerLog('  ', run.serverLog);
  }
}

await main();
