// Fraud screening latency: `node bench/fraud.ts` (BENCH_SCREENINGS=2000 by default).
//
// What screening adds to a payment: `FraudScreening.screen()` called as the payment path will call it,
// against a realistic history (10,000 screened payments: 500 customers with 20 payments each over the last
// 90 days, a few payees and devices each) with the default rules, on the embedded PGlite and on PostgreSQL
// when one answers. Each screening is timed whole: the read, the evaluation and the write of the verdict
// (and of the case, for the step-ups the default rules give). Inside the payment's transaction, as the
// payment path calls it: the verdict comes back before its record is written, and the payment's next
// statement (a `select 1` stands for it) goes out behind the record; the time runs until both are back,
// so it includes a round trip the payment makes anyway, and is an upper bound on what screening adds. On
// its own: with a commit of its own. One more row for a heavy customer (2,000 payments in 90 days), whose
// history is the most the queries read. Figures only, no assertions.
import { randomBytes } from 'node:crypto';
import { arrayLiteral, type Db, openDb, type Sql } from '../src/db/db.ts';
import { migrate } from '../src/db/migrate.ts';
import type { ScreeningInput } from '../src/fraud/rules.ts';
import { deviceKeyOf, FraudScreening } from '../src/fraud/service.ts';
import { machine, ms, PG_URL, printTable, redact } from './support.ts';

const CUSTOMERS = 500;
const PAYMENTS_PER_CUSTOMER = 20;
const HEAVY_CUSTOMER_PAYMENTS = 2000;
const PAYEES_PER_CUSTOMER = 5;
const DEVICES_PER_CUSTOMER = 2;
const HISTORY_DAYS = 90;
const SCREENINGS = Number(process.env.BENCH_SCREENINGS ?? 2000);
const WARMUP_SCREENINGS = 200;
const INSERT_BATCH_ROWS = 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
const PG_SCHEMA = 'apibank_bench_fraud';

// A seeded generator (mulberry32): the same history every run, so runs compare.
function random(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const uuid = (next: () => number) => {
  const hex = Array.from({ length: 32 }, () => Math.floor(next() * 16).toString(16)).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20)}`;
};
const iban = (next: () => number) =>
  `GB${String(10 + Math.floor(next() * 90))}BENC${Array.from({ length: 14 }, () => Math.floor(next() * 10)).join('')}`;

interface Customer {
  readonly id: string;
  readonly accountId: string;
  readonly payees: readonly string[];
  readonly devices: readonly string[];
  /** Typical payment, in cents: each customer's amounts spread around it. */
  readonly typicalMinor: number;
}

function customers(next: () => number, count: number): Customer[] {
  return Array.from({ length: count }, () => ({
    id: uuid(next),
    accountId: uuid(next),
    payees: Array.from({ length: PAYEES_PER_CUSTOMER }, () => iban(next)),
    devices: Array.from({ length: DEVICES_PER_CUSTOMER }, () => `device-${uuid(next)}`),
    typicalMinor: 1000 + Math.floor(next() * 20000),
  }));
}

const amountNear = (next: () => number, typicalMinor: number) =>
  BigInt(Math.max(1, Math.round(typicalMinor * (0.3 + next() * 1.4))));

/** Writes past screenings straight into the table: what 90 days of allowed payments leave behind. */
async function seedHistory(
  db: Db,
  next: () => number,
  people: readonly Customer[],
  perCustomer: number,
  now: Date,
) {
  const rows: unknown[][] = [];
  for (const customer of people) {
    for (let i = 0; i < perCustomer; i++) {
      rows.push([
        uuid(next),
        uuid(next),
        customer.id,
        customer.accountId,
        amountNear(next, customer.typicalMinor),
        'EUR',
        customer.payees[Math.floor(next() * customer.payees.length)],
        deviceKeyOf({ deviceId: customer.devices[Math.floor(next() * customer.devices.length)] }),
        new Date(now.getTime() - Math.floor(next() * HISTORY_DAYS * DAY_MS)).toISOString(),
      ]);
    }
  }
  for (let start = 0; start < rows.length; start += INSERT_BATCH_ROWS) {
    const batch = rows.slice(start, start + INSERT_BATCH_ROWS);
    const column = (index: number) => arrayLiteral(batch.map((row) => row[index] as string | bigint));
    await db.query(
      `insert into fraud_screenings (id, payment_id, customer_id, debtor_account_id, amount, currency,
         creditor_iban, device_key, at, verdict, reasons, rule_versions, rules_version, latency_us, in_history)
       select id, payment_id, customer_id, account_id, amount, currency, iban, device, at,
              'allow', '[]', '{}', 1, 0, true
         from unnest($1::text::uuid[], $2::text::uuid[], $3::text::uuid[], $4::text::uuid[], $5::text::bigint[],
                     $6::text::text[], $7::text::text[], $8::text::text[], $9::text::timestamptz[])
           as t (id, payment_id, customer_id, account_id, amount, currency, iban, device, at)`,
      [column(0), column(1), column(2), column(3), column(4), column(5), column(6), column(7), column(8)],
    );
  }
  // As autovacuum leaves a table that has had 90 days of traffic: statistics and a visibility map.
  await db.query('vacuum analyze fraud_screenings');
}

/** A payment as customers make them: mostly known payees and devices, sometimes a new one of either. */
function payment(next: () => number, customer: Customer, at: Date): ScreeningInput {
  return {
    paymentId: uuid(next),
    customerId: customer.id,
    debtorAccountId: customer.accountId,
    amountMinor: amountNear(next, customer.typicalMinor),
    currency: 'EUR',
    creditorIban:
      next() < 0.8 ? (customer.payees[Math.floor(next() * customer.payees.length)] ?? '') : iban(next),
    creditorName: 'Payee',
    at,
    context: {
      deviceId:
        next() < 0.9
          ? customer.devices[Math.floor(next() * customer.devices.length)]
          : `device-${uuid(next)}`,
      userAgent: 'Mozilla/5.0',
    },
  };
}

const percentile = (sorted: readonly number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;

/**
 * `inTransaction`: as the payment path calls it, inside the payment's own transaction, until its verdict
 * and, sent behind it, its record and the payment's next statement are back; the commit is the payment's
 * anyway. Otherwise on its own, its commit included.
 */
async function measure(
  db: Db,
  fraud: FraudScreening,
  next: () => number,
  pick: () => Customer,
  start: Date,
  count: number,
  inTransaction: boolean,
): Promise<{ totalMs: number[]; verdictMs: number[]; verdicts: Record<string, number> }> {
  const totalMs: number[] = [];
  const verdictMs: number[] = [];
  const verdicts: Record<string, number> = { allow: 0, step_up: 0, block: 0 };
  const since = (began: bigint) => Number(process.hrtime.bigint() - began) / 1e6;
  for (let i = 0; i < count; i++) {
    const input = payment(next, pick(), new Date(start.getTime() + i * 1000));
    const timed = async (sql?: Sql) => {
      const began = process.hrtime.bigint();
      const { verdict, recorded } = await fraud.screen(input, sql);
      verdictMs.push(since(began));
      if (sql) await Promise.all([recorded, sql.query('select 1')]);
      totalMs.push(since(began));
      verdicts[verdict] = (verdicts[verdict] ?? 0) + 1;
    };
    await (inTransaction ? db.transaction(timed) : timed());
  }
  return { totalMs, verdictMs, verdicts };
}

async function bench(name: string, db: Db): Promise<string[][]> {
  const next = random(42);
  const now = new Date();
  const people = customers(next, CUSTOMERS);
  const [heavy] = customers(next, 1);
  if (!heavy) throw new Error('no heavy customer');
  await seedHistory(db, next, people, PAYMENTS_PER_CUSTOMER, now);
  await seedHistory(db, next, [heavy], HEAVY_CUSTOMER_PAYMENTS, now);
  const fraud = new FraudScreening({ db });
  const anyone = () => people[Math.floor(next() * people.length)] as Customer;
  await measure(db, fraud, next, anyone, now, WARMUP_SCREENINGS, false);

  // The floor under every figure: the database's cheapest round trip, on this machine, now.
  const floor: number[] = [];
  for (let i = 0; i < SCREENINGS; i++) {
    const began = process.hrtime.bigint();
    await db.query('select 1');
    floor.push(Number(process.hrtime.bigint() - began) / 1e6);
  }
  floor.sort((a, b) => a - b);
  const rows: string[][] = [
    [
      name,
      'floor: `select 1`',
      '',
      String(SCREENINGS),
      ms(percentile(floor, 0.5)),
      ms(percentile(floor, 0.99)),
      ms(floor.at(-1) ?? Number.NaN),
      '',
      '',
      '',
    ],
  ];
  let hours = 0;
  for (const [label, pick, count, inTransaction] of [
    ['typical, in the payment tx', anyone, SCREENINGS, true],
    ['typical, own commit', anyone, SCREENINGS, false],
    ['heavy, in the payment tx', () => heavy, Math.min(SCREENINGS, 500), true],
  ] as const) {
    // Each scenario an hour after the last, so the recorded latencies below are its own.
    const startedAt = new Date(now.getTime() + ++hours * 3600_000);
    const [counted] = await db.query<{ n: bigint }>('select count(*) as n from fraud_screenings');
    const { totalMs, verdictMs, verdicts } = await measure(
      db,
      fraud,
      next,
      pick,
      startedAt,
      count,
      inTransaction,
    );
    // The verdict's own latency, as recorded with it: read and evaluation, without the write.
    const recorded = (
      await db.query<{ latency_us: number }>(
        'select latency_us from fraud_screenings where at >= $1 and at < $2 order by latency_us',
        [startedAt, new Date(startedAt.getTime() + 3600_000)],
      )
    ).map((row) => row.latency_us / 1000);
    const sorted = [...totalMs].sort((a, b) => a - b);
    const toVerdict = [...verdictMs].sort((a, b) => a - b);
    rows.push([
      name,
      label,
      String(counted?.n),
      String(count),
      ms(percentile(sorted, 0.5)),
      ms(percentile(sorted, 0.99)),
      ms(sorted.at(-1) ?? Number.NaN),
      `${ms(percentile(toVerdict, 0.5))} / ${ms(percentile(toVerdict, 0.99))}`,
      `${ms(percentile(recorded, 0.5))} / ${ms(percentile(recorded, 0.99))}`,
      `${verdicts.allow} / ${verdicts.step_up} / ${verdicts.block}`,
    ]);
  }
  return rows;
}

async function main() {
  console.log(`fraud screening latency — ${await machine()}`);
  const rows: string[][] = [];
  const pglite = await openDb({});
  try {
    await migrate(pglite);
    rows.push(...(await bench('PGlite', pglite)));
  } finally {
    await pglite.close();
  }
  let postgres: Db | undefined;
  try {
    postgres = await openDb({ url: PG_URL, schema: `${PG_SCHEMA}_${randomBytes(3).toString('hex')}` });
  } catch (error) {
    console.log(`PostgreSQL not reachable at ${redact(PG_URL)} (${String(error)}); skipped`);
  }
  if (postgres) {
    try {
      await migrate(postgres);
      rows.push(...(await bench('PostgreSQL', postgres)));
    } finally {
      const [schema] = await postgres.query<{ s: string }>('select current_schema() as s');
      if (schema?.s.startsWith(PG_SCHEMA)) await postgres.query(`drop schema ${schema.s} cascade`);
      await postgres.close();
    }
  }
  console.log();
  printTable(
    [
      'database',
      'scenario',
      'rows before',
      'screenings',
      'p50 ms',
      'p99 ms',
      'max ms',
      'to verdict p50/p99 ms',
      'recorded p50/p99 ms',
      'allow / step_up / block',
    ],
    rows,
  );
  console.log(
    '\nThe screen() call: one read, the evaluation, one write (the screening, and the case for a step-up).\n' +
      '"in the payment tx": until the verdict and, sent behind it, the write and the payment\'s next statement\n' +
      '(a `select 1`, whose round trip is counted) are back; the commit is the payment\'s. "own commit": the\n' +
      'call with a commit of its own. "to verdict": until screen() answers. "recorded" is the latency\n' +
      'stored with each verdict: the read and the evaluation only. Calls one after another.',
  );
}

await main();
