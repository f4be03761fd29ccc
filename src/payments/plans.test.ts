import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Sql } from '../db/db.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { planPreferringIndexes } from '../testing/plans.ts';
import { listPayments, type PassingStatus } from './store.ts';

// The recovery sweep runs every few seconds in every server, for as long as the bank runs: each of its
// statements must be an index lookup, never a scan of every payment ever made.
for (const database of testDatabases()) {
  describe(`the recovery sweep's statements on ${database.name}`, () => {
    let db: TestDb;
    before(async () => {
      db = await database.open();
    });
    after(() => db.close());

    for (const status of ['received', 'awaiting_sca', 'returning'] as const satisfies PassingStatus[]) {
      it(`finds payments stuck in ${status} through an index`, async () => {
        // The statement as the sweep sends it, with its parameters.
        let sent: { text: string; params: readonly unknown[] } | undefined;
        const capture: Sql = {
          query: async (text, params = []) => {
            sent = { text, params };
            return [];
          },
          script: async () => {},
        };
        await listPayments(capture, status, new Date(), 100);
        assert.ok(sent);
        const text = JSON.stringify(await planPreferringIndexes(db, sent.text, sent.params));
        assert.doesNotMatch(text, /Seq Scan/, text);
        // The status's own partial index (0012, 0025), which holds only the payments in it: any other index
        // would be read whole, every payment ever made, filtered.
        assert.match(text, new RegExp(`"Index Name":"payments_${status}"`), text);
      });
    }
  });
}
