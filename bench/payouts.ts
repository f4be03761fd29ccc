// Batch payouts benchmark: `node bench/payouts.ts` (BENCH_PAYOUT_ITEMS=10000 by default).
//
// One payroll batch end to end against the real server (`apibank serve` as a child process) on local
// PostgreSQL, and on the embedded PGlite for comparison: the sandbox business's first user uploads a CSV of
// 10,000 credit transfers (nine in ten to the sandbox's generated customers at this bank, one in ten to
// another bank), its second user approves it, and the bench polls the batch until it completes. Execution
// is timed by the server (the batch's startedAt to completedAt: the payer's one debit, every credit, the
// item records and their outbox events) and by the client (approval to seeing `completed`, which includes
// up to a second before an executor picks the batch up). The same lines as pain.001.001.09 are uploaded
// too, to time the schema validation (that batch is then cancelled).
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { writePain001 } from '../src/iso20022/pain001.ts';
import { SANDBOX_BUSINESS } from '../src/sandbox/seed.ts';
import {
  type Database,
  format,
  machine,
  ms,
  onPglite,
  onPostgres,
  printServerLog,
  printTable,
  startServer,
} from './support.ts';

const ADMIN_TOKEN = 'bench-payouts-operator-token-0123456789abcdef';
const ITEMS = Number(process.env.BENCH_PAYOUT_ITEMS ?? 10_000);
const TARGET_EXECUTION_MS = 10_000;
const POLL_MS = 50;
const EXTERNAL_IBAN = 'DE89370400440532013000';
// The sandbox's generated customers (s1-customer0001 … 0020) share one published password.
const PAYEES = Array.from({ length: 20 }, (_, i) => `s1-customer${String(i + 1).padStart(4, '0')}`);

async function signIn(origin: string, username: string, password: string): Promise<string> {
  const response = await fetch(`${origin}/me/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username, password, code: '123456' }),
    redirect: 'manual',
  });
  if (response.status !== 303) throw new Error(`${username} could not sign in: ${response.status}`);
  return (response.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
}

async function accountsOf(origin: string, cookie: string) {
  const response = await fetch(`${origin}/v1/me/accounts`, { headers: { cookie } });
  return ((await response.json()) as { accounts: { id: string; iban: string; currency: string }[] }).accounts;
}

interface Batch {
  id: string;
  status: string;
  progress: Record<string, number>;
  startedAt: string | null;
  completedAt: string | null;
  failureCode: string | null;
}

async function bench(database: Database): Promise<string[][]> {
  const server = await startServer(database, ADMIN_TOKEN);
  const { origin } = server;
  try {
    const maker = await signIn(origin, SANDBOX_BUSINESS.username, SANDBOX_BUSINESS.password);
    const checker = await signIn(
      origin,
      SANDBOX_BUSINESS.secondUser.username,
      SANDBOX_BUSINESS.secondUser.password,
    );
    const [payer] = await accountsOf(origin, maker);
    if (!payer) throw new Error('the sandbox business has no account');
    const payees: string[] = [];
    for (const username of PAYEES) {
      const cookie = await signIn(origin, username, 'sandbox-password');
      for (const account of await accountsOf(origin, cookie)) {
        if (account.currency === payer.currency) payees.push(account.iban);
      }
    }
    const lines = Array.from({ length: ITEMS }, (_, i) => ({
      name: `Employee ${i + 1}`,
      iban: i % 10 === 9 ? EXTERNAL_IBAN : (payees[i % payees.length] as string),
      amount: `${(i % 9) + 1}.${String(i % 100).padStart(2, '0')}`,
      reference: `Payroll ${i + 1}`,
      endToEndId: `BENCH-${i + 1}`,
    }));
    // The sandbox business's opening balance covers a small payroll; this one needs more.
    const funded = await fetch(`${origin}/v1/sandbox/incoming-payments`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${ADMIN_TOKEN}`,
        'content-type': 'application/json',
        'idempotency-key': randomUUID(),
      },
      body: JSON.stringify({
        creditorIban: payer.iban,
        instructedAmount: { amount: '100000.00', currency: payer.currency },
        debtor: { name: 'Northwind Holding' },
        reference: 'Payroll funding',
      }),
    });
    if (funded.status !== 201) throw new Error(`funding: ${funded.status} ${await funded.text()}`);

    const upload = async (body: string, type: string, query: string) => {
      const started = performance.now();
      const response = await fetch(`${origin}/v1/me/payout-batches${query}`, {
        method: 'POST',
        headers: { cookie: maker, 'content-type': type, 'idempotency-key': randomUUID() },
        body,
      });
      const text = await response.text();
      if (response.status !== 201) throw new Error(`upload: ${response.status} ${text.slice(0, 500)}`);
      return { batch: JSON.parse(text) as Batch, ms: performance.now() - started };
    };
    const csv = [
      'name,iban,amount,currency,reference,end_to_end_id',
      ...lines.map((l) => [l.name, l.iban, l.amount, payer.currency, l.reference, l.endToEndId].join(',')),
    ].join('\n');
    const xml = writePain001({
      messageId: `BENCH-${randomUUID().slice(0, 8)}`,
      createdAt: new Date(),
      initiatingPartyName: 'Northwind Ltd',
      paymentInformationId: 'BENCH',
      requestedExecutionDate: new Date().toISOString().slice(0, 10),
      debtorName: 'Northwind Ltd',
      debtorIban: payer.iban,
      transactions: lines.map((l) => ({
        endToEndId: `X${l.endToEndId}`,
        amount: l.amount,
        currency: payer.currency,
        creditorName: l.name,
        creditorIban: l.iban,
        remittance: l.reference,
      })),
    });

    const xmlUpload = await upload(xml, 'application/xml', '');
    await fetch(`${origin}/v1/me/payout-batches/${xmlUpload.batch.id}/cancel`, {
      method: 'POST',
      headers: { cookie: checker },
    });
    const csvUpload = await upload(csv, 'text/csv', `?debtorAccountId=${payer.id}`);
    const id = csvUpload.batch.id;

    const approvedAt = performance.now();
    const approved = await fetch(`${origin}/v1/me/payout-batches/${id}/approve`, {
      method: 'POST',
      headers: { cookie: checker },
    });
    if (approved.status !== 200) throw new Error(`approve: ${approved.status} ${await approved.text()}`);
    let batch: Batch;
    let midRun = 0;
    const deadline = approvedAt + 120_000;
    for (;;) {
      batch = (await (
        await fetch(`${origin}/v1/me/payout-batches/${id}`, { headers: { cookie: maker } })
      ).json()) as Batch;
      if (batch.status === 'completed' || batch.status === 'failed') break;
      const done = ITEMS - (batch.progress.pending ?? 0);
      if (batch.status === 'executing' && done > 0) midRun++;
      if (performance.now() > deadline) throw new Error(`batch still ${batch.status} after 120 s`);
      await sleep(POLL_MS);
    }
    const seenMs = performance.now() - approvedAt;
    if (batch.status !== 'completed') throw new Error(`batch ${batch.status}: ${batch.failureCode}`);
    const executionMs = Date.parse(batch.completedAt ?? '') - Date.parse(batch.startedAt ?? '');
    const paid = (batch.progress.credited ?? 0) + (batch.progress.accepted ?? 0);
    const met = executionMs < TARGET_EXECUTION_MS && paid === ITEMS;
    console.log(
      `payouts… ${format(ITEMS)} items: CSV upload ${ms(csvUpload.ms)} ms, pain.001 upload ${ms(xmlUpload.ms)} ms, execution ${ms(executionMs)} ms (${format((ITEMS / executionMs) * 1000)}/s), approval to completed seen ${ms(seenMs)} ms, ${midRun} polls saw partial progress`,
    );
    return [
      [
        database.name,
        format(ITEMS),
        ms(csvUpload.ms),
        ms(xmlUpload.ms),
        ms(executionMs),
        ms(seenMs),
        String(midRun),
        database.name === 'PostgreSQL'
          ? `execution < ${format(TARGET_EXECUTION_MS)} ms: ${met ? 'met' : 'MISSED'}`
          : 'for comparison',
      ],
    ];
  } finally {
    await server.stop();
    printServerLog(database.name, server.log);
  }
}

console.log(
  `Payouts benchmark: one batch of ${format(ITEMS)} transfers; ${await machine()}; client, server and database share this machine`,
);
const rows: string[][] = [];
rows.push(
  ...((await onPostgres('bench_payouts', 'apibank-bench-payouts-', (database) => bench(database))) ?? []),
);
rows.push(...(await onPglite('apibank-bench-payouts-', (database) => bench(database))));
printTable(
  [
    'database',
    'items',
    'CSV upload ms',
    'pain.001 upload ms',
    'execution ms',
    'approve→done ms',
    'partial polls',
    'target',
  ],
  rows,
);
