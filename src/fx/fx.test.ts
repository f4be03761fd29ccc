// FX end to end, over HTTP: quotes (the sandbox's rates, the spread and fee stated, locked 30 s, owned by
// whoever asked), conversions between a customer's accounts in currencies with 0, 2 and 3 decimals through
// the FX position accounts, cross-border payments (the quoted amount debited, a pacs.008 valid against the
// official schema, settlement through the nostro, a return restoring what was paid), an app paying abroad
// and converting under a payment consent, and every refusal leaving the money where it was.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { XMLParser } from 'fast-xml-parser';
import { eventsAbout } from '../events/outbox.ts';
import { validateMessage } from '../iso20022/schema.ts';
import { balancesOf } from '../ledger/model.ts';
import { type BuiltApp, buildApp } from '../main.ts';
import { generateOAuthKeys } from '../oauth/keys.ts';
import { createCustomer, newClientApp, signUpDeveloper } from '../testing/bank.ts';
import { inProcess, json, problem } from '../testing/calls.ts';
import { authoriseConsent } from '../testing/consent-flow.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { freePort } from '../testing/http.ts';
import { testPii } from '../testing/pii.ts';
import { findQuote, insertConversion } from './store.ts';

const TOKEN = 'fx-test-operator-token-0123456789abcdef';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'fx test password';
// Valid IBANs of banks abroad: a payment there in another currency is cross-border.
const SWISS_IBAN = 'CH9300762011623852957';
const GERMAN_IBAN = 'DE89370400440532013000';
const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();

interface Money {
  amount: string;
  currency: string;
}
interface QuoteJson {
  id: string;
  status: string;
  sell: Money;
  buy: Money;
  fee: Money;
  totalDebit: Money;
  fixedSide: string;
  midRate: string;
  rate: string;
  spreadBps: number;
  feeBps: number;
  rateSource: string;
  expiresAt: string;
  createdAt: string;
}
interface Terms {
  quoteId: string;
  rate: string;
  sold: Money;
  bought: Money;
  fee: Money;
  debited: Money;
}
interface ConversionJson extends Terms {
  id: string;
  status: string;
  fromAccountId: string;
  toAccountId: string;
  rejectionCode: string | null;
}
interface PaymentJson {
  id: string;
  status: string;
  type: string;
  instructedAmount: Money;
  rejectionCode: string | null;
  statusHistory: { status: string }[];
  fx?: Terms;
}
type Account = 'eur' | 'usd' | 'jpy' | 'kwd' | 'bhd';

for (const database of testDatabases()) {
  describe(`FX and cross-border payments on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let issuer: string;
    let developer: Record<string, string>;
    // The bank's clock runs this far ahead of the real one: a quote's lock ends without waiting for it.
    let clockAheadMs = 0;
    let keys = 0;
    const alice = {} as Record<Account, string>;
    const aliceIban = {} as Record<Account, string>;
    let bobEur = '';

    const inApp = inProcess(() => built.app);
    const call = inApp.call;
    const admin = (method: 'GET' | 'POST', url: string, body?: unknown, key?: string) =>
      call(method, url, { token: TOKEN, body, ...(key && { key }) });
    const nextKey = () => `fx-${++keys}`;

    const signIn = (username: string) => inApp.signIn(username, PASSWORD);
    const quoteAtBank = async (username: string, body: Record<string, string>) =>
      call('POST', '/v1/me/fx/quotes', { cookie: await signIn(username), body });
    const newQuote = async (body: Record<string, string>, username = 'alice') =>
      json<QuoteJson>(await quoteAtBank(username, body), 201);
    const convertAtBank = async (body: unknown, key: string | null = nextKey(), username = 'alice') =>
      call('POST', '/v1/me/conversions', { cookie: await signIn(username), body, ...(key && { key }) });
    const payAtBank = async (body: unknown, key = nextKey()) =>
      call('POST', '/v1/me/payments', { cookie: await signIn('alice'), body, key });

    // ---- balances -----------------------------------------------------------------------------------------

    const posted = async (accountId: string) => {
      const account = await built.accounts?.find(accountId);
      assert.ok(account, accountId);
      return (await built.accounts?.balances(account))?.posted ?? 0n;
    };
    /** A bank ledger account's posted balance on its normal side (0 before its first use). */
    const bank = async (code: string) => {
      const [account] = await built.ledger.listAccounts({ code }, undefined, 1);
      return account ? balancesOf(account).posted : 0n;
    };
    const CURRENCIES = ['eur', 'usd', 'jpy', 'kwd', 'bhd'] as const;
    /** Every balance a movement may touch. */
    const snapshot = async (): Promise<Record<string, bigint>> => {
      const balances: Record<string, bigint> = {};
      for (const c of CURRENCIES) {
        balances[`alice-${c}`] = await posted(alice[c]);
        for (const purpose of ['fx-position', 'fx-income', 'clearing', 'nostro']) {
          balances[`${purpose}-${c}`] = await bank(`bank:${purpose}-${c}`);
        }
      }
      balances['bob-eur'] = await posted(bobEur);
      const [counts] = await db.query<{ payments: number; conversions: number }>(
        `select (select count(*)::int from payments) as payments,
                (select count(*)::int from fx_conversions) as conversions`,
      );
      return {
        ...balances,
        payments: BigInt(counts?.payments ?? 0),
        conversions: BigInt(counts?.conversions ?? 0),
      };
    };
    /** What changed between two snapshots (zero changes left out). */
    const moved = (from: Record<string, bigint>, to: Record<string, bigint>) =>
      Object.fromEntries(
        Object.keys(to)
          .map((name) => [name, (to[name] ?? 0n) - (from[name] ?? 0n)] as const)
          .filter(([, change]) => change !== 0n),
      );
    const ledgerBalances = async () => {
      const report = await built.ledger.verify();
      assert.equal(
        report.ok,
        true,
        JSON.stringify(report, (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
      );
    };

    // ---- apps and consents --------------------------------------------------------------------------------

    let apps = 0;
    const newApp = () =>
      newClientApp({ built, issuer }, developer, {
        name: `FX App ${++apps}`,
        scopes: ['openid', 'payments'],
        redirectUri: REDIRECT,
      });
    type TestApp = Awaited<ReturnType<typeof newApp>>;
    /** A payment consent for `instruction`, authorised by Alice from `account`: the customer's token. */
    const authorisedPayment = async (app: TestApp, instruction: Record<string, unknown>, account: string) => {
      const consentId = json<{ id: string }>(
        await call('POST', '/v1/consents', {
          token: app.appToken,
          body: { type: 'payment_initiation', expiresAt: inDays(1), ...instruction },
        }),
        201,
      ).id;
      const { accessToken } = await authoriseConsent({
        issuer,
        config: app.config,
        redirectUri: REDIRECT,
        scope: 'openid payments',
        type: 'payment_initiation',
        consentId,
        username: 'alice',
        password: PASSWORD,
        accounts: [account],
      });
      return accessToken;
    };

    before(async () => {
      db = await database.open();
      const port = await freePort();
      issuer = `http://127.0.0.1:${port}`;
      built = buildApp({
        db,
        adminToken: TOKEN,
        oauth: { issuer, keys: await generateOAuthKeys() },
        pii: await testPii(db),
        currencies: ['EUR', 'GBP', 'USD', 'JPY', 'KWD', 'BHD'],
        now: () => new Date(Date.now() + clockAheadMs),
      });
      await built.app.listen({ port, host: '127.0.0.1' });
      developer = await signUpDeveloper(built.app, 'fx-dev@example.com', PASSWORD);
      const created = await createCustomer(built, {
        username: 'alice',
        password: PASSWORD,
        legalName: 'Alice Able',
        accounts: CURRENCIES.map((c) => ({ product: 'current', currency: c.toUpperCase() })),
      });
      for (const [index, c] of CURRENCIES.entries()) {
        alice[c] = created.accountIds[index] ?? '';
        aliceIban[c] = (await built.accounts?.find(alice[c]))?.iban ?? '';
      }
      [bobEur = ''] = (await createCustomer(built, { username: 'bob', password: PASSWORD })).accountIds;
      // Many payments fast, to new payees: the fraud rules would step them up. They are not what is tested.
      for (const rule of (await built.fraud?.rules()) ?? []) {
        await built.fraud?.updateRule(rule.id, { enabled: false, changedBy: 'fx-test' });
      }
      for (const [c, amount] of [
        ['eur', '10000.00'],
        ['usd', '100.00'],
        ['jpy', '1000000'],
        ['kwd', '1000.000'],
        ['bhd', '500.000'],
      ] as const) {
        const incoming = await admin(
          'POST',
          '/v1/sandbox/incoming-payments',
          {
            creditorIban: aliceIban[c],
            instructedAmount: { amount, currency: c.toUpperCase() },
            debtor: { name: 'Northwind Ltd' },
          },
          `funding-${c}`,
        );
        json(incoming, 201);
      }
      json(
        await admin(
          'POST',
          '/v1/sandbox/incoming-payments',
          {
            creditorIban: (await built.accounts?.find(bobEur))?.iban,
            instructedAmount: { amount: '100.00', currency: 'EUR' },
            debtor: { name: 'Northwind Ltd' },
          },
          'funding-bob',
        ),
        201,
      );
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    it('quotes the mid rate less the spread, states the fee, and locks it for 30 s for its asker only', async () => {
      const quote = await newQuote({ sellCurrency: 'EUR', buyCurrency: 'JPY', sellAmount: '100.00' });
      // The sandbox's 162.40 JPY per EUR, 50 bps off: 161.588; 100.00 EUR buys 16158.8 yen, credited 16158.
      assert.deepEqual(
        { ...quote, id: undefined, createdAt: undefined, expiresAt: undefined },
        {
          id: undefined,
          status: 'open',
          sell: { amount: '100.00', currency: 'EUR' },
          buy: { amount: '16158', currency: 'JPY' },
          fee: { amount: '0.10', currency: 'EUR' },
          totalDebit: { amount: '100.10', currency: 'EUR' },
          fixedSide: 'sell',
          midRate: '162.40000000',
          rate: '161.58800000',
          spreadBps: 50,
          feeBps: 10,
          rateSource: 'sandbox',
          ratesAsOf: '2026-01-02T00:00:00.000Z',
          createdAt: undefined,
          expiresAt: undefined,
        },
      );
      assert.equal(Date.parse(quote.expiresAt) - Date.parse(quote.createdAt), 30_000);
      const cookie = await signIn('alice');
      assert.deepEqual(json(await call('GET', `/v1/me/fx/quotes/${quote.id}`, { cookie })), quote);
      assert.deepEqual(events(await eventsAbout(db, quote.id)), ['fx.quote.created']);

      // Nobody else sees it: another customer, an app.
      const bob = await signIn('bob');
      assert.deepEqual(problem(await call('GET', `/v1/me/fx/quotes/${quote.id}`, { cookie: bob })), [
        404,
        'not_found',
      ]);
      const app = await newApp();
      assert.deepEqual(problem(await call('GET', `/v1/fx/quotes/${quote.id}`, { token: app.appToken })), [
        404,
        'not_found',
      ]);
      assert.equal((await call('GET', `/v1/me/fx/quotes/${quote.id}`)).statusCode, 401);

      // What cannot be quoted is a 4xx that stores nothing.
      const [{ n: quotesBefore } = { n: 0 }] = await db.query<{ n: number }>(
        'select count(*)::int as n from fx_quotes',
      );
      for (const [body, expected] of [
        [
          { sellCurrency: 'EUR', buyCurrency: 'JPY', sellAmount: '1.00', buyAmount: '100' },
          [400, 'validation_failed'],
        ],
        [{ sellCurrency: 'EUR', buyCurrency: 'JPY' }, [400, 'validation_failed']],
        [{ sellCurrency: 'EUR', buyCurrency: 'JPY', sellAmount: '0.00' }, [400, 'validation_failed']],
        [{ sellCurrency: 'EUR', buyCurrency: 'JPY', sellAmount: '100' }, [400, 'amount_scale_mismatch']],
        [{ sellCurrency: 'EUR', buyCurrency: 'JPY', buyAmount: '1.5' }, [400, 'amount_scale_mismatch']],
        [{ sellCurrency: 'XXX', buyCurrency: 'JPY', buyAmount: '100' }, [400, 'unsupported_currency']],
        [{ sellCurrency: 'EUR', buyCurrency: 'EUR', sellAmount: '1.00' }, [422, 'currency_pair_not_quoted']],
        [{ sellCurrency: 'EUR', buyCurrency: 'NOK', sellAmount: '1.00' }, [422, 'currency_pair_not_quoted']],
        // 0.001 BHD is worth 0.24 of a cent: nothing the bank could credit.
        [
          { sellCurrency: 'BHD', buyCurrency: 'EUR', sellAmount: '0.001' },
          [422, 'quote_amount_out_of_range'],
        ],
        [
          { sellCurrency: 'EUR', buyCurrency: 'JPY', sellAmount: '92233720368547758.07' },
          [422, 'quote_amount_out_of_range'],
        ],
      ] as const) {
        assert.deepEqual(problem(await quoteAtBank('alice', body)), expected, JSON.stringify(body));
      }
      const [{ n: quotesAfter } = { n: 0 }] = await db.query<{ n: number }>(
        'select count(*)::int as n from fx_quotes',
      );
      assert.equal(quotesAfter, quotesBefore);
    });

    it('converts between accounts with 0, 2 and 3 decimals, rounding each side its own way, through the FX positions', async () => {
      // From the sandbox rates, 50 bps spread and 10 bps fee, by hand: credited rounds down, debited up.
      const cases = [
        // 100.00 EUR at 161.588 = 16158.8 JPY.
        {
          from: 'eur',
          to: 'jpy',
          ask: { sellAmount: '100.00' },
          sold: '100.00',
          bought: '16158',
          fee: '0.10',
          rate: '161.58800000',
        },
        // 10.000 KWD at 0.0020463669 JPY⁻¹ needs 4886.7… JPY: 4887, fee 4.887 → 5.
        {
          from: 'jpy',
          to: 'kwd',
          ask: { buyAmount: '10.000' },
          sold: '4887',
          bought: '10.000',
          fee: '5',
          rate: '0.0020463669',
        },
        // 10.000 KWD at 1.2169386227 = 12.169386… BHD.
        {
          from: 'kwd',
          to: 'bhd',
          ask: { sellAmount: '10.000' },
          sold: '10.000',
          bought: '12.169',
          fee: '0.010',
          rate: '1.2169386227',
        },
        // 20.00 EUR at 2.4357405140 needs 8.2110… BHD: 8.212, fee 0.008212 → 0.009.
        {
          from: 'bhd',
          to: 'eur',
          ask: { buyAmount: '20.00' },
          sold: '8.212',
          bought: '20.00',
          fee: '0.009',
          rate: '2.4357405140',
        },
      ] as const;
      const minor = (text: string) => BigInt(text.replace('.', ''));
      for (const c of cases) {
        const quote = await newQuote({
          sellCurrency: c.from.toUpperCase(),
          buyCurrency: c.to.toUpperCase(),
          ...c.ask,
        });
        assert.equal(quote.rate, c.rate, `${c.from}->${c.to}`);
        const start = await snapshot();
        const body = { fromAccountId: alice[c.from], toAccountId: alice[c.to], quoteId: quote.id };
        const key = nextKey();
        const response = await convertAtBank(body, key);
        const conversion = json<ConversionJson>(response, 201);
        assert.equal(response.headers['idempotent-replayed'], undefined);
        assert.deepEqual(
          {
            status: conversion.status,
            sold: conversion.sold.amount,
            bought: conversion.bought.amount,
            fee: conversion.fee.amount,
          },
          { status: 'completed', sold: c.sold, bought: c.bought, fee: c.fee },
          `${c.from}->${c.to}`,
        );
        assert.equal(
          conversion.debited.amount,
          (() => {
            const total = minor(c.sold) + minor(c.fee);
            const decimals = c.sold.split('.')[1]?.length ?? 0;
            const digits = total.toString().padStart(decimals + 1, '0');
            return decimals === 0 ? digits : `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
          })(),
        );
        // Exactly these amounts moved, each in its own currency, and nothing else.
        assert.deepEqual(moved(start, await snapshot()), {
          [`alice-${c.from}`]: -(minor(c.sold) + minor(c.fee)),
          [`alice-${c.to}`]: minor(c.bought),
          [`fx-position-${c.from}`]: minor(c.sold),
          [`fx-position-${c.to}`]: -minor(c.bought),
          [`fx-income-${c.from}`]: minor(c.fee),
          conversions: 1n,
        });
        assert.deepEqual(events(await eventsAbout(db, conversion.id)), [
          'fx.conversion.received',
          'fx.conversion.completed',
        ]);
        assert.deepEqual(events(await eventsAbout(db, quote.id)), ['fx.quote.created', 'fx.quote.used']);

        // Once: the same request replays, another under the key is refused, the quote is spent.
        const afterwards = await snapshot();
        const replay = await convertAtBank(body, key);
        assert.equal(replay.headers['idempotent-replayed'], 'true');
        assert.deepEqual(json(replay, 201), conversion);
        assert.deepEqual(problem(await convertAtBank({ ...body, toAccountId: alice.usd }, key)), [
          422,
          'idempotency_key_reused',
        ]);
        assert.deepEqual(problem(await convertAtBank(body)), [409, 'quote_already_used']);
        assert.deepEqual(await snapshot(), afterwards);
        const cookie = await signIn('alice');
        assert.deepEqual(
          json(await call('GET', `/v1/me/conversions/${conversion.id}`, { cookie })),
          conversion,
        );
        assert.equal(
          json<QuoteJson>(await call('GET', `/v1/me/fx/quotes/${quote.id}`, { cookie })).status,
          'used',
        );
        assert.deepEqual(
          problem(await call('GET', `/v1/me/conversions/${conversion.id}`, { cookie: await signIn('bob') })),
          [404, 'not_found'],
        );
      }
      await ledgerBalances();
    });

    it("refuses an expired quote, a mismatched one, another customer's, and moves nothing", async () => {
      const quote = await newQuote({ sellCurrency: 'EUR', buyCurrency: 'USD', sellAmount: '10.00' });
      const start = await snapshot();
      const body = { fromAccountId: alice.eur, toAccountId: alice.usd, quoteId: quote.id };
      // Wrong accounts for the quote, wrong owner, the same account twice, no key: nothing recorded.
      assert.deepEqual(problem(await convertAtBank({ ...body, fromAccountId: alice.kwd })), [
        422,
        'quote_mismatch',
      ]);
      assert.deepEqual(problem(await convertAtBank({ ...body, toAccountId: alice.jpy })), [
        422,
        'quote_mismatch',
      ]);
      assert.deepEqual(problem(await convertAtBank({ ...body, toAccountId: alice.eur })), [
        422,
        'same_account',
      ]);
      assert.deepEqual(problem(await convertAtBank({ ...body, toAccountId: bobEur })), [404, 'not_found']);
      assert.deepEqual(problem(await convertAtBank(body, null)), [400, 'idempotency_key_missing']);
      const bobs = await newQuote({ sellCurrency: 'EUR', buyCurrency: 'USD', sellAmount: '10.00' }, 'bob');
      assert.deepEqual(problem(await convertAtBank({ ...body, quoteId: bobs.id })), [404, 'not_found']);
      assert.deepEqual(await snapshot(), start);

      // The lock ends 30 s after the quote: a conversion or a payment at it is refused.
      clockAheadMs += 30_001;
      try {
        assert.deepEqual(problem(await convertAtBank(body)), [422, 'quote_expired']);
        const toSwiss = {
          instructedAmount: { amount: '10.00', currency: 'EUR' },
          creditor: { name: 'Zurich Supplies AG', iban: SWISS_IBAN },
          debtorAccountId: alice.eur,
          quoteId: quote.id,
        };
        assert.deepEqual(problem(await payAtBank(toSwiss)), [422, 'quote_expired']);
        const cookie = await signIn('alice');
        assert.equal(
          json<QuoteJson>(await call('GET', `/v1/me/fx/quotes/${quote.id}`, { cookie })).status,
          'expired',
        );
      } finally {
        clockAheadMs -= 30_001;
      }
      assert.deepEqual(await snapshot(), start);

      // Short of funds: the conversion is recorded as rejected and nothing moves.
      const large = await newQuote({ sellCurrency: 'USD', buyCurrency: 'EUR', sellAmount: '5000.00' });
      const rejected = json<ConversionJson>(
        await convertAtBank({ fromAccountId: alice.usd, toAccountId: alice.eur, quoteId: large.id }),
        201,
      );
      assert.equal(rejected.status, 'rejected');
      assert.equal(rejected.rejectionCode, 'insufficient_funds');
      assert.deepEqual(moved(start, await snapshot()), { conversions: 1n });
      await ledgerBalances();
    });

    it('finishes a conversion whose process died between recording it and moving its money, once', async () => {
      const quote = await newQuote({ sellCurrency: 'EUR', buyCurrency: 'KWD', sellAmount: '30.00' });
      const start = await snapshot();
      // What a process leaves when it dies after the recording transaction: the conversion, its quote used.
      const id = '01900000-0000-7000-8000-00000000c0de';
      const at = new Date(Date.now() + clockAheadMs);
      const stored = await findQuote(db, quote.id);
      const customerId = (await built.accounts?.find(alice.eur))?.customerId ?? '';
      assert.ok(stored);
      await db.transaction(async (tx) => {
        await insertConversion(
          tx,
          {
            id,
            customerId,
            idempotencyScope: 'test',
            idempotencyKey: 'crashed',
            requestHash: 'test',
            fromAccountId: alice.eur,
            toAccountId: alice.kwd,
            quoteId: quote.id,
            status: 'received',
            rejectionCode: null,
            createdAt: at,
            updatedAt: at,
          },
          { type: 'fx.conversion.received', subjectId: id, payload: { conversionId: id } },
        );
        await built.fx?.useIn(tx, stored, `conversion:${id}`, at);
      });
      assert.equal(await built.fx?.recover(), 0, 'not before it is 30 s old');
      clockAheadMs += 31_000;
      try {
        assert.equal(await built.fx?.recover(), 1);
        assert.equal(await built.fx?.recover(), 0);
      } finally {
        clockAheadMs -= 31_000;
      }
      const cookie = await signIn('alice');
      const conversion = json<ConversionJson>(await call('GET', `/v1/me/conversions/${id}`, { cookie }));
      assert.equal(conversion.status, 'completed');
      const debited = BigInt(conversion.debited.amount.replace('.', ''));
      const bought = BigInt(conversion.bought.amount.replace('.', ''));
      assert.deepEqual(moved(start, await snapshot()), {
        'alice-eur': -debited,
        'alice-kwd': bought,
        'fx-position-eur': 3_000n,
        'fx-position-kwd': -bought,
        'fx-income-eur': debited - 3_000n,
        conversions: 1n,
      });
      await ledgerBalances();
    });

    it('refuses a held payment confirmed after its quote ended: the rate was locked for 30 s, not for the hold', async () => {
      const fraud = built.fraud;
      assert.ok(fraud);
      // A payment of 1.00 or more to a new payee waits for the customer's one-time code.
      await fraud.updateRule('new_payee', {
        enabled: true,
        parameters: { ignoreBelow: { EUR: '1.00' } },
        changedBy: 'fx-test',
      });
      try {
        const quote = await newQuote({ sellCurrency: 'EUR', buyCurrency: 'USD', buyAmount: '30.00' });
        const before = await snapshot();
        const held = json<PaymentJson>(
          await payAtBank({
            instructedAmount: { amount: '30.00', currency: 'USD' },
            creditor: { name: 'Held Abroad Ltd', iban: SWISS_IBAN },
            debtorAccountId: alice.eur,
            quoteId: quote.id,
          }),
          201,
        );
        assert.equal(held.status, 'awaiting_sca');
        clockAheadMs += 30_001;
        try {
          const cookie = await signIn('alice');
          const confirmed = json<PaymentJson>(
            await call('POST', `/v1/me/payments/${held.id}/confirm`, { cookie, body: { code: '123456' } }),
          );
          assert.deepEqual([confirmed.status, confirmed.rejectionCode], ['rejected', 'quote_expired']);
        } finally {
          clockAheadMs -= 30_001;
        }
        assert.deepEqual(
          await snapshot(),
          { ...before, payments: (before.payments ?? 0n) + 1n },
          'nothing moved',
        );
      } finally {
        await fraud.updateRule('new_payee', { enabled: false, changedBy: 'fx-test' });
      }
    });

    it('lets one of two conversions racing for one quote through', async () => {
      const quote = await newQuote({ sellCurrency: 'EUR', buyCurrency: 'JPY', sellAmount: '1.00' });
      const start = await snapshot();
      const body = { fromAccountId: alice.eur, toAccountId: alice.jpy, quoteId: quote.id };
      const answers = await Promise.all([convertAtBank(body), convertAtBank(body), convertAtBank(body)]);
      assert.deepEqual(answers.map((a) => a.statusCode).sort(), [201, 409, 409]);
      assert.deepEqual(moved(start, await snapshot()), {
        'alice-eur': -101n,
        'alice-jpy': 161n,
        'fx-position-eur': 100n,
        'fx-position-jpy': -161n,
        'fx-income-eur': 1n,
        conversions: 1n,
      });
    });

    it('pays abroad at a quote: debits the quoted amount, sends a valid pacs.008, settles through the nostro, and a return restores it', async () => {
      const quote = await newQuote({ sellCurrency: 'EUR', buyCurrency: 'USD', buyAmount: '250.00' });
      const toSwiss = {
        instructedAmount: { amount: '250.00', currency: 'USD' },
        creditor: { name: 'Zurich Supplies & Söhne AG', iban: SWISS_IBAN },
        reference: 'PO 7781',
        debtorAccountId: alice.eur,
        quoteId: quote.id,
      };
      // The instructed amount must be one side of the quote: no other amount, no other currency.
      const start = await snapshot();
      for (const wrong of [
        { ...toSwiss, instructedAmount: { amount: '250.01', currency: 'USD' } },
        { ...toSwiss, instructedAmount: { amount: '250.00', currency: 'EUR' } },
        { ...toSwiss, debtorAccountId: alice.kwd, instructedAmount: { amount: '250.000', currency: 'KWD' } },
      ]) {
        assert.deepEqual(
          problem(await payAtBank(wrong)),
          [422, 'quote_mismatch'],
          JSON.stringify(wrong.instructedAmount),
        );
      }
      assert.deepEqual(await snapshot(), start, 'refused before anything was recorded');

      const payment = json<PaymentJson>(await payAtBank(toSwiss), 201);
      // 250.00 USD at 1.079575 needs 231.5726… EUR: 231.58, fee 0.23158 → 0.24.
      assert.equal(payment.type, 'cross_border');
      assert.equal(payment.status, 'accepted');
      assert.deepEqual(payment.fx, {
        quoteId: quote.id,
        rate: '1.0795750000',
        sold: { amount: '231.58', currency: 'EUR' },
        bought: { amount: '250.00', currency: 'USD' },
        fee: { amount: '0.24', currency: 'EUR' },
        debited: { amount: '231.82', currency: 'EUR' },
      });
      assert.deepEqual(moved(start, await snapshot()), {
        'alice-eur': -23_182n,
        'fx-position-eur': 23_158n,
        'fx-income-eur': 24n,
        'fx-position-usd': -25_000n,
        'clearing-usd': 25_000n,
        payments: 1n,
      });

      // The pacs.008, valid against the official schema, for the customer and the operator, nobody else.
      const cookie = await signIn('alice');
      const mine = await call('GET', `/v1/me/payments/${payment.id}/pacs008`, { cookie });
      assert.equal(mine.statusCode, 200);
      assert.equal(mine.headers['content-type'], 'application/xml; charset=utf-8');
      assert.deepEqual(await validateMessage('pacs.008.001.08', mine.body), { valid: true, errors: [] });
      assert.equal((await admin('GET', `/v1/admin/payments/${payment.id}/pacs008`)).body, mine.body);
      assert.deepEqual(
        problem(await call('GET', `/v1/me/payments/${payment.id}/pacs008`, { cookie: await signIn('bob') })),
        [404, 'not_found'],
      );
      const tx = parse(mine.body).CdtTrfTxInf;
      assert.deepEqual(tx.IntrBkSttlmAmt, { '@_Ccy': 'USD', '#text': '250.00' });
      assert.deepEqual(tx.InstdAmt, { '@_Ccy': 'USD', '#text': '250.00' });
      assert.equal(tx.XchgRate, undefined, 'instructed in the currency it settles in');
      assert.deepEqual(tx.ChrgsInf.Amt, { '@_Ccy': 'EUR', '#text': '0.24' });
      assert.equal(tx.Dbtr.Nm, 'Alice Able');
      assert.equal(tx.DbtrAcct.Id.IBAN, aliceIban.eur);
      assert.equal(tx.Cdtr.Nm, 'Zurich Supplies & Söhne AG');
      assert.equal(tx.CdtrAcct.Id.IBAN, SWISS_IBAN);
      assert.equal(tx.RmtInf.Ustrd, 'PO 7781');
      assert.equal(tx.PmtId.EndToEndId, payment.id.replaceAll('-', ''));
      // Sealed at rest: the stored message names nobody.
      const [stored] = await db.query<{ xml_enc: string }>(
        'select xml_enc from fx_payment_messages where id = $1',
        [payment.id],
      );
      assert.ok(stored && !stored.xml_enc.includes('Alice') && !stored.xml_enc.includes('Zurich'));
      assert.deepEqual(events(await eventsAbout(db, payment.id)), [
        'payment.received',
        'payment.accepted',
        'fx.pacs008.created',
      ]);

      // The nostro holds no dollars yet: the cycle defers the payment; funded, it settles through it.
      const settle = async () =>
        json<{ settled: number; deferred: number; deferredFor: Record<string, number> }>(
          await admin('POST', '/v1/admin/payments/settlement-cycles'),
        );
      assert.deepEqual(await settle(), { settled: 0, deferred: 1, deferredFor: { insufficient_funds: 1 } });
      const funded = await admin(
        'POST',
        '/v1/sandbox/nostro-funding',
        { instructedAmount: { amount: '1000.00', currency: 'USD' } },
        'nostro-usd-1',
      );
      json(funded, 201);
      assert.deepEqual(await settle(), { settled: 1, deferred: 0, deferredFor: {} });
      const beforeReturn = await snapshot();
      assert.equal(beforeReturn['nostro-usd'], 75_000n);
      assert.equal(beforeReturn['clearing-usd'], start['clearing-usd']);

      // Returned by the bank abroad: the customer gets back every cent debited, fee included; the USD comes
      // back into the position, whose value the bank carries.
      const returned = json<PaymentJson>(
        await admin('POST', `/v1/sandbox/payments/${payment.id}/return`, { reasonCode: 'AC04' }),
      );
      assert.equal(returned.status, 'returned');
      assert.deepEqual(moved(beforeReturn, await snapshot()), {
        'alice-eur': 23_182n,
        'fx-position-eur': -23_158n,
        'fx-income-eur': -24n,
        'fx-position-usd': 25_000n,
        'nostro-usd': 25_000n,
      });
      assert.equal((await snapshot())['alice-eur'], start['alice-eur']);
      assert.deepEqual(
        problem(await admin('POST', `/v1/sandbox/payments/${payment.id}/return`, { reasonCode: 'AC04' })),
        [409, 'payment_not_returnable'],
      );
      await ledgerBalances();
    });

    it('returns a cross-border payment from clearing before it settled', async () => {
      const quote = await newQuote({ sellCurrency: 'KWD', buyCurrency: 'EUR', sellAmount: '1.000' });
      const start = await snapshot();
      const payment = json<PaymentJson>(
        await payAtBank({
          instructedAmount: { amount: '1.000', currency: 'KWD' },
          creditor: { name: 'Berlin Books', iban: GERMAN_IBAN },
          debtorAccountId: alice.kwd,
          quoteId: quote.id,
        }),
        201,
      );
      assert.equal(payment.type, 'cross_border');
      json(await admin('POST', `/v1/sandbox/payments/${payment.id}/return`, { reasonCode: 'AC01' }));
      assert.deepEqual(moved(start, await snapshot()), { payments: 1n });
      await ledgerBalances();
    });

    it('lets an app pay abroad and convert under payment consents, exactly as authorised', async () => {
      const app = await newApp();
      // A consent in the customer's own currency: the page offers the EUR account to pay from.
      const instruction = {
        instructedAmount: { amount: '100.00', currency: 'EUR' },
        creditor: { name: 'Tokyo Trading KK', iban: GERMAN_IBAN },
        reference: 'Order 12',
      };
      const token = await authorisedPayment(app, instruction, alice.eur);
      const quote = json<QuoteJson>(
        await call('POST', '/v1/fx/quotes', {
          token,
          body: { sellCurrency: 'EUR', buyCurrency: 'JPY', sellAmount: '100.00' },
        }),
        201,
      );
      assert.deepEqual(json(await call('GET', `/v1/fx/quotes/${quote.id}`, { token })), quote);
      // Another app's quote, or Alice's own from the bank's pages, is not this app's to use.
      const alicesOwn = await newQuote({ sellCurrency: 'EUR', buyCurrency: 'JPY', sellAmount: '100.00' });
      const start = await snapshot();
      const pay = (body: unknown, key = nextKey()) => call('POST', '/v1/payments', { token, body, key });
      assert.deepEqual(problem(await pay({ ...instruction, quoteId: alicesOwn.id })), [404, 'not_found']);
      assert.deepEqual(
        problem(
          await pay({
            ...instruction,
            instructedAmount: { amount: '100.01', currency: 'EUR' },
            quoteId: quote.id,
          }),
        ),
        [422, 'consent_mismatch'],
      );
      assert.deepEqual(await snapshot(), start);

      const payment = json<PaymentJson>(await pay({ ...instruction, quoteId: quote.id }), 201);
      assert.equal(payment.type, 'cross_border');
      assert.deepEqual(moved(start, await snapshot()), {
        'alice-eur': -10_010n,
        'fx-position-eur': 10_000n,
        'fx-income-eur': 10n,
        'fx-position-jpy': -16_158n,
        'clearing-jpy': 16_158n,
        payments: 1n,
      });
      const xml = await call('GET', `/v1/payments/${payment.id}/pacs008`, { token: app.appToken });
      assert.deepEqual(await validateMessage('pacs.008.001.08', xml.body), { valid: true, errors: [] });
      const tx = parse(xml.body).CdtTrfTxInf;
      assert.deepEqual(tx.InstdAmt, { '@_Ccy': 'EUR', '#text': '100.00' });
      assert.deepEqual(tx.IntrBkSttlmAmt, { '@_Ccy': 'JPY', '#text': '16158' });
      assert.equal(tx.XchgRate, '161.58800000');
      const other = await newApp();
      assert.deepEqual(
        problem(await call('GET', `/v1/payments/${payment.id}/pacs008`, { token: other.appToken })),
        [404, 'not_found'],
      );

      // A conversion for the customer is a payment to their own account in the other currency, under a
      // consent naming it: settled at once, through the positions.
      const toOwnUsd = {
        instructedAmount: { amount: '50.00', currency: 'EUR' },
        creditor: { name: 'Alice Able', iban: aliceIban.usd },
      };
      const convertToken = await authorisedPayment(app, toOwnUsd, alice.eur);
      const usdQuote = json<QuoteJson>(
        await call('POST', '/v1/fx/quotes', {
          token: convertToken,
          body: { sellCurrency: 'EUR', buyCurrency: 'USD', sellAmount: '50.00' },
        }),
        201,
      );
      const beforeConversion = await snapshot();
      const converted = json<PaymentJson>(
        await call('POST', '/v1/payments', {
          token: convertToken,
          body: { ...toOwnUsd, quoteId: usdQuote.id },
          key: nextKey(),
        }),
        201,
      );
      assert.equal(converted.type, 'internal');
      assert.equal(converted.status, 'settled');
      // 50.00 EUR at 1.079575 = 53.97875 USD: 53.97, fee 0.05.
      assert.deepEqual(moved(beforeConversion, await snapshot()), {
        'alice-eur': -5_005n,
        'alice-usd': 5_397n,
        'fx-position-eur': 5_000n,
        'fx-income-eur': 5n,
        'fx-position-usd': -5_397n,
        payments: 1n,
      });
      await ledgerBalances();
    });

    it("refuses a quote for a payment in the account's own currency, and a payment in another without one", async () => {
      const quote = await newQuote({ sellCurrency: 'EUR', buyCurrency: 'USD', sellAmount: '5.00' });
      const start = await snapshot();
      const bobIban = (await built.accounts?.find(bobEur))?.iban ?? '';
      // To a EUR account here: the quote would buy USD for it.
      assert.deepEqual(
        problem(
          await payAtBank({
            instructedAmount: { amount: '5.00', currency: 'EUR' },
            creditor: { name: 'Bob', iban: bobIban },
            debtorAccountId: alice.eur,
            quoteId: quote.id,
          }),
        ),
        [422, 'quote_mismatch'],
      );
      // In USD from the EUR account without a quote: as before, a currency mismatch.
      assert.deepEqual(
        problem(
          await payAtBank({
            instructedAmount: { amount: '5.40', currency: 'USD' },
            creditor: { name: 'Zurich Supplies AG', iban: SWISS_IBAN },
            debtorAccountId: alice.eur,
          }),
        ),
        [422, 'currency_mismatch'],
      );
      assert.deepEqual(await snapshot(), start);
      assert.deepEqual(
        problem(
          await admin(
            'POST',
            '/v1/sandbox/nostro-funding',
            { instructedAmount: { amount: '1', currency: 'USD' } },
            'n-2',
          ),
        ),
        [400, 'amount_scale_mismatch'],
      );
    });
  });
}

function events(list: readonly { type: string }[]): string[] {
  return list.map((event) => event.type);
}

function parse(xml: string) {
  return new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@_', parseTagValue: false }).parse(
    xml,
  ).Document.FIToFICstmrCdtTrf;
}
