import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Sql } from '../db/db.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { planPreferringIndexes, statementSentBy } from '../testing/plans.ts';
import { claimForSettlement, listPayments, type PassingStatus } from './store.ts';

// The recovery sweep and the settlement cycle run every few seconds in every server, for as long as the bank
// runs: each of their statements must be an index lookup, never a scan of every payment ever made.
for (const database of testDatabases()) {
  describe(`the payment sweeps' statements on ${database.name}`, () => {
    let db: TestDb;
    before(async () => {
      db = await database.open();
    });
    after(() => db.close());

    const planOf = async (send: (sql: Sql) => Promise<unknown>) => {
      const { text, params } = await statementSentBy(send);
      const plan = JSON.stringify(await planPreferringIndexes(db, text, params));
      assert.doesNotMatch(plan, /Seq Scan/, plan);
      return plan;
    };

    for (const status of ['received', 'awaiting_sca', 'returning'] as const satisfies PassingStatus[]) {
      it(`finds payments stuck in ${status} through an index`, async () => {
        const plan = await planOf((sql) => listPayments(sql, status, new Date(), 100));
        // The status's own partial index (0012, 0025), which holds only the payments in it: any other index
        // would be read whole, every payment ever made, filtered.
        assert.match(plan, new RegExp(`"Index Name":"payments_${status}"`), plan);
      });
    }

    it('claims payments to settle, and those a dead cycle left settling, through one index', async () => {
      const now = new Date();
      const plan = await planOf((sql) => claimForSettlement(sql, now, new Date(now.getTime() - 60_000), 500));
      // The outbound payments accepted or settling (0030), in the order the cycle takes them.
      assert.match(plan, /"Index Name":"payments_to_settle"/, plan);
    });
  });
}
