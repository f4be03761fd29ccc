// Concurrency on PostgreSQL: 32 clients spread over four Ledger instances (four pools, as four server
// processes would be), a handful of customer accounts and one hot merchant account credited by most
// transfers. No deadlock or serialisation failure may reach a client, no transfer into the hot account
// may fail, a key raced from two processes moves money once (also when one call finds the key taken only
// after waiting on the other's locks), and the ledger must verify afterwards.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { alone } from '../db/group-commit.ts';
import type { Minor } from '../money.ts';
import { POSTGRES_URL, postgresDatabase, type TestDb } from '../testing/databases.ts';
import type { Account } from './model.ts';
import { Ledger, type TransferOutcome } from './service.ts';

const CLIENTS = 32;
const INSTANCES = 4;
const OPS_PER_CLIENT = 60;

describe('ledger under concurrency on postgres', {
  skip: POSTGRES_URL ? false : 'TEST_DATABASE_URL is not set',
}, () => {
  const dbs: TestDb[] = [];
  const ledgers: Ledger[] = [];
  before(async () => {
    const first = await postgresDatabase(POSTGRES_URL as string).open({ poolMax: 4 });
    dbs.push(first);
    for (let i = 1; i < INSTANCES; i++) {
      dbs.push(await postgresDatabase(POSTGRES_URL as string).open({ poolMax: 4, schema: first.schema }));
    }
    for (const db of dbs) ledgers.push(new Ledger({ db }));
  });
  after(async () => {
    for (const db of dbs.slice(1)) await db.close();
    await dbs[0]?.close();
  });

  const open = async (allowOverdraft: boolean) =>
    (
      await (ledgers[0] as Ledger).createAccount({
        currency: 'EUR',
        exponent: 2,
        normalBalance: 'credit',
        allowOverdraft,
        code: null,
        metadata: {},
      })
    ).account;
  const cents = (n: number) => ({ minor: BigInt(n) as Minor, scale: 2 });
  const single = (debit: Account, credit: Account, amount: number, pending = false) => ({
    postings: [{ debitAccountId: debit.id, creditAccountId: credit.id, amount: cents(amount) }],
    pending,
    expiresAt: null,
    metadata: {},
  });

  it('keeps every invariant with 32 clients and a hot account', async () => {
    const ledger = ledgers[0] as Ledger;
    const bank = await open(true);
    const hot = await open(false);
    const customers: Account[] = [];
    for (let i = 0; i < 6; i++) customers.push(await open(false));
    // Customers hold enough that no transfer of this test can run them dry.
    for (const c of customers)
      assert.ok((await ledger.transfer(`fund-${c.id}`, single(bank, c, 10_000_000))).ok);

    const failures: string[] = [];
    let movedToHot = 0n;
    const record = (what: string, outcome: TransferOutcome) => {
      if (!outcome.ok) failures.push(`${what}: ${outcome.code}`);
      return outcome;
    };
    const client = async (n: number) => {
      const own = ledgers[n % INSTANCES] as Ledger;
      for (let i = 0; i < OPS_PER_CLIENT; i++) {
        const from = customers[(n + i) % customers.length] as Account;
        const roll = (n * 7919 + i * 104729) % 100;
        if (roll < 80) {
          const outcome = record('to hot', await own.transfer(`c${n}-${i}`, single(from, hot, 1 + (i % 50))));
          if (outcome.ok && !outcome.replayed) movedToHot += BigInt(1 + (i % 50));
        } else if (roll < 90) {
          const to = customers[(n + i + 1) % customers.length] as Account;
          record('between customers', await own.transfer(`c${n}-${i}`, single(from, to, 3)));
        } else {
          const hold = record('hold', await own.transfer(`c${n}-${i}`, single(from, hot, 5, true)));
          if (hold.ok) {
            const settled = record('post', await own.post(hold.transfer.id, undefined));
            if (settled.ok) movedToHot += 5n;
          }
        }
        // Replay an earlier request: it must answer from the stored response and move nothing.
        if (i % 10 === 9) {
          const replay = await own.transfer(
            `c${n}-${i - 9}`,
            single(customers[(n + i - 9) % customers.length] as Account, hot, 1 + ((i - 9) % 50)),
          );
          if ((n * 7919 + (i - 9) * 104729) % 100 < 80) {
            assert.ok(replay.ok && replay.replayed, 'replay of an earlier transfer');
          }
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, n) => client(n)));
    assert.deepEqual(failures, []);

    // The same key from two processes at once: money moves once, and both answers name the same transfer
    // (or the loser is told its twin is in flight).
    const raced = await Promise.all(
      ledgers.map((l) => l.transfer('raced-key', single(customers[0] as Account, hot, 7))),
    );
    const transfers = new Set(raced.flatMap((r) => (r.ok ? [r.transfer.id] : [])));
    assert.equal(transfers.size, 1);
    assert.ok(raced.every((r) => r.ok || r.code === 'idempotency_key_in_flight'));
    movedToHot += 7n;

    const stored = await ledger.getAccount(hot.id);
    assert.equal(stored?.creditsPosted, movedToHot);
    const report = await ledger.verify();
    assert.deepEqual(report.discrepancies, []);
    assert.equal(report.ok, true);
  });

  it('answers as a replay a key another process committed while its call waited, moving the money once', async () => {
    const [here, there] = ledgers as [Ledger, Ledger];
    const bank = await open(true);
    const payee = await open(false);
    const request = single(bank, payee, 5);
    const held = await (dbs[0] as TestDb).transaction(async (tx) => {
      const first = await here.transferIn(alone(tx), 'held-key', request);
      // The other process's call, under the same key: it finds no transfer with the key yet, then waits on
      // the accounts this transaction has locked; once it commits, the key is taken.
      const second = there.transfer('held-key', request);
      await waitForLockWait(dbs[2] as TestDb);
      return { first, second };
    });
    const second = await held.second;
    assert.ok(held.first.ok && second.ok);
    assert.equal(second.replayed, true);
    assert.equal(second.transfer.id, held.first.transfer.id);
    assert.equal((await here.getAccount(payee.id))?.creditsPosted, 5n);
  });
});

/** Until some connection of the test's database waits on a lock. */
async function waitForLockWait(db: TestDb): Promise<void> {
  for (let tries = 0; tries < 500; tries++) {
    const [row] = await db.query<{ waiting: boolean }>(
      `select exists (select 1 from pg_stat_activity
                       where datname = current_database() and wait_event_type = 'Lock'
                         and query like '%ledger_execute%') as waiting`,
    );
    if (row?.waiting) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('no connection waited on a lock');
}
