// Pages of the lists the API serves, read from their cursor through an index: each page reads about a
// page of rows, however many came before it, in the plan a prepared statement keeps (src/testing/plans.ts).
// A cursor or a filter written as `($n is null or id > $n)` is no index condition there, and each page read
// every row before it (or every customer's); UUID_MIN and UUID_MAX stand in for an absent cursor.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { listApps } from './apps/store.ts';
import type { Sql } from './db/db.ts';
import { listBlocklist, listCases } from './fraud/store.ts';
import { listAccounts } from './ledger/store.ts';
import { listCharges } from './mandates/store.ts';
import { listInReview } from './onboarding/store.ts';
import { listOrders } from './payments/orders-store.ts';
import { listBatches } from './payouts/store.ts';
import { type TestDb, testDatabases } from './testing/databases.ts';
import { planNodes, planPreferringIndexes, statementSentBy } from './testing/plans.ts';
import { listDeliveries } from './webhooks/store.ts';

/** A list's page, given a cursor or none, and the index that must serve it. */
const PAGES: {
  list: string;
  index: string;
  page: (sql: Sql, cursor: string | undefined) => Promise<unknown>;
}[] = [
  {
    list: "a mandate's charges",
    index: 'mandate_charges_list',
    page: (sql, c) => listCharges(sql, randomUUID(), c, 50),
  },
  {
    list: "a customer's payout batches",
    index: 'payout_batches_customer',
    page: (sql, c) => listBatches(sql, randomUUID(), c, 50),
  },
  {
    list: "a customer's payment orders",
    index: 'payment_orders_customer',
    page: (sql, c) => listOrders(sql, randomUUID(), c, 50),
  },
  {
    list: "an endpoint's deliveries",
    index: 'webhook_deliveries_log',
    page: (sql, c) => listDeliveries(sql, randomUUID(), c, undefined, 50),
  },
  {
    list: "an endpoint's pending deliveries",
    index: 'webhook_deliveries_log_status',
    page: (sql, c) => listDeliveries(sql, randomUUID(), c, 'pending', 50),
  },
  {
    list: 'the block list',
    index: 'fraud_blocklist_pkey',
    page: (sql, c) => listBlocklist(sql, c && 'GB82WEST12345698765432', 50),
  },
  {
    list: "a developer's apps",
    index: 'apps_developer',
    page: (sql, c) => listApps(sql, randomUUID(), c, 50),
  },
  { list: 'every app', index: 'apps_pkey', page: (sql, c) => listApps(sql, undefined, c, 50) },
  {
    list: 'the open fraud cases',
    index: 'fraud_cases_by_status',
    page: (sql, c) => listCases(sql, 'open', c, 50),
  },
  { list: 'every fraud case', index: 'fraud_cases_pkey', page: (sql, c) => listCases(sql, undefined, c, 50) },
  {
    list: 'the ledger accounts with a code',
    index: 'ledger_accounts_code',
    page: (sql, c) => listAccounts(sql, { code: 'bank:clearing-eur' }, c, 50),
  },
  {
    list: 'every ledger account',
    index: 'ledger_accounts_pkey',
    page: (sql, c) => listAccounts(sql, {}, c, 50),
  },
  {
    list: 'the applications in review',
    index: 'onboarding_applications_in_review',
    page: (sql, c) => listInReview(sql, c, 50),
  },
];

for (const database of testDatabases()) {
  describe(`pages of lists on ${database.name}`, () => {
    let db: TestDb;
    before(async () => {
      db = await database.open();
    });
    after(() => db.close());

    for (const { list, index, page } of PAGES) {
      it(`reads ${list} from the cursor through ${index}, with a cursor or none`, async () => {
        for (const cursor of [undefined, randomUUID()]) {
          const { text, params } = await statementSentBy((sql) => page(sql, cursor));
          const plan = await planPreferringIndexes(db, text, params);
          const json = JSON.stringify(plan);
          assert.doesNotMatch(json, /Seq Scan|"Node Type":"Sort"/, json);
          const scans = planNodes(plan).filter((node) => node['Index Name'] === index);
          assert.equal(scans.length, 1, json);
          assert.match(scans[0]?.['Index Cond'] ?? '', /COALESCE/, json);
        }
      });
    }
  });
}
