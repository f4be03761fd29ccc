import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { planPreferringIndexes, statementSentBy } from '../testing/plans.ts';
import { pendingItems } from './store.ts';

// A batch of up to 10,000 lines is credited a thousand at a time: each call must read only the lines still
// pending, never again those credited before it.
for (const database of testDatabases()) {
  describe(`the payout credit loop's statement on ${database.name}`, () => {
    let db: TestDb;
    before(async () => {
      db = await database.open();
    });
    after(() => db.close());

    it("reads a batch's pending lines through their own index", async () => {
      const { text, params } = await statementSentBy((sql) => pendingItems(sql, randomUUID(), 1000));
      const plan = JSON.stringify(await planPreferringIndexes(db, text, params));
      assert.doesNotMatch(plan, /Seq Scan/, plan);
      // The pending lines' partial index (0016), by batch and in line order: any other index of the
      // batch's lines would pass its finished ones again, filtered.
      assert.match(plan, /"Index Name":"payout_items_pending"/, plan);
      assert.doesNotMatch(plan, /"Node Type":"Sort"/, plan);
    });
  });
}
