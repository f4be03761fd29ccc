// Review of batch payouts by a demanding third party: files that are well-formed enough to pass the parser
// but would break the database (a total past what a balance holds, a NUL character in a stored field) are
// the uploader's 4xx, never a 5xx, and move nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse as InjectResponse } from 'fastify';
import type { BuiltApp } from '../main.ts';
import { createBusinessCustomer, startBank } from '../testing/bank.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';

const TOKEN = 'payouts-review-operator-token-0123456789abcdef';
const PASSWORD = 'payouts review password';
const EXTERNAL_IBAN = 'DE89370400440532013000';
const OTHER_EXTERNAL_IBAN = 'NL91ABNA0417164300';
const HEADER = 'name,iban,amount,currency,reference,end_to_end_id';

for (const database of testDatabases()) {
  describe(`batch payouts under review on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let account = '';
    let keys = 0;
    let cookie = '';

    const upload = (body: string | Buffer, type = 'text/csv') =>
      built.app.inject({
        method: 'POST',
        url: `/v1/me/payout-batches?debtorAccountId=${account}`,
        headers: { cookie, 'content-type': type, 'idempotency-key': `review-${++keys}` },
        payload: body,
      });
    const problem = (response: InjectResponse) => {
      assert.equal(
        response.headers['content-type'],
        'application/problem+json; charset=utf-8',
        response.body,
      );
      return [response.statusCode, (response.json() as { code: string }).code];
    };
    const itemCount = async () =>
      Number((await db.query<{ n: string }>('select count(*) as n from payout_items'))[0]?.n ?? 0);

    before(async () => {
      db = await database.open();
      ({ built } = await startBank(db, { adminToken: TOKEN }));
      const acme = await createBusinessCustomer(built, {
        name: 'Acme Review Ltd',
        usernames: ['review-maker', 'review-checker'],
        password: PASSWORD,
      });
      [account = ''] = acme.accountIds;
      const response = await built.app.inject({
        method: 'POST',
        url: '/me/sign-in',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({
          username: 'review-maker',
          password: PASSWORD,
          code: '123456',
        }).toString(),
      });
      assert.equal(response.statusCode, 303, response.body);
      cookie = String(response.headers['set-cookie']).split(';')[0] ?? '';
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    it('refuses a file whose lines add up to more than a balance can hold, as the line that overflows', async () => {
      const file = [
        HEADER,
        `Big One,${EXTERNAL_IBAN},50000000000000000.00,EUR,,`,
        `Big Two,${OTHER_EXTERNAL_IBAN},50000000000000000.00,EUR,,`,
      ].join('\n');
      const response = await upload(file);
      assert.deepEqual(problem(response), [422, 'payout_batch_invalid']);
      const { errors } = response.json() as { errors: { line: number; field: string; code: string }[] };
      assert.deepEqual(
        errors.map(({ line, field, code }) => ({ line, field, code })),
        [{ line: 2, field: 'amount', code: 'total_too_large' }],
      );
      assert.equal(await itemCount(), 0);
    });

    it("refuses a control character in a name, reference or end-to-end id as the line's error", async () => {
      for (const [name, reference, endToEnd, field] of [
        ['Nul\u0000Payee', '', '', 'name'],
        ['Nul Payee', 'Salary\u0000March', '', 'reference'],
        ['Nul Payee', 'Salary', 'E2E\u00001', 'endToEndId'],
        ['Bell Payee', 'Salary\u0007', '', 'reference'],
      ]) {
        const file = [HEADER, `${name},${EXTERNAL_IBAN},1.00,EUR,${reference},${endToEnd}`].join('\n');
        const response = await upload(file);
        assert.deepEqual(problem(response), [422, 'payout_batch_invalid'], response.body);
        const { errors } = response.json() as { errors: { field: string; code: string }[] };
        assert.deepEqual(
          errors.map(({ field: f, code }) => ({ field: f, code })),
          [{ field, code: 'invalid_characters' }],
        );
      }
      assert.equal(await itemCount(), 0);
    });

    it('answers malformed bodies with a 4xx problem', async () => {
      const cases: [string | Buffer, string][] = [
        ['', 'text/csv'],
        ['<', 'application/xml'],
        [
          '<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"/>',
          'application/xml',
        ],
        [
          '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><x>&b;</x>',
          'application/xml',
        ],
        ['{"a":1}', 'application/json'],
        [Buffer.from([0xff, 0xfe, 0x00]), 'text/csv'],
        ['name,iban\n"unterminated', 'text/csv'],
        [`${HEADER}\n\u{1F4B8},${EXTERNAL_IBAN},1.00,EUR,,`, 'text/csv; charset=latin1'],
        ['name,iban,amount,currency\nA,B', 'text/xml'],
      ];
      for (const [body, type] of cases) {
        const response = await upload(body, type);
        assert.ok(
          (response.statusCode >= 400 && response.statusCode < 500) || response.statusCode === 201,
          `${type} ${String(body).slice(0, 40)}: ${response.statusCode} ${response.body}`,
        );
      }
    });
  });
}
