import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { App } from '../http/app.ts';
import { buildApp } from '../main.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { testPii } from '../testing/pii.ts';

const TOKEN = 'test-operator-token-0123456789abcdef';
const auth = { authorization: `Bearer ${TOKEN}` };
const MISSING = '00000000-0000-7000-8000-000000000000';

interface Json {
  [key: string]: unknown;
}

for (const database of testDatabases()) {
  describe(`ledger HTTP API on ${database.name}`, () => {
    let db: TestDb;
    let app: App;
    let keyCounter = 0;
    const nextKey = () => `http-key-${++keyCounter}`;

    before(async () => {
      db = await database.open();
      app = buildApp({ db, adminToken: TOKEN, pii: await testPii(db) }).app;
      await app.ready();
    });
    after(async () => {
      await app.close();
      await db.close();
    });

    const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
      app.inject({ method: 'POST', url, headers: { ...auth, ...headers }, payload: body as Json });
    const get = (url: string) => app.inject({ method: 'GET', url, headers: auth });
    const openAccount = async (body: Json = {}): Promise<Json> => {
      const response = await post('/v1/ledger/accounts', {
        currency: 'EUR',
        normalBalance: 'credit',
        ...body,
      });
      assert.equal(response.statusCode, 201, response.body);
      return response.json();
    };
    const transfer = (debit: Json, credit: Json, amount: string, extra: Json = {}, key = nextKey()) =>
      post(
        '/v1/ledger/transfers',
        { postings: [{ debitAccountId: debit.id, creditAccountId: credit.id, amount }], ...extra },
        { 'idempotency-key': key },
      );

    it('creates an account and shows balances on its normal side', async () => {
      const account = await openAccount({ code: 'customer', metadata: { segment: 'retail' } });
      assert.match(account.id as string, /^[0-9a-f-]{36}$/);
      assert.deepEqual(
        { ...account, id: undefined, createdAt: undefined },
        {
          id: undefined,
          createdAt: undefined,
          currency: 'EUR',
          normalBalance: 'credit',
          allowOverdraft: false,
          code: 'customer',
          metadata: { segment: 'retail' },
          balances: { posted: '0.00', pending: '0.00', available: '0.00' },
          version: 0,
        },
      );
      assert.deepEqual((await get(`/v1/ledger/accounts/${account.id}`)).json(), account);
      const yen = await openAccount({ currency: 'JPY' });
      assert.equal((yen.balances as Json).posted, '0');
    });

    it('moves money, replays a key with the stored response, and refuses a changed request', async () => {
      const bank = await openAccount({ allowOverdraft: true });
      const customer = await openAccount();
      const first = await transfer(bank, customer, '10.50', { metadata: { ref: 'x' } }, 'same-key');
      assert.equal(first.statusCode, 201);
      assert.equal(first.headers['idempotent-replayed'], undefined);
      const body = first.json();
      assert.deepEqual(body.postings, [
        { debitAccountId: bank.id, creditAccountId: customer.id, amount: '10.50' },
      ]);
      assert.equal(body.status, 'posted');
      const replay = await transfer(bank, customer, '10.50', { metadata: { ref: 'x' } }, 'same-key');
      assert.equal(replay.statusCode, 201);
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      assert.deepEqual(replay.json(), body);
      const reused = await transfer(bank, customer, '10.51', { metadata: { ref: 'x' } }, 'same-key');
      assert.equal(reused.statusCode, 422);
      assert.equal(reused.json().code, 'idempotency_key_reused');
      assert.equal(
        ((await get(`/v1/ledger/accounts/${customer.id}`)).json().balances as Json).posted,
        '10.50',
      );
    });

    it('moves money once for twins sent together: the second is replayed or refused as in flight', async () => {
      const bank = await openAccount({ allowOverdraft: true });
      const customer = await openAccount();
      const responses = await Promise.all([
        transfer(bank, customer, '1.00', {}, 'twin-key'),
        transfer(bank, customer, '1.00', {}, 'twin-key'),
      ]);
      const outcomes = responses.map(
        (r) => `${r.statusCode}${r.headers['idempotent-replayed'] ? ' replayed' : ''}`,
      );
      assert.ok(
        ['201,201 replayed', '201 replayed,201', '201,409', '409,201'].includes(outcomes.join()),
        outcomes.join(),
      );
      assert.equal(
        ((await get(`/v1/ledger/accounts/${customer.id}`)).json().balances as Json).posted,
        '1.00',
      );
    });

    it('answers the ledger outcomes with their problem codes', async () => {
      const bank = await openAccount({ allowOverdraft: true });
      const customer = await openAccount();
      const yen = await openAccount({ currency: 'JPY' });
      const cases: [Promise<{ statusCode: number; json(): Json }>, number, string][] = [
        [transfer(customer, bank, '0.01'), 422, 'insufficient_funds'],
        [transfer(bank, yen, '100'), 422, 'currency_mismatch'],
        [transfer(bank, { id: MISSING }, '1.00'), 422, 'account_not_found'],
        [transfer(bank, bank, '1.00'), 422, 'accounts_must_be_different'],
        [transfer(bank, customer, '1.0'), 400, 'amount_scale_mismatch'],
        [transfer(bank, yen, '1.00'), 422, 'currency_mismatch'],
      ];
      for (const [response, status, code] of cases) {
        const r = await response;
        assert.deepEqual([r.statusCode, r.json().code], [status, code]);
      }
    });

    it('reserves, posts part of and voids pending transfers', async () => {
      const bank = await openAccount({ allowOverdraft: true });
      const customer = await openAccount();
      const merchant = await openAccount();
      await transfer(bank, customer, '20.00');
      const hold = (await transfer(customer, merchant, '8.00', { pending: true })).json();
      assert.equal(hold.status, 'pending');
      assert.deepEqual((await get(`/v1/ledger/accounts/${customer.id}`)).json().balances, {
        posted: '20.00',
        pending: '-8.00',
        available: '12.00',
      });
      const posted = await post(`/v1/ledger/transfers/${hold.id}/post`, { amount: '5.00' });
      assert.equal(posted.statusCode, 200, posted.body);
      assert.deepEqual([posted.json().status, posted.json().postedAmount], ['posted', '5.00']);
      assert.deepEqual((await get(`/v1/ledger/accounts/${customer.id}`)).json().balances, {
        posted: '15.00',
        pending: '0.00',
        available: '15.00',
      });
      const again = await app.inject({
        method: 'POST',
        url: `/v1/ledger/transfers/${hold.id}/void`,
        headers: auth,
      });
      assert.deepEqual([again.statusCode, again.json().code], [409, 'transfer_already_posted']);
      const second = (await transfer(customer, merchant, '1.00', { pending: true })).json();
      const voided = await app.inject({
        method: 'POST',
        url: `/v1/ledger/transfers/${second.id}/void`,
        headers: auth,
      });
      assert.equal(voided.json().status, 'voided');
      assert.equal((await get(`/v1/ledger/transfers/${second.id}`)).json().status, 'voided');
      const fullPost = await app.inject({
        method: 'POST',
        url: `/v1/ledger/transfers/${MISSING}/post`,
        headers: auth,
      });
      assert.deepEqual([fullPost.statusCode, fullPost.json().code], [404, 'transfer_not_found']);
    });

    it('lists accounts in creation order, filtered by code, page by page', async () => {
      const made = [];
      for (let i = 0; i < 3; i++) made.push((await openAccount({ code: 'list-me' })).id);
      await openAccount({ code: 'not-me' });
      const first = (await get('/v1/ledger/accounts?code=list-me&limit=2')).json();
      const second = (
        await get(`/v1/ledger/accounts?code=list-me&limit=2&cursor=${first.nextCursor}`)
      ).json();
      assert.deepEqual(
        [...first.accounts, ...second.accounts].map((a: Json) => a.id),
        made,
      );
      assert.equal(second.nextCursor, null);
      const wrongKind = await get(`/v1/ledger/accounts/${made[0]}/entries?cursor=${first.nextCursor}`);
      assert.equal(wrongKind.json().code, 'invalid_cursor');
    });

    it('pages entries newest first with an opaque cursor', async () => {
      const bank = await openAccount({ allowOverdraft: true });
      const customer = await openAccount();
      for (const amount of ['1.00', '2.00', '3.00', '4.00', '5.00']) await transfer(bank, customer, amount);
      const seen: string[] = [];
      let url = `/v1/ledger/accounts/${customer.id}/entries?limit=2`;
      for (let page = 0; page < 5; page++) {
        const body = (await get(url)).json();
        for (const entry of body.entries as Json[]) seen.push(`${entry.amount}=${entry.balance}`);
        if (body.nextCursor === null) break;
        url = `/v1/ledger/accounts/${customer.id}/entries?limit=2&cursor=${body.nextCursor}`;
      }
      assert.deepEqual(seen, ['5.00=15.00', '4.00=10.00', '3.00=6.00', '2.00=3.00', '1.00=1.00']);
    });

    it('runs batches: per-item results, or atomic all-or-nothing with the failures listed', async () => {
      const bank = await openAccount({ allowOverdraft: true });
      const customer = await openAccount();
      const item = (key: string, debit: Json, credit: Json, amount: string) => ({
        key,
        postings: [{ debitAccountId: debit.id, creditAccountId: credit.id, amount }],
      });
      const loose = await post('/v1/ledger/transfer-batches', {
        atomic: false,
        transfers: [
          item('b-1', bank, customer, '3.00'),
          item('b-2', customer, bank, '5.00'),
          item('b-3', customer, bank, '1.00'),
        ],
      });
      assert.equal(loose.statusCode, 200);
      assert.deepEqual(
        (loose.json().results as Json[]).map((r) => [
          r.status,
          (r.problem as Json | undefined)?.code ?? null,
        ]),
        [
          [201, null],
          [422, 'insufficient_funds'],
          [201, null],
        ],
      );
      const atomic = await post('/v1/ledger/transfer-batches', {
        atomic: true,
        transfers: [item('a-1', customer, bank, '1.00'), item('a-2', customer, bank, '9.00')],
      });
      assert.equal(atomic.statusCode, 422);
      assert.equal(atomic.json().code, 'batch_failed');
      assert.deepEqual(
        (atomic.json().errors as Json[]).map((e) => [e.index, e.code]),
        [[1, 'insufficient_funds']],
      );
      assert.equal(
        ((await get(`/v1/ledger/accounts/${customer.id}`)).json().balances as Json).posted,
        '2.00',
      );
      const duplicate = await post('/v1/ledger/transfer-batches', {
        atomic: true,
        transfers: [item('d', bank, customer, '1.00'), item('d', bank, customer, '1.00')],
      });
      assert.equal(duplicate.json().code, 'duplicate_key_in_batch');
    });

    it('refuses every wrong field with a 4xx problem and changes nothing', async () => {
      const bank = await openAccount({ allowOverdraft: true });
      const customer = await openAccount();
      await transfer(bank, customer, '5.00');
      const snapshot = async () =>
        JSON.stringify(
          await db.query(
            `select (select count(*) from ledger_transfers) as transfers, (select count(*) from ledger_entries) as entries,
                    (select count(*) from idempotency_keys) as keys,
                    (select json_agg(a order by id) from ledger_accounts a) as accounts`,
          ),
          (_, v) => (typeof v === 'bigint' ? v.toString() : v),
        );
      const before = await snapshot();
      const posting = { debitAccountId: bank.id, creditAccountId: customer.id, amount: '1.00' };
      const withPosting = (change: Json) => ({ postings: [{ ...posting, ...change }] });
      const transferBodies: [string, unknown][] = [
        ['empty object', {}],
        ['array body', [posting]],
        ['postings not an array', { postings: posting }],
        ['no postings', { postings: [] }],
        ['too many postings', { postings: Array.from({ length: 65 }, () => posting) }],
        ['unknown field', { ...withPosting({}), surprise: true }],
        ['unknown posting field', withPosting({ note: 'x' })],
        ['missing debit', { postings: [{ creditAccountId: customer.id, amount: '1.00' }] }],
        ['debit not a uuid', withPosting({ debitAccountId: 'bank' })],
        ['debit a number', withPosting({ debitAccountId: 42 })],
        ['amount a number', withPosting({ amount: 1 })],
        ['amount null', withPosting({ amount: null })],
        ['amount empty', withPosting({ amount: '' })],
        ['amount without decimals', withPosting({ amount: '1' })],
        ['amount with one decimal', withPosting({ amount: '1.5' })],
        ['amount with three decimals', withPosting({ amount: '1.000' })],
        ['amount negative', withPosting({ amount: '-1.00' })],
        ['amount zero', withPosting({ amount: '0.00' })],
        ['amount with leading zero', withPosting({ amount: '01.00' })],
        ['amount in exponent form', withPosting({ amount: '1e2' })],
        ['amount with spaces', withPosting({ amount: ' 1.00' })],
        ['amount with a comma', withPosting({ amount: '1,00' })],
        ['amount in other digits', withPosting({ amount: '١.٠٠' })],
        ['amount beyond 63 bits', withPosting({ amount: '92233720368547758.08' })],
        ['pending not boolean', { ...withPosting({}), pending: 'yes' }],
        ['expiry without pending', { ...withPosting({}), expiresAt: '2099-01-01T00:00:00Z' }],
        ['expiry not a time', { ...withPosting({}), pending: true, expiresAt: 'tomorrow' }],
        ['expiry without offset', { ...withPosting({}), pending: true, expiresAt: '2099-01-01T00:00:00' }],
        ['expiry impossible date', { ...withPosting({}), pending: true, expiresAt: '2099-02-30T00:00:00Z' }],
        ['expiry in the past', { ...withPosting({}), pending: true, expiresAt: '2000-01-01T00:00:00Z' }],
        ['expiry too far ahead', { ...withPosting({}), pending: true, expiresAt: '2999-01-01T00:00:00Z' }],
        ['metadata an array', { ...withPosting({}), metadata: [1] }],
        ['metadata a string', { ...withPosting({}), metadata: 'x' }],
        ['metadata too large', { ...withPosting({}), metadata: { blob: 'x'.repeat(5000) } }],
        ['unknown account', withPosting({ creditAccountId: MISSING })],
        [
          'overdraft',
          { postings: [{ debitAccountId: customer.id, creditAccountId: bank.id, amount: '5.01' }] },
        ],
      ];
      const failures: string[] = [];
      const expect4xx = async (
        name: string,
        response: { statusCode: number; headers: Json; body: string },
      ) => {
        const ok =
          response.statusCode >= 400 &&
          response.statusCode < 500 &&
          String(response.headers['content-type']).startsWith('application/problem+json') &&
          typeof JSON.parse(response.body).code === 'string';
        if (!ok) failures.push(`${name}: ${response.statusCode} ${response.body}`);
      };
      // Anything not listed here is a schema violation.
      const expectedCodes: Record<string, string> = {
        'amount without decimals': 'amount_scale_mismatch',
        'amount with one decimal': 'amount_scale_mismatch',
        'amount with three decimals': 'amount_scale_mismatch',
        'expiry in the past': 'invalid_expiry',
        'expiry too far ahead': 'invalid_expiry',
        'unknown account': 'account_not_found',
        overdraft: 'insufficient_funds',
      };
      for (const [name, body] of transferBodies) {
        const response = await post('/v1/ledger/transfers', body, { 'idempotency-key': nextKey() });
        await expect4xx(name, response);
        const code = (response.json() as Json).code;
        if (code !== (expectedCodes[name] ?? 'validation_failed')) failures.push(`${name}: code ${code}`);
      }
      const good = withPosting({});
      await expect4xx('no key', await post('/v1/ledger/transfers', good));
      await expect4xx(
        'long key',
        await post('/v1/ledger/transfers', good, { 'idempotency-key': 'k'.repeat(256) }),
      );
      await expect4xx(
        'key with space',
        await post('/v1/ledger/transfers', good, { 'idempotency-key': 'a b' }),
      );
      await expect4xx(
        'text body',
        await app.inject({
          method: 'POST',
          url: '/v1/ledger/transfers',
          headers: { ...auth, 'content-type': 'text/plain', 'idempotency-key': nextKey() },
          payload: 'postings',
        }),
      );
      await expect4xx(
        'broken JSON',
        await app.inject({
          method: 'POST',
          url: '/v1/ledger/transfers',
          headers: { ...auth, 'content-type': 'application/json', 'idempotency-key': nextKey() },
          payload: '{"postings": [',
        }),
      );
      await expect4xx(
        'no token',
        await app.inject({
          method: 'POST',
          url: '/v1/ledger/transfers',
          headers: { 'idempotency-key': nextKey() },
          payload: good,
        }),
      );
      await expect4xx(
        'wrong token',
        await app.inject({
          method: 'POST',
          url: '/v1/ledger/transfers',
          headers: { authorization: `Bearer ${TOKEN}x`, 'idempotency-key': nextKey() },
          payload: good,
        }),
      );
      const accountBodies: [string, unknown][] = [
        ['lower-case currency', { currency: 'eur', normalBalance: 'credit' }],
        ['unknown currency', { currency: 'ABC', normalBalance: 'credit' }],
        ['no-currency code', { currency: 'XXX', normalBalance: 'credit' }],
        ['gold', { currency: 'XAU', normalBalance: 'credit' }],
        ['missing normal balance', { currency: 'EUR' }],
        ['bad normal balance', { currency: 'EUR', normalBalance: 'both' }],
        ['overdraft as string', { currency: 'EUR', normalBalance: 'credit', allowOverdraft: 'false' }],
        ['empty code', { currency: 'EUR', normalBalance: 'credit', code: '' }],
        ['long code', { currency: 'EUR', normalBalance: 'credit', code: 'c'.repeat(65) }],
        ['metadata array', { currency: 'EUR', normalBalance: 'credit', metadata: [] }],
        ['unknown field', { currency: 'EUR', normalBalance: 'credit', balance: '100.00' }],
      ];
      for (const [name, body] of accountBodies)
        await expect4xx(`account: ${name}`, await post('/v1/ledger/accounts', body));
      for (const url of [
        `/v1/ledger/accounts/${customer.id}/entries?limit=0`,
        `/v1/ledger/accounts/${customer.id}/entries?limit=1001`,
        `/v1/ledger/accounts/${customer.id}/entries?limit=ten`,
        `/v1/ledger/accounts/${customer.id}/entries?cursor=garbage`,
        `/v1/ledger/accounts/${customer.id}/entries?sort=asc`,
        `/v1/ledger/accounts/${MISSING}/entries`,
        '/v1/ledger/accounts/not-a-uuid',
        `/v1/ledger/accounts/${MISSING}`,
        '/v1/ledger/transfers/not-a-uuid',
      ]) {
        await expect4xx(`GET ${url}`, await get(url));
      }
      for (const [name, body] of [
        ['zero', { amount: '0.00' }],
        ['number', { amount: 5 }],
        ['unknown field', { amount: '1.00', x: 1 }],
      ] as const) {
        await expect4xx(`post: ${name}`, await post(`/v1/ledger/transfers/${MISSING}/post`, body));
      }
      const batch = (transfers: unknown, atomic: unknown = true) =>
        post('/v1/ledger/transfer-batches', { atomic, transfers });
      await expect4xx('batch: empty', await batch([]));
      await expect4xx(
        'batch: atomic missing',
        await post('/v1/ledger/transfer-batches', { transfers: [{ key: 'z', ...good }] }),
      );
      await expect4xx('batch: item without key', await batch([good]));
      await expect4xx('batch: bad item', await batch([{ key: 'z', postings: [] }]));
      await expect4xx(
        'batch: over the limit',
        await batch(Array.from({ length: 8191 }, (_, i) => ({ key: `over-${i}`, ...good }))),
      );
      assert.deepEqual(failures, []);
      assert.equal(await snapshot(), before);
    });
  });
}
