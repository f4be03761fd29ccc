import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ParsedAmount, parseAmount } from '../money.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import {
  type Account,
  balancesOf,
  type NewAccountRequest,
  type Transfer,
  type TransferRequest,
} from './model.ts';
import { Ledger, type TransferOutcome } from './service.ts';

export const amount = (text: string): ParsedAmount => {
  const parsed = parseAmount(text);
  assert.ok(parsed, `test amount ${text}`);
  return parsed;
};

function ok(outcome: TransferOutcome): Transfer {
  if (!outcome.ok) assert.fail(`expected success, got ${outcome.code}`);
  return outcome.transfer;
}

for (const database of testDatabases()) {
  describe(`ledger service on ${database.name}`, () => {
    let db: TestDb;
    let clock = new Date('2026-01-01T00:00:00Z');
    let ledger: Ledger;
    let counter = 0;
    const key = () => `key-${++counter}`;

    before(async () => {
      db = await database.open();
      ledger = new Ledger({ db, now: () => clock });
    });
    after(() => db.close());

    const open = async (overrides: Partial<NewAccountRequest> = {}): Promise<Account> =>
      (
        await ledger.createAccount({
          currency: 'EUR',
          exponent: 2,
          normalBalance: 'credit',
          allowOverdraft: false,
          code: null,
          metadata: {},
          ...overrides,
        })
      ).account;
    const balances = async (account: Account) => {
      const current = await ledger.getAccount(account.id);
      assert.ok(current);
      return balancesOf(current);
    };
    const single = (
      debit: Account,
      credit: Account,
      text: string,
      extra: { pending?: boolean; expiresAt?: Date } = {},
    ): TransferRequest => ({
      postings: [{ debitAccountId: debit.id, creditAccountId: credit.id, amount: amount(text) }],
      pending: extra.pending ?? false,
      expiresAt: extra.expiresAt ?? null,
      metadata: {},
    });
    const transfer = (...args: Parameters<typeof single>) => ledger.transfer(key(), single(...args));
    /** A funded customer: a bank-side account with overdraft pays in `text`. */
    const funded = async (text: string, overrides: Partial<NewAccountRequest> = {}) => {
      const bank = await open({ allowOverdraft: true, ...overrides });
      const customer = await open(overrides);
      ok(await transfer(bank, customer, text));
      return { bank, customer };
    };

    it('moves money on both sides and records each side with its resulting balance', async () => {
      const { bank, customer } = await funded('100.00');
      const merchant = await open();
      const t = ok(await transfer(customer, merchant, '30.25'));
      assert.equal(t.status, 'posted');
      assert.deepEqual(await balances(customer), { posted: 6975n, pending: 0n, available: 6975n });
      assert.deepEqual(await balances(merchant), { posted: 3025n, pending: 0n, available: 3025n });
      assert.deepEqual(await balances(bank), { posted: -10000n, pending: 0n, available: -10000n });
      const entries = await ledger.listEntries(customer.id, undefined, 10);
      assert.deepEqual(
        entries.map((e) => [e.side, e.amount, e.balance, e.transferId === t.id]),
        [
          ['debit', 3025n, 6975n, true],
          ['credit', 10000n, 10000n, false],
        ],
      );
    });

    it('refuses to overdraw and changes nothing, whichever posting of a transfer fails', async () => {
      const { customer } = await funded('10.00');
      const merchant = await open();
      const before = await ledger.getAccount(customer.id);
      const outcome = await ledger.transfer(key(), {
        postings: [
          { debitAccountId: customer.id, creditAccountId: merchant.id, amount: amount('6.00') },
          { debitAccountId: customer.id, creditAccountId: merchant.id, amount: amount('6.00') },
        ],
        pending: false,
        expiresAt: null,
        metadata: {},
      });
      assert.deepEqual(outcome, { ok: false, code: 'insufficient_funds', posting: 1 });
      assert.deepEqual(await ledger.getAccount(customer.id), before);
      assert.deepEqual(await balances(merchant), { posted: 0n, pending: 0n, available: 0n });
      assert.equal((await ledger.listEntries(merchant.id, undefined, 10)).length, 0);
    });

    it('keeps a debit-normal account without overdraft from going below zero too', async () => {
      const asset = await open({ normalBalance: 'debit' });
      const other = await open({ allowOverdraft: true });
      assert.deepEqual(await transfer(other, asset, '0.01'), {
        ok: false,
        code: 'insufficient_funds',
        posting: 0,
      });
      ok(await transfer(asset, other, '1.00'));
      ok(await transfer(other, asset, '1.00'));
      assert.deepEqual(await balances(asset), { posted: 0n, pending: 0n, available: 0n });
      assert.deepEqual(await transfer(other, asset, '0.01'), {
        ok: false,
        code: 'insufficient_funds',
        posting: 0,
      });
    });

    it('names the first thing wrong with a posting', async () => {
      const eur = await open({ allowOverdraft: true });
      const eur2 = await open();
      const jpy = await open({ currency: 'JPY', exponent: 0 });
      const missing = '00000000-0000-7000-8000-000000000000';
      assert.deepEqual(await transfer(eur, { ...eur2, id: missing }, '1.00'), {
        ok: false,
        code: 'account_not_found',
        posting: 0,
      });
      assert.deepEqual(await transfer(eur, jpy, '100'), { ok: false, code: 'currency_mismatch', posting: 0 });
      assert.deepEqual(await transfer(eur, eur2, '1.0'), {
        ok: false,
        code: 'amount_scale_mismatch',
        posting: 0,
      });
      assert.deepEqual(await transfer(eur, eur, '1.00'), { ok: false, code: 'accounts_must_be_different' });
    });

    it('replays a key with the same request and refuses it for another, moving money once', async () => {
      const { customer } = await funded('50.00');
      const merchant = await open();
      const request = {
        postings: [{ debitAccountId: customer.id, creditAccountId: merchant.id, amount: amount('20.00') }],
        pending: false,
        expiresAt: null,
        metadata: { order: 'A-1' },
      };
      const first = await ledger.transfer('order-A-1', request);
      const again = await ledger.transfer('order-A-1', { ...request, metadata: { order: 'A-1' } });
      assert.ok(first.ok && again.ok);
      assert.equal(again.replayed, true);
      assert.deepEqual(again.transfer, first.transfer);
      const changed = await ledger.transfer('order-A-1', { ...request, metadata: { order: 'A-2' } });
      assert.deepEqual(changed, { ok: false, code: 'idempotency_key_reused' });
      assert.equal((await balances(merchant)).posted, 2000n);
    });

    it('answers a twin that arrives while the first is running with in-flight', async () => {
      const { customer } = await funded('50.00');
      const merchant = await open();
      const request = {
        postings: [{ debitAccountId: customer.id, creditAccountId: merchant.id, amount: amount('1.00') }],
        pending: false,
        expiresAt: null,
        metadata: {},
      };
      const [a, b] = await Promise.all([ledger.transfer('twin', request), ledger.transfer('twin', request)]);
      assert.ok(a.ok);
      assert.deepEqual(b, { ok: false, code: 'idempotency_key_in_flight' });
      assert.equal((await balances(merchant)).posted, 100n);
    });

    it('reserves funds for a pending transfer and posts it in full', async () => {
      const { customer } = await funded('10.00');
      const merchant = await open();
      const hold = ok(await transfer(customer, merchant, '4.00', { pending: true }));
      assert.equal(hold.status, 'pending');
      assert.deepEqual(await balances(customer), { posted: 1000n, pending: -400n, available: 600n });
      assert.deepEqual(await balances(merchant), { posted: 0n, pending: 400n, available: 0n });
      assert.deepEqual(await transfer(customer, merchant, '7.00'), {
        ok: false,
        code: 'insufficient_funds',
        posting: 0,
      });
      const posted = ok(await ledger.post(hold.id, undefined));
      assert.equal(posted.status, 'posted');
      assert.deepEqual(await balances(customer), { posted: 600n, pending: 0n, available: 600n });
      assert.deepEqual(await balances(merchant), { posted: 400n, pending: 0n, available: 400n });
      assert.deepEqual(await ledger.post(hold.id, undefined), { ok: false, code: 'transfer_already_posted' });
      assert.deepEqual(await ledger.void(hold.id), { ok: false, code: 'transfer_already_posted' });
    });

    it('posts a smaller amount and releases the rest', async () => {
      const { customer } = await funded('10.00');
      const merchant = await open();
      const hold = ok(await transfer(customer, merchant, '4.00', { pending: true }));
      assert.deepEqual(await ledger.post(hold.id, amount('4.01')), {
        ok: false,
        code: 'amount_exceeds_pending',
      });
      assert.deepEqual(await ledger.post(hold.id, amount('1.5')), {
        ok: false,
        code: 'amount_scale_mismatch',
      });
      const posted = ok(await ledger.post(hold.id, amount('2.50')));
      assert.equal(posted.postedAmount, 250n);
      assert.deepEqual(await balances(customer), { posted: 750n, pending: 0n, available: 750n });
      assert.deepEqual(await balances(merchant), { posted: 250n, pending: 0n, available: 250n });
      assert.equal((await ledger.getTransfer(hold.id))?.postedAmount, 250n);
    });

    it('replays a post under its key, refuses the key for another action, and forgets refusals', async () => {
      const { customer } = await funded('10.00');
      const merchant = await open();
      const hold = ok(await transfer(customer, merchant, '4.00', { pending: true }));
      const first = ok(await ledger.post(hold.id, amount('3.00'), 'post-key'));
      const again = await ledger.post(hold.id, amount('3.00'), 'post-key');
      assert.ok(again.ok && again.replayed);
      assert.deepEqual(again.transfer, first);
      assert.deepEqual(await ledger.void(hold.id, 'post-key'), { ok: false, code: 'idempotency_key_reused' });
      const other = ok(await transfer(customer, merchant, '1.00', { pending: true }));
      assert.deepEqual(await ledger.post(other.id, amount('9.00'), 'retry-key'), {
        ok: false,
        code: 'amount_exceeds_pending',
      });
      assert.ok((await ledger.post(other.id, amount('1.00'), 'retry-key')).ok);
      assert.equal((await balances(merchant)).posted, 400n);
    });

    it('refuses a partial post of a transfer with several postings', async () => {
      const { customer } = await funded('10.00');
      const a = await open();
      const b = await open();
      const hold = ok(
        await ledger.transfer(key(), {
          postings: [
            { debitAccountId: customer.id, creditAccountId: a.id, amount: amount('1.00') },
            { debitAccountId: customer.id, creditAccountId: b.id, amount: amount('1.00') },
          ],
          pending: true,
          expiresAt: null,
          metadata: {},
        }),
      );
      assert.deepEqual(await ledger.post(hold.id, amount('0.50')), {
        ok: false,
        code: 'partial_post_requires_single_posting',
      });
      ok(await ledger.post(hold.id, undefined));
      assert.equal((await balances(customer)).posted, 800n);
    });

    it('voids a pending transfer, releasing the reservation', async () => {
      const { customer } = await funded('10.00');
      const merchant = await open();
      const hold = ok(await transfer(customer, merchant, '9.00', { pending: true }));
      assert.equal(ok(await ledger.void(hold.id)).status, 'voided');
      assert.deepEqual(await balances(customer), { posted: 1000n, pending: 0n, available: 1000n });
      assert.deepEqual(await ledger.post(hold.id, undefined), { ok: false, code: 'transfer_already_voided' });
      assert.deepEqual(await ledger.void('00000000-0000-7000-8000-000000000001'), {
        ok: false,
        code: 'transfer_not_found',
      });
    });

    it('expires a pending transfer at its time, and refuses to post it after', async () => {
      const { customer } = await funded('10.00');
      const merchant = await open();
      assert.deepEqual(await transfer(customer, merchant, '1.00', { pending: true, expiresAt: clock }), {
        ok: false,
        code: 'invalid_expiry',
      });
      const hold = ok(
        await transfer(customer, merchant, '5.00', {
          pending: true,
          expiresAt: new Date(clock.getTime() + 60_000),
        }),
      );
      assert.equal(await ledger.expireDue(), 0);
      clock = new Date(clock.getTime() + 60_000);
      assert.deepEqual(await ledger.post(hold.id, undefined), { ok: false, code: 'transfer_expired' });
      assert.equal(await ledger.expireDue(), 1);
      assert.equal((await ledger.getTransfer(hold.id))?.status, 'expired');
      assert.deepEqual(await balances(customer), { posted: 1000n, pending: 0n, available: 1000n });
      assert.deepEqual(await ledger.void(hold.id), { ok: false, code: 'transfer_expired' });
    });

    it('writes an atomic batch all or nothing', async () => {
      const { customer } = await funded('10.00');
      const merchant = await open();
      const item = (key: string, text: string) => ({ key, request: single(customer, merchant, text) });
      const failed = await ledger.transferBatch(true, [
        item('b1', '4.00'),
        item('b2', '4.00'),
        item('b3', '4.00'),
      ]);
      assert.deepEqual(
        failed.map((r) => (r.ok ? 'ok' : r.code)),
        ['batch_aborted', 'batch_aborted', 'insufficient_funds'],
      );
      assert.deepEqual(await balances(merchant), { posted: 0n, pending: 0n, available: 0n });
      const passed = await ledger.transferBatch(true, [item('b1', '4.00'), item('b2', '4.00')]);
      assert.ok(passed.every((r) => r.ok));
      assert.equal((await balances(merchant)).posted, 800n);
    });

    it('answers each item of a non-atomic batch on its own, in order', async () => {
      const { customer } = await funded('10.00');
      const merchant = await open();
      const item = (key: string, text: string) => ({ key, request: single(customer, merchant, text) });
      const results = await ledger.transferBatch(false, [
        item('n1', '6.00'),
        item('n2', '6.00'),
        item('n3', '4.00'),
      ]);
      assert.deepEqual(
        results.map((r) => (r.ok ? 'ok' : r.code)),
        ['ok', 'insufficient_funds', 'ok'],
      );
      assert.equal((await balances(merchant)).posted, 1000n);
    });

    it('replays an account creation under the same key', async () => {
      const request = {
        currency: 'GBP',
        exponent: 2,
        normalBalance: 'credit' as const,
        allowOverdraft: false,
        code: 'ops',
        metadata: {},
      };
      const first = await ledger.createAccount(request, 'acct-1');
      const again = await ledger.createAccount(request, 'acct-1');
      assert.equal(again.replayed, true);
      assert.deepEqual(again.account, first.account);
      await assert.rejects(ledger.createAccount({ ...request, code: 'other' }, 'acct-1'), {
        code: 'idempotency_key_reused',
      });
    });

    it('verifies a consistent ledger and catches a tampered balance', async () => {
      assert.equal((await ledger.verify()).ok, true);
      const victim = await open();
      await db.query('update ledger_accounts set credits_posted = credits_posted + 1 where id = $1', [
        victim.id,
      ]);
      const report = await ledger.verify();
      assert.equal(report.ok, false);
      assert.deepEqual(report.unbalancedCurrencies, ['EUR']);
      assert.deepEqual(
        report.discrepancies.map((d) => [d.accountId, d.field, d.stored, d.recomputed]),
        [[victim.id, 'creditsPosted', 1n, 0n]],
      );
      await db.query('update ledger_accounts set credits_posted = credits_posted - 1 where id = $1', [
        victim.id,
      ]);
      assert.equal((await ledger.verify()).ok, true);
    });
  });
}
