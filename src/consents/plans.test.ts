import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { planPreferringIndexes, statementSentBy } from '../testing/plans.ts';
import { listCustomerConsents } from './store.ts';

// A customer's consents, at the bank's pages and through the API: a page reads the customer's own, from the
// cursor on, never the consents of every customer before it.
for (const database of testDatabases()) {
  describe(`a customer's consents' statement on ${database.name}`, () => {
    let db: TestDb;
    before(async () => {
      db = await database.open();
    });
    after(() => db.close());

    for (const [page, afterId] of [
      ['the first page', undefined],
      ['a later page', randomUUID()],
    ] as const) {
      for (const type of [undefined, 'mandate'] as const) {
        it(`reads ${page}${type ? ` of ${type} consents` : ''} through the customer's index, from the cursor`, async () => {
          const { text, params } = await statementSentBy((sql) =>
            listCustomerConsents(sql, randomUUID(), type, afterId, 50, new Date()),
          );
          const plan = JSON.stringify(await planPreferringIndexes(db, text, params));
          assert.doesNotMatch(plan, /Seq Scan|"Node Type":"Sort"/, plan);
          assert.match(plan, /"Index Name":"consents_customer"/, plan);
          assert.match(plan, /"Index Cond":"\(\(customer_id = \$1\) AND \(id > COALESCE\(/, plan);
        });
      }
    }
  });
}
