// Payments benchmark: `node bench/payments.ts` (BENCH_SECONDS=10 by default).
//
// Payment initiation end to end against the real server (`apibank serve` as a child process) on local
// PostgreSQL, and on the embedded PGlite for comparison: sandbox customers signed in at the bank's pages
// pay small amounts to another bank (`POST /v1/me/payments`: session, idempotency, accounts, fraud
// screening, the ledger into the hot clearing account, the payment record and its outbox events). A third-party app's call adds
// the access-token and consent checks measured in bench/oauth.ts (DPoP +0.3 to 0.6 ms at p50); each of its
// payments also needs a customer's authorisation through the consent pages, which a load test cannot
// repeat thousands of times a second, so this bench pays as the customer.
import { randomUUID } from 'node:crypto';
import { Pool } from 'undici';
import {
  type Database,
  format,
  machine,
  ms,
  onPglite,
  onPostgres,
  printServerLog,
  printTable,
  runLoad,
  SECONDS,
  startServer,
  truncate,
  WARMUP_SECONDS,
} from './support.ts';

const ADMIN_TOKEN = 'bench-payments-operator-token-0123456789abcdef';
const CLIENTS = 32;
const TARGET_PER_S = 1500;
const TARGET_P99_MS = 50;
// The sandbox's generated customers (s1-customer0001 … 0020) share one published password.
const PAYERS = Array.from({ length: 20 }, (_, i) => `s1-customer${String(i + 1).padStart(4, '0')}`);

interface Payer {
  readonly cookie: string;
  readonly accountId: string;
  readonly currency: string;
}

async function signIn(origin: string, username: string): Promise<Payer> {
  const response = await fetch(`${origin}/me/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username, password: 'sandbox-password', code: '123456' }),
    redirect: 'manual',
  });
  const cookie = (response.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const accounts = (await (await fetch(`${origin}/v1/me/accounts`, { headers: { cookie } })).json()) as {
    accounts: { id: string; currency: string; product: string }[];
  };
  const current = accounts.accounts.find((account) => account.product === 'current');
  if (!current) throw new Error(`${username} has no current account`);
  return { cookie, accountId: current.id, currency: current.currency };
}

async function bench(database: Database): Promise<string[][]> {
  const server = await startServer(database, ADMIN_TOKEN);
  try {
    await database.check?.();
    const payers = await Promise.all(PAYERS.map((username) => signIn(server.origin, username)));
    // Fraud screening runs on every payment; its velocity rules would (rightly) stop twenty customers paying
    // a hundred times a second each, so the bench lifts their limits and measures the screening's cost.
    for (const rule of ['velocity_10m', 'velocity_24h']) {
      const lifted = await fetch(`${server.origin}/v1/admin/fraud/rules/${rule}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          changedBy: 'bench',
          parameters: {
            windowMinutes: rule === 'velocity_10m' ? 10 : 1440,
            maxCount: 10_000,
            maxAmounts: { EUR: '1000000.00', GBP: '1000000.00', USD: '1000000.00' },
          },
        }),
      });
      if (!lifted.ok) throw new Error(`lifting ${rule}: ${lifted.status} ${await lifted.text()}`);
    }
    const pool = new Pool(server.origin, { connections: CLIENTS });
    const run = await runLoad({
      clients: CLIENTS,
      timed: 'successes',
      async send(client) {
        const payer = payers[client % payers.length] as Payer;
        const response = await pool.request({
          method: 'POST',
          path: '/v1/me/payments',
          headers: {
            cookie: payer.cookie,
            'content-type': 'application/json',
            'idempotency-key': randomUUID(),
          },
          body: JSON.stringify({
            instructedAmount: { amount: '0.01', currency: payer.currency },
            creditor: { name: 'Other Bank Customer', iban: 'DE89370400440532013000' },
            reference: 'bench',
            debtorAccountId: payer.accountId,
          }),
        });
        const text = await response.body.text();
        const accepted = response.statusCode === 201 && text.includes('"status":"accepted"');
        return accepted
          ? { ok: 1, failed: 0 }
          : { ok: 0, failed: 1, error: `${response.statusCode} ${truncate(text)}` };
      },
    });
    await pool.close();
    const perSecond = run.ok / SECONDS;
    const met = perSecond >= TARGET_PER_S && run.p99Ms <= TARGET_P99_MS && run.errors === 0;
    console.log(
      `payments… ${format(perSecond)}/s, p50 ${ms(run.p50Ms)} ms, p99 ${ms(run.p99Ms)} ms, ${run.errors} errors${
        run.errorSamples.length ? `: ${run.errorSamples.join(' | ')}` : ''
      }`,
    );
    return [
      [
        database.name,
        `${format(perSecond)}/s`,
        ms(run.p50Ms),
        ms(run.p99Ms),
        format(run.requests),
        String(run.errors),
        database.name === 'PostgreSQL'
          ? `≥ ${format(TARGET_PER_S)}/s, p99 ≤ ${TARGET_P99_MS} ms: ${met ? 'met' : 'MISSED'}`
          : 'for comparison',
      ],
    ];
  } finally {
    await server.stop();
    printServerLog(database.name, server.log);
  }
}

console.log(
  `Payments benchmark: ${SECONDS} s after ${WARMUP_SECONDS} s warm-up, ${CLIENTS} clients; ${machine()}; client, server and database share this machine`,
);
const rows: string[][] = [];
rows.push(
  ...((await onPostgres('bench_payments', 'apibank-bench-payments-', (database) => bench(database))) ?? []),
);
rows.push(...(await onPglite('apibank-bench-payments-', (database) => bench(database))));
printTable(['database', 'payments', 'p50 ms', 'p99 ms', 'requests', 'errors', 'target'], rows);
