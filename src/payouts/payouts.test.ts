// Batch payouts end to end over HTTP: a business's user uploads a file, every line is checked before anything
// can move, another user of the business approves (maker-checker), and execution debits the payer once and
// credits each payee exactly once, also when the executing process dies half-way; the same file twice is
// one batch; and a batch of 10,000 transfers goes through.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse as InjectResponse } from 'fastify';
import { ibanFor } from '../accounts/iban.ts';
import { DEFAULT_BANK } from '../config.ts';
import { eventsAbout } from '../events/outbox.ts';
import { writePain001 } from '../iso20022/pain001.ts';
import { BankLedgerAccounts } from '../ledger/bank-accounts.ts';
import { balancesOf } from '../ledger/model.ts';
import { Ledger } from '../ledger/service.ts';
import type { BuiltApp } from '../main.ts';
import { createBusinessCustomer, createCustomer, startBank } from '../testing/bank.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { testPii } from '../testing/pii.ts';
import { EXECUTION_LEASE_MS, type LedgerStep, Payouts } from './service.ts';

const TOKEN = 'payouts-test-operator-token-0123456789abcdef';
const PASSWORD = 'payouts test password';
// Valid IBANs of other banks: payments there go out through clearing.
const EXTERNAL_IBAN = 'DE89370400440532013000';
const OTHER_EXTERNAL_IBAN = 'NL91ABNA0417164300';
// Well-formed, of this bank's country and bank code, and nobody's account.
const NOBODYS_IBAN = ibanFor(DEFAULT_BANK, 99_999_999n);
const HEADER = 'name,iban,amount,currency,reference,end_to_end_id';

interface BatchJson {
  id: string;
  status: string;
  format: string;
  messageId: string | null;
  debtorAccountId: string;
  currency: string;
  contentSha256: string;
  itemCount: number;
  totalAmount: string | null;
  progress: Record<'pending' | 'credited' | 'accepted' | 'settled' | 'failed' | 'cancelled', number>;
  debitedAmount: string | null;
  refundedAmount: string | null;
  failureCode: string | null;
  validation: {
    valid: boolean;
    errorCount: number;
    errors: { line: number; field: string; code: string; message: string }[];
  };
  uploadedBy: string;
  approvedBy: string | null;
  cancelledBy: string | null;
}
interface ItemJson {
  id: string;
  line: number;
  creditor: { name: string; iban: string };
  destination: string;
  amount: string;
  status: string;
  failureCode: string | null;
  reference: string | null;
  endToEndId: string | null;
}

for (const database of testDatabases()) {
  describe(`batch payouts on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    // The business Acme (two users), another business, a person, and payees.
    let acme: { customerId: string; loginIds: string[]; accountIds: string[]; ledgerAccountIds: string[] };
    let acmeAccount: string;
    let globexAccount: string;
    let patAccount: string;
    let payees: string[];
    let gbpPayee: string;
    let frozenPayee: string;
    const ibanOf = new Map<string, string>();
    const cookies = new Map<string, string>();
    let keys = 0;

    // ---- calls --------------------------------------------------------------------------------------------

    const signIn = async (username: string) => {
      const known = cookies.get(username);
      if (known) return known;
      const response = await built.app.inject({
        method: 'POST',
        url: '/me/sign-in',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ username, password: PASSWORD, code: '123456' }).toString(),
      });
      assert.equal(response.statusCode, 303, response.body);
      const cookie = String(response.headers['set-cookie']).split(';')[0] ?? '';
      cookies.set(username, cookie);
      return cookie;
    };
    const call = async (username: string, method: 'GET' | 'POST', url: string) =>
      built.app.inject({ method, url, headers: { cookie: await signIn(username) } });
    const upload = async (
      username: string,
      body: string,
      options: { key?: string; type?: string; account?: string | null } = {},
    ) =>
      built.app.inject({
        method: 'POST',
        url: `/v1/me/payout-batches${options.account === null ? '' : `?debtorAccountId=${options.account ?? acmeAccount}`}`,
        headers: {
          cookie: await signIn(username),
          'content-type': options.type ?? 'text/csv',
          'idempotency-key': options.key ?? `upload-${++keys}`,
        },
        payload: body,
      });
    const json = <T>(response: InjectResponse, status = 200): T => {
      assert.equal(response.statusCode, status, response.body);
      return response.json() as T;
    };
    const problem = (response: InjectResponse) => {
      assert.equal(
        response.headers['content-type'],
        'application/problem+json; charset=utf-8',
        response.body,
      );
      return [response.statusCode, (response.json() as { code: string }).code];
    };
    const batch = async (id: string, username = 'acme-maker') =>
      json<BatchJson>(await call(username, 'GET', `/v1/me/payout-batches/${id}`));
    const approve = (id: string, username = 'acme-checker') =>
      call(username, 'POST', `/v1/me/payout-batches/${id}/approve`);
    const allItems = async (id: string) => {
      const items: ItemJson[] = [];
      let cursor: string | null = null;
      do {
        const page: { items: ItemJson[]; nextCursor: string | null } = json(
          await call(
            'acme-maker',
            'GET',
            `/v1/me/payout-batches/${id}/items?limit=1000${cursor ? `&cursor=${cursor}` : ''}`,
          ),
        );
        items.push(...page.items);
        cursor = page.nextCursor;
      } while (cursor);
      return items;
    };

    /** A CSV file: one row per [name, iban, amount, currency, reference?, endToEndId?]. */
    const csv = (rows: readonly (readonly string[])[]) =>
      [HEADER, ...rows.map((row) => [...row, '', ''].slice(0, 6).join(','))].join('\n');
    const iban = (accountId: string) => ibanOf.get(accountId) ?? '';

    // ---- money --------------------------------------------------------------------------------------------

    const posted = async (accountId: string) => {
      const account = await built.accounts?.find(accountId);
      assert.ok(account, accountId);
      return (await built.accounts?.balances(account))?.posted ?? 0n;
    };
    const bankPosted = async (purpose: 'clearing' | 'settlement' | 'payouts') => {
      const [account] = await built.ledger.listAccounts({ code: `bank:${purpose}-eur` }, undefined, 1);
      return account ? balancesOf(account).posted : 0n;
    };
    const balances = async () =>
      Object.fromEntries(
        await Promise.all(
          [acmeAccount, ...payees, gbpPayee, frozenPayee].map(async (id) => [id, await posted(id)] as const),
        ),
      );
    /** Entries on the payer's ledger account: one debit per executed batch. */
    const payerEntries = async () =>
      (await built.ledger.listEntries(acme.ledgerAccountIds[0] as string, undefined, 1000)).length;
    const receive = async (accountId: string, amount: string) =>
      json(
        await built.app.inject({
          method: 'POST',
          url: '/v1/sandbox/incoming-payments',
          headers: { authorization: `Bearer ${TOKEN}`, 'idempotency-key': `incoming-${++keys}` },
          payload: {
            creditorIban: iban(accountId),
            instructedAmount: { amount, currency: 'EUR' },
            debtor: { name: 'Acme Holding' },
            reference: 'Funding',
          },
        }),
        201,
      );
    const verifyLedger = async () => {
      const report = await built.ledger.verify();
      assert.equal(
        report.ok,
        true,
        JSON.stringify(report, (_key, value) => (typeof value === 'bigint' ? String(value) : value)),
      );
    };

    before(async () => {
      db = await database.open();
      ({ built } = await startBank(db, { adminToken: TOKEN }));
      acme = await createBusinessCustomer(built, {
        name: 'Acme Payroll Ltd',
        usernames: ['acme-maker', 'acme-checker'],
        password: PASSWORD,
      });
      [acmeAccount = ''] = acme.accountIds;
      [globexAccount = ''] = (
        await createBusinessCustomer(built, {
          name: 'Globex Ltd',
          usernames: ['globex-maker', 'globex-checker'],
          password: PASSWORD,
        })
      ).accountIds;
      [patAccount = ''] = (await createCustomer(built, { username: 'pat', password: PASSWORD })).accountIds;
      const erin = await createCustomer(built, {
        username: 'erin',
        password: PASSWORD,
        accounts: [
          { product: 'current', currency: 'EUR' },
          { product: 'savings', currency: 'EUR' },
          { product: 'current', currency: 'GBP' },
          { product: 'savings', currency: 'EUR' },
        ],
      });
      const frank = await createCustomer(built, {
        username: 'frank',
        password: PASSWORD,
        accounts: [
          { product: 'current', currency: 'EUR' },
          { product: 'savings', currency: 'EUR' },
          { product: 'savings', currency: 'EUR' },
        ],
      });
      const [e1 = '', e2 = '', eGbp = '', eFrozen = ''] = erin.accountIds;
      payees = [e1, e2, ...frank.accountIds];
      gbpPayee = eGbp;
      frozenPayee = eFrozen;
      for (const id of [acmeAccount, globexAccount, patAccount, ...payees, gbpPayee, frozenPayee]) {
        ibanOf.set(id, (await built.accounts?.find(id))?.iban ?? '');
      }
      await built.accounts?.setStatus(frozenPayee, 'frozen');
      await receive(acmeAccount, '200000.00');
      await receive(globexAccount, '100.00');
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    it('checks every line before anything moves, and moves nothing until the file is fixed', async () => {
      const before = await balances();
      const entries = await payerEntries();
      const bad = csv([
        ['Erin Example', iban(payees[0] as string), '100.00', 'EUR', 'March salary', 'E2E-1'],
        ['Nobody Valid', 'DE89370400440532013001', '10.00', 'EUR'],
        ['Too Precise', EXTERNAL_IBAN, '10.505', 'EUR'],
        ['Pounds', EXTERNAL_IBAN, '10.00', 'GBP'],
        ['Ghost', NOBODYS_IBAN, '10.00', 'EUR'],
        ['Frozen', iban(frozenPayee), '10.00', 'EUR'],
        ['', EXTERNAL_IBAN, '10.00', 'EUR'],
        ['Twice', EXTERNAL_IBAN, '1.00', 'EUR', '', 'E2E-1'],
        ['Myself', iban(acmeAccount), '1.00', 'EUR'],
        ['Sterling Account', iban(gbpPayee), '1.00', 'EUR'],
        ['Zero', EXTERNAL_IBAN, '0.00', 'EUR'],
        ['Short row', EXTERNAL_IBAN],
      ]);
      const refused = await upload('acme-maker', bad);
      assert.deepEqual(problem(refused), [422, 'payout_batch_invalid']);
      const report = refused.json() as {
        batchId: string;
        errorCount: number;
        errors: BatchJson['validation']['errors'];
      };
      assert.deepEqual(
        report.errors.map((e) => [e.line, e.field, e.code]),
        [
          [2, 'iban', 'invalid_iban'],
          [3, 'amount', 'amount_scale_mismatch'],
          [4, 'currency', 'currency_mismatch'],
          [5, 'iban', 'unknown_account'],
          [6, 'iban', 'account_not_active'],
          [7, 'name', 'missing'],
          [8, 'endToEndId', 'duplicate_end_to_end_id'],
          [9, 'iban', 'same_account'],
          [10, 'iban', 'currency_mismatch'],
          [11, 'amount', 'invalid_amount'],
          [12, 'currency', 'missing'],
          [12, 'amount', 'missing'],
        ],
      );
      assert.equal(report.errorCount, 12);
      assert.match(report.errors[6]?.message ?? '', /line 1 has the same end-to-end id/);

      // The refused batch is on record with its report; it cannot be approved, and nothing moved.
      const recorded = await batch(report.batchId);
      assert.equal(recorded.status, 'invalid');
      assert.equal(recorded.totalAmount, null);
      assert.deepEqual(recorded.validation.errors, report.errors);
      assert.deepEqual(problem(await approve(report.batchId)), [409, 'payout_batch_not_approvable']);
      assert.equal(await built.payouts?.runDue(), 0);
      assert.deepEqual(await balances(), before);
      assert.equal(await payerEntries(), entries);
      assert.deepEqual(await allItems(report.batchId), []);
      // A refusal holds no key: the same key carries the fixed file.
      const fixed = csv([
        ['Erin Example', iban(payees[0] as string), '100.00', 'EUR', 'March salary', 'E2E-1'],
        ['Corner Supplier', EXTERNAL_IBAN, '10.5', 'EUR', 'Invoice 7'],
      ]);
      const accepted = json<BatchJson>(await upload('acme-maker', fixed, { key: `upload-${keys}` }), 201);
      assert.equal(accepted.status, 'awaiting_approval');
      assert.equal(accepted.totalAmount, '110.50');
      assert.deepEqual(accepted.validation, { valid: true, errorCount: 0, errors: [] });
      json(await approve(accepted.id));
      assert.equal(await built.payouts?.runDue(), 1);
      const done = await batch(accepted.id);
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.progress, {
        pending: 0,
        credited: 1,
        accepted: 1,
        settled: 0,
        failed: 0,
        cancelled: 0,
      });
      assert.equal(await posted(acmeAccount), (before[acmeAccount] as bigint) - 11_050n);
      assert.equal(await posted(payees[0] as string), (before[payees[0] as string] as bigint) + 10_000n);
      await verifyLedger();
    });

    it('needs a second user of the business to approve: never the uploader, never another customer', async () => {
      const file = csv([['Frank Example', iban(payees[2] as string), '12.34', 'EUR', 'Bonus']]);
      const uploaded = json<BatchJson>(await upload('acme-maker', file), 201);
      assert.equal(uploaded.uploadedBy, acme.loginIds[0]);

      assert.deepEqual(problem(await approve(uploaded.id, 'acme-maker')), [
        403,
        'payout_approver_is_uploader',
      ]);
      // Another business's users, and a person, do not even see it.
      for (const stranger of ['globex-checker', 'pat']) {
        assert.deepEqual(problem(await approve(uploaded.id, stranger)), [404, 'not_found']);
        assert.deepEqual(problem(await call(stranger, 'GET', `/v1/me/payout-batches/${uploaded.id}`)), [
          404,
          'not_found',
        ]);
        assert.deepEqual(problem(await call(stranger, 'GET', `/v1/me/payout-batches/${uploaded.id}/items`)), [
          404,
          'not_found',
        ]);
        assert.deepEqual(
          problem(await call(stranger, 'POST', `/v1/me/payout-batches/${uploaded.id}/cancel`)),
          [404, 'not_found'],
        );
      }
      assert.equal((await batch(uploaded.id)).status, 'awaiting_approval');
      // The schema holds the rule too, whatever a future code path might try.
      await assert.rejects(
        db.query('update payout_batches set approved_by = uploaded_by where id = $1', [uploaded.id]),
        /check/i,
      );

      const approved = json<BatchJson>(await approve(uploaded.id, 'acme-checker'));
      assert.equal(approved.status, 'approved');
      assert.equal(approved.approvedBy, acme.loginIds[1]);
      assert.deepEqual(problem(await approve(uploaded.id, 'acme-checker')), [
        409,
        'payout_batch_not_approvable',
      ]);
      // Either user of the business sees it, and the upload and approval are events in the outbox.
      assert.equal((await batch(uploaded.id, 'acme-checker')).id, uploaded.id);
      assert.deepEqual(
        (await eventsAbout(db, uploaded.id)).map((event) => event.type),
        ['payout.batch.received', 'payout.batch.approved'],
      );
      assert.equal(await built.payouts?.runDue(), 1);
      assert.equal((await batch(uploaded.id)).status, 'completed');

      // A person (one login) has no second user to approve: payouts are for businesses.
      assert.deepEqual(problem(await upload('pat', file, { account: patAccount })), [
        403,
        'payouts_business_only',
      ]);
    });

    it('recognises the same file twice, and replays the same Idempotency-Key', async () => {
      const file = csv([['Erin Example', iban(payees[1] as string), '5.00', 'EUR', 'Expenses']]);
      const key = `same-file-${++keys}`;
      const first = await upload('acme-maker', file, { key });
      const created = json<BatchJson>(first, 201);
      assert.equal(first.headers.location, `/v1/me/payout-batches/${created.id}`);

      const replay = await upload('acme-maker', file, { key });
      assert.equal(json<BatchJson>(replay).id, created.id);
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      // The same bytes under a new key, even from the other user: the same batch, answered 200.
      const again = await upload('acme-checker', file);
      assert.equal(json<BatchJson>(again).id, created.id);
      assert.equal(again.headers['idempotent-replayed'], undefined);
      // The key with another file is a misuse.
      const other = csv([['Erin Example', iban(payees[1] as string), '6.00', 'EUR', 'Expenses']]);
      assert.deepEqual(problem(await upload('acme-maker', other, { key })), [422, 'idempotency_key_reused']);
      const [{ n } = { n: 0 }] = await db.query<{ n: number }>(
        'select count(*)::int as n from payout_batches where content_sha256 = $1',
        [created.contentSha256],
      );
      assert.equal(n, 1);

      // Cancelled, it moved nothing: the same file may then be sent again, as a new batch.
      const cancelled = json<BatchJson>(
        await call('acme-checker', 'POST', `/v1/me/payout-batches/${created.id}/cancel`),
      );
      assert.equal(cancelled.status, 'cancelled');
      assert.equal(cancelled.cancelledBy, acme.loginIds[1]);
      assert.deepEqual(
        problem(await call('acme-maker', 'POST', `/v1/me/payout-batches/${created.id}/cancel`)),
        [409, 'payout_batch_not_cancellable'],
      );
      assert.deepEqual(problem(await approve(created.id)), [409, 'payout_batch_not_approvable']);
      const resent = json<BatchJson>(await upload('acme-maker', file), 201);
      assert.notEqual(resent.id, created.id);
      json(await approve(resent.id));
      await built.payouts?.runDue();
      assert.deepEqual(
        problem(await call('acme-maker', 'POST', `/v1/me/payout-batches/${resent.id}/cancel`)),
        [409, 'payout_batch_not_cancellable'],
      );
      // Paid, it is still the same file: sending it again answers with the paid batch and pays nothing.
      const before = await balances();
      assert.equal(json<BatchJson>(await upload('acme-maker', file)).id, resent.id);
      assert.deepEqual(await balances(), before);
    });

    it('ends every item of a cancelled batch with it, and runs none of them', async () => {
      const rows = [0, 1, 2].map((i) => ['Erin Example', iban(payees[i] as string), `1.0${i}`, 'EUR']);
      const uploaded = json<BatchJson>(await upload('acme-maker', csv(rows)), 201);
      json(await approve(uploaded.id));
      const before = await balances();
      const cancelled = json<BatchJson>(
        await call('acme-maker', 'POST', `/v1/me/payout-batches/${uploaded.id}/cancel`),
      );
      assert.equal(cancelled.status, 'cancelled');
      const ended = { pending: 0, credited: 0, accepted: 0, settled: 0, failed: 0, cancelled: 3 };
      assert.deepEqual(cancelled.progress, ended);
      assert.deepEqual(
        (await allItems(uploaded.id)).map((item) => [item.line, item.status]),
        [
          [1, 'cancelled'],
          [2, 'cancelled'],
          [3, 'cancelled'],
        ],
      );
      const events = await db.query<{ type: string; n: number }>(
        `select type, count(*)::int as n from outbox_events where payload->>'batchId' = $1 and type like '%.cancelled'
          group by type order by type`,
        [uploaded.id],
      );
      assert.deepEqual(
        [...events],
        [
          { type: 'payout.batch.cancelled', n: 1 },
          { type: 'payout.item.cancelled', n: 3 },
        ],
      );
      await built.payouts?.runDue();
      assert.deepEqual((await batch(uploaded.id)).progress, ended);
      assert.deepEqual(await balances(), before);
    });

    it('fails the whole batch, moving nothing, when the payer cannot cover the total', async () => {
      const tooMuch = csv([
        ['Erin Example', iban(payees[0] as string), '60.00', 'EUR'],
        ['Frank Example', iban(payees[2] as string), '60.00', 'EUR'],
      ]);
      const globex = json<BatchJson>(await upload('globex-maker', tooMuch, { account: globexAccount }), 201);
      const before = await balances();
      const globexBefore = await posted(globexAccount);
      const transit = await bankPosted('payouts');
      json(await approve(globex.id, 'globex-checker'));
      assert.equal(await built.payouts?.runDue(), 1);
      const failed = await batch(globex.id, 'globex-maker');
      assert.equal(failed.status, 'failed');
      assert.equal(failed.failureCode, 'insufficient_funds');
      assert.equal(failed.debitedAmount, null);
      assert.deepEqual(failed.progress, {
        pending: 0,
        credited: 0,
        accepted: 0,
        settled: 0,
        failed: 2,
        cancelled: 0,
      });
      assert.deepEqual(await balances(), before);
      assert.equal(await posted(globexAccount), globexBefore);
      assert.equal(await bankPosted('payouts'), transit);
      assert.deepEqual(
        (await eventsAbout(db, globex.id)).map((event) => event.type),
        ['payout.batch.received', 'payout.batch.approved', 'payout.batch.executing', 'payout.batch.failed'],
      );
      await verifyLedger();
    });

    it('fails a batch whose paying account was frozen before it ran, moving nothing', async () => {
      const file = csv([['Erin Example', iban(payees[0] as string), '10.00', 'EUR']]);
      const uploaded = json<BatchJson>(await upload('globex-maker', file, { account: globexAccount }), 201);
      json(await approve(uploaded.id, 'globex-checker'));
      await built.accounts?.setStatus(globexAccount, 'frozen');
      const before = await balances();
      try {
        assert.equal(await built.payouts?.runDue(), 1);
      } finally {
        await built.accounts?.setStatus(globexAccount, 'active');
      }
      const failed = await batch(uploaded.id, 'globex-checker');
      assert.deepEqual([failed.status, failed.failureCode], ['failed', 'debtor_account_not_active']);
      assert.deepEqual(await balances(), before);
    });

    it('debits the payer once, credits each payee with its reference, and settles payments to other banks', async () => {
      const file = csv([
        ['Erin Example', iban(payees[0] as string), '1000.00', 'EUR', 'April salary', 'PAY-APR-1'],
        ['Erin Savings', iban(payees[1] as string), '250.00', 'EUR', 'April savings', 'PAY-APR-2'],
        ['Frank Example', iban(payees[2] as string), '1500.00', 'EUR', 'April salary', 'PAY-APR-3'],
        ['Contractor GmbH', EXTERNAL_IBAN, '999.99', 'EUR', 'Invoice 2026-04', 'PAY-APR-4'],
        ['Freelancer BV', OTHER_EXTERNAL_IBAN, '0.01', 'EUR', 'Rounding', 'PAY-APR-5'],
      ]);
      const uploaded = json<BatchJson>(await upload('acme-checker', file), 201);
      await built.payouts?.settleCycle(); // what earlier tests left in clearing
      const before = await balances();
      const entries = await payerEntries();
      const clearing = await bankPosted('clearing');
      const settlement = await bankPosted('settlement');
      json(await approve(uploaded.id, 'acme-maker'));
      assert.equal(await built.payouts?.runDue(), 1);

      const done = await batch(uploaded.id);
      assert.equal(done.status, 'completed');
      assert.equal(done.debitedAmount, '3750.00');
      assert.equal(done.refundedAmount, '0.00');
      assert.deepEqual(done.progress, {
        pending: 0,
        credited: 3,
        accepted: 2,
        settled: 0,
        failed: 0,
        cancelled: 0,
      });
      assert.equal(await payerEntries(), entries + 1, 'one debit for the whole batch');
      assert.equal(await posted(acmeAccount), (before[acmeAccount] as bigint) - 375_000n);
      for (const [payee, minor] of [
        [payees[0], 100_000n],
        [payees[1], 25_000n],
        [payees[2], 150_000n],
      ] as const) {
        assert.equal(await posted(payee as string), (before[payee as string] as bigint) + minor);
      }
      assert.equal(await bankPosted('clearing'), clearing + 100_000n);
      assert.equal(await bankPosted('payouts'), 0n, 'the payouts account ends every batch as it began');

      // The payee's statement shows the line's reference and who paid (the payer's IBAN), no person's name.
      const erin = await call('erin', 'GET', `/v1/me/accounts/${payees[0]}/transactions?limit=1`);
      const [credit] = json<{ transactions: { reference: string; counterparty: { iban: string } }[] }>(
        erin,
      ).transactions;
      assert.equal(credit?.reference, 'April salary');
      assert.equal(credit?.counterparty.iban, iban(acmeAccount));

      const items = await allItems(uploaded.id);
      assert.deepEqual(
        items.map((item) => [
          item.line,
          item.creditor.name,
          item.destination,
          item.amount,
          item.status,
          item.endToEndId,
        ]),
        [
          [1, 'Erin Example', 'this_bank', '1000.00', 'credited', 'PAY-APR-1'],
          [2, 'Erin Savings', 'this_bank', '250.00', 'credited', 'PAY-APR-2'],
          [3, 'Frank Example', 'this_bank', '1500.00', 'credited', 'PAY-APR-3'],
          [4, 'Contractor GmbH', 'other_bank', '999.99', 'accepted', 'PAY-APR-4'],
          [5, 'Freelancer BV', 'other_bank', '0.01', 'accepted', 'PAY-APR-5'],
        ],
      );
      // Payees' names rest sealed.
      const stored = await db.query<{ creditor_name_enc: string }>(
        'select creditor_name_enc from payout_items where batch_id = $1',
        [uploaded.id],
      );
      assert.ok(
        stored.every(
          (row) => !row.creditor_name_enc.includes('Erin') && row.creditor_name_enc.startsWith('v1.'),
        ),
      );

      // The settlement cycle moves the batch's clearing money in one transfer; its items become settled.
      assert.deepEqual(await built.payouts?.settleCycle(), { settled: 1, deferred: 0 });
      assert.deepEqual(await built.payouts?.settleCycle(), { settled: 0, deferred: 0 });
      assert.equal(await bankPosted('clearing'), clearing);
      assert.equal(await bankPosted('settlement'), settlement - 100_000n);
      assert.deepEqual((await batch(uploaded.id)).progress, {
        pending: 0,
        credited: 3,
        accepted: 0,
        settled: 2,
        failed: 0,
        cancelled: 0,
      });
      const itemEvents = await db.query<{ type: string; n: number }>(
        `select type, count(*)::int as n from outbox_events where payload->>'batchId' = $1 and type like 'payout.item.%'
          group by type order by type`,
        [uploaded.id],
      );
      assert.deepEqual(
        itemEvents.map((row) => [row.type, row.n]),
        [
          ['payout.item.accepted', 2],
          ['payout.item.credited', 3],
          ['payout.item.settled', 2],
        ],
      );
      await verifyLedger();
    });

    it('fails only the lines whose payee account closed after approval, and debits the payer for the rest', async () => {
      const closing = (await createCustomer(built, { username: 'gwen', password: PASSWORD }))
        .accountIds[0] as string;
      const closingIban = (await built.accounts?.find(closing))?.iban ?? '';
      const file = csv([
        ['Gwen Example', closingIban, '40.00', 'EUR', 'Salary'],
        ['Frank Example', iban(payees[3] as string), '60.00', 'EUR', 'Salary'],
      ]);
      const uploaded = json<BatchJson>(await upload('acme-maker', file), 201);
      json(await approve(uploaded.id));
      await built.accounts?.setStatus(closing, 'frozen');
      const payer = await posted(acmeAccount);
      assert.equal(await built.payouts?.runDue(), 1);
      const done = await batch(uploaded.id);
      assert.equal(done.status, 'completed');
      assert.equal(done.debitedAmount, '60.00');
      assert.deepEqual(
        (await allItems(uploaded.id)).map((item) => [item.status, item.failureCode]),
        [
          ['failed', 'creditor_account_not_active'],
          ['credited', null],
        ],
      );
      assert.equal(await posted(acmeAccount), payer - 6000n);
      assert.equal(await posted(closing), 0n);
      await verifyLedger();
    });

    it('finishes a batch exactly once after its executor died mid-run, showing progress meanwhile', async () => {
      const lines = payees.flatMap((payee, i) => [
        [`Payee ${i} a`, iban(payee), `${i + 1}.00`, 'EUR', `Run ${i}`],
        [`Payee ${i} b`, iban(payee), `${i + 1}.50`, 'EUR', `Run ${i}`],
      ]);
      lines.push(['Abroad', EXTERNAL_IBAN, '7.77', 'EUR', 'Abroad']);
      const uploaded = json<BatchJson>(await upload('acme-maker', csv(lines)), 201);
      json(await approve(uploaded.id));
      const before = await balances();
      const clearing = await bankPosted('clearing');
      const pii = await testPii(db);
      const process = (
        now: () => Date,
        afterLedgerStep?: (step: LedgerStep, batchId: string) => Promise<void>,
      ) => {
        const ledger = new Ledger({ db, now });
        return new Payouts({
          db,
          ledger,
          bankAccounts: new BankLedgerAccounts(db, ledger),
          accounts: built.accounts as NonNullable<BuiltApp['accounts']>,
          customers: built.customers as NonNullable<BuiltApp['customers']>,
          pii,
          now,
          creditsPerCall: 3,
          ...(afterLedgerStep && { afterLedgerStep }),
        });
      };

      // The first executor dies right after its second ledger call, before recording what it moved.
      let credits = 0;
      const dying = process(
        () => new Date(),
        async (step) => {
          if (step !== 'credits') return;
          credits++;
          if (credits === 1) {
            // Progress is visible while the batch runs (this call's 3 items are not recorded yet).
            const running = await batch(uploaded.id);
            assert.equal(running.status, 'executing');
            assert.equal(running.debitedAmount, '40.27');
            assert.deepEqual(running.progress, {
              pending: lines.length,
              credited: 0,
              accepted: 0,
              settled: 0,
              failed: 0,
              cancelled: 0,
            });
          }
          if (credits === 2) {
            assert.deepEqual((await batch(uploaded.id)).progress.credited, 3);
            throw new Error('the process died');
          }
        },
      );
      await assert.rejects(dying.runDue(), /the process died/);
      const halfway = await batch(uploaded.id);
      assert.equal(halfway.status, 'executing');
      assert.equal(halfway.progress.credited, 3, 'the second call moved money it never recorded');

      // Restarted before the lease lapses, nothing takes the batch over; after, it is finished once.
      assert.equal(await process(() => new Date()).runDue(), 0);
      const later = () => new Date(Date.now() + EXECUTION_LEASE_MS + 1000);
      assert.equal(await process(later).runDue(), 1);
      assert.equal(await process(later).runDue(), 0);

      const done = await batch(uploaded.id);
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.progress, {
        pending: 0,
        credited: lines.length - 1,
        accepted: 1,
        settled: 0,
        failed: 0,
        cancelled: 0,
      });
      assert.equal(await posted(acmeAccount), (before[acmeAccount] as bigint) - 4027n);
      for (const [i, payee] of payees.entries()) {
        assert.equal(
          await posted(payee),
          (before[payee] as bigint) + BigInt(i + 1) * 200n + 50n,
          `payee ${i}`,
        );
      }
      assert.equal(await bankPosted('clearing'), clearing + 777n);
      assert.equal(await bankPosted('payouts'), 0n);
      // One executing event (the take-over is not a state change), one completion.
      const types = (await eventsAbout(db, uploaded.id)).map((event) => event.type);
      assert.deepEqual(types, [
        'payout.batch.received',
        'payout.batch.approved',
        'payout.batch.executing',
        'payout.batch.completed',
      ]);
      await verifyLedger();
    });

    it('takes a pain.001.001.09 file and refuses one its schema or its own totals refuse', async () => {
      const debtorIban = iban(acmeAccount);
      const xml = writePain001({
        messageId: 'ACME-PAYROLL-2026-05',
        createdAt: new Date('2026-05-28T09:00:00Z'),
        initiatingPartyName: 'Acme Payroll Ltd',
        paymentInformationId: 'PAYROLL-MAY',
        requestedExecutionDate: '2026-05-31',
        debtorName: 'Acme Payroll Ltd',
        debtorIban,
        transactions: [
          {
            endToEndId: 'MAY-1',
            amount: '2100.5',
            currency: 'EUR',
            creditorName: 'Erin & Co <Example>',
            creditorIban: iban(payees[0] as string),
            remittance: 'May salary',
          },
          {
            endToEndId: 'NOTPROVIDED',
            amount: '80',
            currency: 'EUR',
            creditorName: 'Contractor GmbH',
            creditorIban: EXTERNAL_IBAN,
          },
        ],
      });
      const uploaded = json<BatchJson>(
        await upload('acme-maker', xml, { type: 'application/xml', account: null }),
        201,
      );
      assert.equal(uploaded.format, 'pain.001.001.09');
      assert.equal(uploaded.messageId, 'ACME-PAYROLL-2026-05');
      assert.equal(uploaded.debtorAccountId, acmeAccount);
      assert.equal(uploaded.totalAmount, '2180.50');
      assert.deepEqual(
        (await allItems(uploaded.id)).map((item) => [
          item.creditor.name,
          item.amount,
          item.reference,
          item.endToEndId,
        ]),
        [
          ['Erin & Co <Example>', '2100.50', 'May salary', 'MAY-1'],
          ['Contractor GmbH', '80.00', null, null],
        ],
      );

      const schemaBroken = xml.replace('<PmtMtd>TRF</PmtMtd>', '<PmtMtd>WIRE</PmtMtd>');
      const refused = await upload('acme-maker', schemaBroken, { type: 'application/xml', account: null });
      assert.deepEqual(problem(refused), [422, 'payout_file_invalid']);
      const errors = (refused.json() as { errors: { line: number | null; message: string }[] }).errors;
      assert.match(errors[0]?.message ?? '', /PmtMtd/);
      assert.equal(typeof errors[0]?.line, 'number');
      const miscounted = xml.replace(/<CtrlSum>2180.5<\/CtrlSum>/g, '<CtrlSum>2180.51</CtrlSum>');
      assert.deepEqual(
        problem(await upload('acme-maker', miscounted, { type: 'application/xml', account: null })),
        [422, 'payout_file_invalid'],
      );
      // A file paying from somebody else's account is not found; one naming another account than asked, refused.
      const notOurs = xml.replaceAll(debtorIban, iban(globexAccount));
      assert.deepEqual(
        problem(await upload('acme-maker', notOurs, { type: 'application/xml', account: null })),
        [404, 'not_found'],
      );
      assert.deepEqual(
        problem(await upload('acme-maker', xml, { type: 'application/xml', account: globexAccount })),
        [422, 'payout_file_invalid'],
      );
    });

    it('refuses malformed uploads with a clear problem and stores nothing', async () => {
      const count = async () =>
        Number((await db.query<{ n: number }>('select count(*)::int as n from payout_batches'))[0]?.n);
      const before = await count();
      const good = csv([['Erin Example', iban(payees[0] as string), '1.00', 'EUR']]);
      const json415 = await built.app.inject({
        method: 'POST',
        url: `/v1/me/payout-batches?debtorAccountId=${acmeAccount}`,
        headers: { cookie: await signIn('acme-maker'), 'idempotency-key': 'json-body' },
        payload: { name: 'Erin' },
      });
      assert.deepEqual(problem(json415), [415, 'unsupported_media_type']);
      assert.deepEqual(problem(await upload('acme-maker', good, { account: null })), [
        400,
        'validation_failed',
      ]);
      assert.deepEqual(problem(await upload('acme-maker', good, { account: globexAccount })), [
        404,
        'not_found',
      ]);
      assert.deepEqual(problem(await upload('acme-maker', 'name,iban\nA,B')), [422, 'payout_file_invalid']);
      assert.deepEqual(problem(await upload('acme-maker', HEADER)), [422, 'payout_file_invalid']);
      assert.deepEqual(problem(await upload('acme-maker', '\u0000\u00ff')), [422, 'payout_file_invalid']);
      const huge = csv(Array.from({ length: 10_001 }, () => ['A', EXTERNAL_IBAN, '1.00', 'EUR']));
      assert.deepEqual(problem(await upload('acme-maker', huge)), [422, 'payout_batch_too_large']);
      const noKey = await built.app.inject({
        method: 'POST',
        url: `/v1/me/payout-batches?debtorAccountId=${acmeAccount}`,
        headers: { cookie: await signIn('acme-maker'), 'content-type': 'text/csv' },
        payload: good,
      });
      assert.deepEqual(problem(noKey), [400, 'idempotency_key_missing']);
      const signedOut = await built.app.inject({
        method: 'POST',
        url: `/v1/me/payout-batches?debtorAccountId=${acmeAccount}`,
        headers: { 'content-type': 'text/csv', 'idempotency-key': 'x' },
        payload: good,
      });
      assert.deepEqual(problem(signedOut), [401, 'unauthorized']);
      await built.accounts?.setStatus(acmeAccount, 'frozen');
      try {
        assert.deepEqual(problem(await upload('acme-maker', good)), [409, 'debtor_account_not_active']);
      } finally {
        await built.accounts?.setStatus(acmeAccount, 'active');
      }
      assert.equal(await count(), before);
    });

    const BIG = 10_000;
    it('pays a batch of 10,000 transfers end to end', async () => {
      const rows = Array.from({ length: BIG }, (_, i) => {
        const payee = i % 10 === 9 ? undefined : payees[i % payees.length];
        return [
          `Employee ${i + 1}`,
          payee ? iban(payee) : EXTERNAL_IBAN,
          `${(i % 9) + 1}.${String(i % 100).padStart(2, '0')}`,
          'EUR',
          `Payroll line ${i + 1}`,
          `BIG-${i + 1}`,
        ];
      });
      const totalMinor = rows.reduce((sum, row) => sum + BigInt((row[2] as string).replace('.', '')), 0n);
      const before = await balances();
      const entries = await payerEntries();
      const uploaded = json<BatchJson>(await upload('acme-maker', csv(rows)), 201);
      assert.equal(uploaded.itemCount, BIG);
      json(await approve(uploaded.id));
      assert.equal(await built.payouts?.runDue(), 1);
      const done = await batch(uploaded.id);
      assert.equal(done.status, 'completed');
      assert.equal(done.progress.credited + done.progress.accepted, BIG);
      assert.equal(done.progress.accepted, BIG / 10);
      assert.equal(await posted(acmeAccount), (before[acmeAccount] as bigint) - totalMinor);
      assert.equal(await payerEntries(), entries + 1);
      let credited = 0n;
      for (const payee of payees) credited += (await posted(payee)) - (before[payee] as bigint);
      const external = rows
        .filter((row) => row[1] === EXTERNAL_IBAN)
        .reduce((sum, row) => sum + BigInt((row[2] as string).replace('.', '')), 0n);
      assert.equal(credited, totalMinor - external);
      const items = await allItems(uploaded.id);
      assert.equal(items.length, BIG);
      assert.deepEqual(
        items.map((item) => item.line),
        Array.from({ length: BIG }, (_, i) => i + 1),
      );
      await verifyLedger();
    });
  });
}
