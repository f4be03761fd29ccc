import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import type { Minor } from '../money.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { planNodes, planPreferringIndexes, statementSentBy } from '../testing/plans.ts';
import { Ledger } from './service.ts';
import { executeItems, findExpiredPending, type LedgerItem, listEntryDetails } from './store.ts';

// ledger_execute on a long-lived connection, as the server's pool keeps them: the tables it looks keys and
// accounts up in grow from nothing to many rows, and every lookup must stay an index lookup.
for (const database of testDatabases()) {
  describe(`ledger_execute's plans on ${database.name}`, () => {
    let db: TestDb;
    let debit: string;
    let credit: string;
    before(async () => {
      db = await database.open();
      const ledger = new Ledger({ db });
      const open = async (allowOverdraft: boolean) =>
        (
          await ledger.createAccount({
            currency: 'EUR',
            exponent: 2,
            normalBalance: allowOverdraft ? 'debit' : 'credit',
            allowOverdraft,
            code: null,
            metadata: {},
          })
        ).account.id;
      debit = await open(true);
      credit = await open(false);
    });
    after(() => db.close());

    const soon = () => new Date(Date.now() + 60_000);
    const transfer = (key: string, expiresAt: Date | null = null): LedgerItem => ({
      op: 'transfer',
      key,
      hash: key,
      id: uuidv7(),
      request: {
        postings: [
          { debitAccountId: debit, creditAccountId: credit, amount: { minor: 1n as Minor, scale: 2 } },
        ],
        pending: expiresAt !== null,
        expiresAt,
        metadata: {},
      },
    });
    // The expiry sweep's call for a pending transfer, at a time past its expiry.
    const expire = (item: LedgerItem): LedgerItem => ({ op: 'expire', id: item.id });
    const later = () => new Date(Date.now() + 3_600_000);

    it('looks keys, accounts and expiring transfers up by index after the tables have grown, whatever it planned when they were small', async () => {
      await db.session(async (session) => {
        // Enough calls for PL/pgSQL to settle on a plan, while the table holds a few rows: transfers, and
        // expiries of pending ones.
        for (let i = 0; i < 8; i++) {
          const [result] = await executeItems(session, [transfer(`small-${i}`)], false, new Date());
          assert.equal(result?.ok, true);
          const pending = transfer(`small-pending-${i}`, soon());
          assert.equal((await executeItems(session, [pending], false, new Date()))[0]?.ok, true);
          assert.equal((await executeItems(session, [expire(pending)], false, later()))[0]?.ok, true);
        }
        const expiring = transfer('pending-before-growth', soon());
        assert.equal((await executeItems(session, [expiring], false, new Date()))[0]?.ok, true);
        await session.query(
          `insert into ledger_transfers (id, status, idempotency_key, debit_account_ids, credit_account_ids, amounts,
                                         exponents, created_at)
           select gen_random_uuid(), 'posted', 'grown-' || g, array[$1::uuid], array[$2::uuid], array[1::bigint],
                  array[2::smallint], now()
             from generate_series(1, 50000) g`,
          [debit, credit],
        );
        await session.query(
          `insert into ledger_accounts (id, currency, exponent, normal_balance, allow_overdraft, created_at)
           select gen_random_uuid(), 'EUR', 2, 'credit', false, now() from generate_series(1, 50000)`,
        );
        // Counted within one transaction, before and after: a backend reports its counts only now and then
        // when idle, so what the calls above read may not be reported yet.
        const reads = async () =>
          session.query<{ table: string; scanned: bigint; fetched: bigint }>(
            `select t as table, pg_stat_get_xact_tuples_returned(t::regclass) as scanned,
                    pg_stat_get_xact_tuples_fetched(t::regclass) as fetched
               from unnest(array['ledger_transfers', 'ledger_accounts']) t`,
          );
        for (const [what, item, now] of [
          ['a transfer', transfer('after-growth'), new Date()],
          ['an expiry', expire(expiring), later()],
        ] as const) {
          await session.query('begin');
          try {
            const before = await reads();
            const [result] = await executeItems(session, [item], false, now);
            assert.equal(result?.ok, true, `${what}: ${result?.ok === false ? result.code : 'ok'}`);
            // One call reads a few rows: none by a sequential scan, and no more than a few through an index
            // (a whole index read in order, to join against, is as slow as a sequential scan).
            for (const read of await reads()) {
              const start = before.find((row) => row.table === read.table);
              const scanned = Number(read.scanned) - Number(start?.scanned);
              const fetched = Number(read.fetched) - Number(start?.fetched);
              assert.equal(scanned, 0, `${what}: no row of ${read.table} read by a sequential scan`);
              assert.ok(fetched < 10, `${what}: ${fetched} rows of ${read.table} fetched through an index`);
            }
          } finally {
            await session.query('rollback');
          }
        }
      });
    });

    it('finds the transfers to expire through the pending ones’ own index', async () => {
      // The sweep runs every few seconds for as long as the bank runs.
      const { text, params } = await statementSentBy((sql) => findExpiredPending(sql, new Date(), 100));
      const plan = JSON.stringify(await planPreferringIndexes(db, text, params));
      assert.doesNotMatch(plan, /Seq Scan/, plan);
      assert.match(plan, /"Index Name":"ledger_transfers_expiring"/, plan);
    });

    it("pages an account's entries newest first through its key, the cursor an index condition", async () => {
      // Statements and the apps' transaction lists read them on every call: a page must not read the
      // account's every entry (and its transfer) to sort them, as it did with the cursor as `$2 is null or …`.
      for (const beforeSeq of [undefined, 100n]) {
        const { text, params } = await statementSentBy((sql) =>
          listEntryDetails(sql, randomUUID(), {}, beforeSeq, 50),
        );
        const plan = await planPreferringIndexes(db, text, params);
        const json = JSON.stringify(plan);
        assert.doesNotMatch(json, /Seq Scan|"Node Type":"Sort"/, json);
        const entries = planNodes(plan).filter((node) => node['Relation Name'] === 'ledger_entries');
        assert.equal(entries.length, 1, json);
        assert.match(entries[0]?.['Index Cond'] ?? '', /account_id = .*seq < /, json);
      }
    });
  });
}
