import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import type { Minor } from '../money.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { Ledger } from './service.ts';
import { executeItems, type LedgerItem } from './store.ts';

// ledger_execute on a long-lived connection, as the server's pool keeps them: the table it looks keys up
// in grows from nothing to many rows, and the lookup must stay an index lookup.
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

    const transfer = (key: string): LedgerItem => ({
      op: 'transfer',
      key,
      hash: key,
      id: uuidv7(),
      request: {
        postings: [
          { debitAccountId: debit, creditAccountId: credit, amount: { minor: 1n as Minor, scale: 2 } },
        ],
        pending: false,
        expiresAt: null,
        metadata: {},
      },
    });

    it('looks keys up by index after the table has grown, whatever it planned when the table was small', async () => {
      await db.session(async (session) => {
        // Enough calls for PL/pgSQL to settle on a plan, while the table holds a few rows.
        for (let i = 0; i < 8; i++) {
          const [result] = await executeItems(session, [transfer(`small-${i}`)], false, new Date());
          assert.equal(result?.ok, true);
        }
        await session.query(
          `insert into ledger_transfers (id, status, idempotency_key, debit_account_ids, credit_account_ids, amounts,
                                         exponents, created_at)
           select gen_random_uuid(), 'posted', 'grown-' || g, array[$1::uuid], array[$2::uuid], array[1::bigint],
                  array[2::smallint], now()
             from generate_series(1, 50000) g`,
          [debit, credit],
        );
        await session.query('begin');
        try {
          const [result] = await executeItems(session, [transfer('after-growth')], false, new Date());
          assert.equal(result?.ok, true);
          const [scans] = await session.query<{ seq: bigint }>(
            "select pg_stat_get_xact_tuples_returned('ledger_transfers'::regclass) as seq",
          );
          assert.equal(Number(scans?.seq), 0, 'no row of ledger_transfers read by a sequential scan');
        } finally {
          await session.query('rollback');
        }
      });
    });
  });
}
