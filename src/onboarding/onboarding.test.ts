// Account opening end to end: a partner app submits applications; each KYC outcome, the review queue,
// bad input that stores nothing, isolation between apps, and personal data that never rests in plaintext.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isValidIBAN } from 'ibantools';
import { eventsAbout } from '../events/outbox.ts';
import type { BuiltApp } from '../main.ts';
import { newClientApp, signUpDeveloper, startBank } from '../testing/bank.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';

const TOKEN = 'onboarding-test-operator-token-0123456789abcdef';
const admin = { authorization: `Bearer ${TOKEN}` };

// The smallest files each format's magic numbers make recognisable, padded past the minimum size.
const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), Buffer.alloc(200, 1)]);
const PDF = Buffer.concat([Buffer.from('%PDF-1.7\n'), Buffer.alloc(200, 0x20), Buffer.from('\n%%EOF\n')]);
const SCRIPT = Buffer.from(`#!/bin/sh\n${'echo pwned\n'.repeat(20)}`);

const passport = { kind: 'passport', content: PNG.toString('base64') };

let applicants = 0;
/** A clean applicant: valid UK NINO (unique per call), adult, valid phone. */
function applicant(overrides: Record<string, unknown> = {}) {
  const serial = String(100000 + ++applicants).slice(-6);
  return {
    legalName: `Harriet Quill${applicants}`,
    dateOfBirth: '1985-06-15',
    nationality: 'GB',
    nationalId: { type: 'uk_nino', number: `JK${serial}A` },
    address: { lines: ['7 Mill Lane'], city: 'Leeds', postCode: 'LS1 4AP', country: 'GB' },
    email: `harriet${applicants}@example.com`,
    phone: '+447911123456',
    ...overrides,
  };
}

function application(overrides: Record<string, unknown> = {}, person: Record<string, unknown> = {}) {
  return {
    applicant: applicant(person),
    product: 'current',
    currency: 'GBP',
    applicantConsentAt: new Date(Date.now() - 60_000).toISOString(),
    documents: [passport],
    ...overrides,
  };
}

for (const database of testDatabases()) {
  describe(`account opening on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let issuer: string;
    let partner: (method: string, path: string, body?: unknown) => Promise<Response>;
    let otherPartner: typeof partner;

    const partnerFor = async (developer: Record<string, string>, name: string) => {
      const { appToken: token } = await newClientApp({ built, issuer }, developer, {
        name,
        scopes: ['onboarding'],
        redirectUri: 'http://localhost:3000/callback',
      });
      return (method: string, path: string, body?: unknown) =>
        fetch(`${issuer}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
    };

    before(async () => {
      db = await database.open();
      ({ built, issuer } = await startBank(db, { adminToken: TOKEN }));
      partner = await partnerFor(
        await signUpDeveloper(built.app, 'onboarding-dev@example.com'),
        'Neo Wallet',
      );
      otherPartner = await partnerFor(await signUpDeveloper(built.app, 'other-dev@example.com'), 'Other App');
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    const submit = async (body: unknown) => {
      const response = await partner('POST', '/v1/onboarding/applications', body);
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const operator = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
      const response = await built.app.inject({
        method,
        url,
        headers: admin,
        ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
      });
      return { status: response.statusCode, body: response.json() as Record<string, unknown> };
    };
    const count = async (table: string) =>
      Number((await db.query<{ n: bigint }>(`select count(*) as n from ${table}`))[0]?.n);

    it('approves a clean applicant at once: customer, login and first account, with an event for each step', async () => {
      const { status, body } = await submit(application());
      assert.equal(status, 201, JSON.stringify(body));
      assert.equal(body.status, 'approved');
      assert.deepEqual(body.reasons, []);
      assert.ok(typeof body.customerId === 'string' && typeof body.accountId === 'string');

      const customer = await built.customers?.find(body.customerId);
      assert.equal(customer?.legalName, `Harriet Quill${applicants}`);
      assert.equal(customer?.riskRating, 'low');
      const account = await built.accounts?.find(body.accountId);
      assert.equal(account?.customerId, body.customerId);
      assert.equal(account?.currency, 'GBP');
      assert.ok(account && isValidIBAN(account.iban) && account.iban.startsWith('GB'), account?.iban);
      const login = await built.customerAuth?.find(body.customerId);
      assert.match(String(login?.username), /^[1-9][0-9]{9}$/, 'a customer number, not the email');
      assert.equal(login?.email, `harriet${applicants}@example.com`);

      const events = (await eventsAbout(db, String(body.id))).map((event) => event.type);
      assert.equal(events[0], 'onboarding.application.submitted');
      assert.equal(events.filter((type) => type === 'kyc.check.completed').length, 7);
      assert.equal(events.at(-1), 'onboarding.application.approved');
      assert.deepEqual(
        (await eventsAbout(db, String(body.accountId))).map((event) => event.type),
        ['account.opened'],
      );
      // What the partner can read back is its own application.
      const read = await partner('GET', `/v1/onboarding/applications/${body.id}`);
      assert.equal(((await read.json()) as { status: string }).status, 'approved');
      assert.equal((await otherPartner('GET', `/v1/onboarding/applications/${body.id}`)).status, 404);
    });

    it('rejects the under-age and the existing customer, with reasons', async () => {
      const young = await submit(application({}, { dateOfBirth: '2015-01-01' }));
      assert.equal(young.body.status, 'rejected');
      assert.deepEqual(young.body.reasons, ['under_age_of_majority']);

      const first = await submit(
        application({}, { nationalId: { type: 'uk_nino', number: 'ce 12 34 56 b' } }),
      );
      assert.equal(first.body.status, 'approved');
      const again = await submit(
        application({}, { nationalId: { type: 'uk_nino', number: 'CE123456B' }, legalName: 'Someone Else' }),
      );
      assert.equal(again.body.status, 'rejected');
      assert.deepEqual(again.body.reasons, ['already_a_customer']);
    });

    it('screens names against the sanctions and PEP lists; the partner is never told why', async () => {
      // OFAC entry 10001 (synthetic): ZHELEZNYAKOV, Arkady Semyonovich, DOB 14 Mar 1961.
      const listed = await submit(
        application({}, { legalName: 'Arkady Semyonovich Zheleznyakov', dateOfBirth: '1961-03-14' }),
      );
      assert.equal(listed.body.status, 'rejected');
      assert.deepEqual(listed.body.reasons, ['not_eligible']);
      const checks = (await operator('GET', `/v1/admin/kyc/reviews/${listed.body.id}`)).body.checks as {
        name: string;
        result: string;
        reason: string | null;
        details: { hits?: { listedName: string; score: number }[] };
      }[];
      const sanctions = checks.find((check) => check.name === 'sanctions');
      assert.equal(sanctions?.result, 'fail');
      assert.equal(sanctions?.reason, 'sanctions_match');
      assert.match(String(sanctions?.details.hits?.[0]?.listedName), /ZHELEZNYAKOV/i);

      // Transliterated differently, another birth date: a person decides.
      const similar = await submit(
        application({}, { legalName: 'Arkadii Zheleznyakov', dateOfBirth: '1990-02-02' }),
      );
      assert.equal(similar.body.status, 'in_review');
      // Under review, `not_eligible` could only mean a list matched: the partner sees no reason at all.
      assert.deepEqual(similar.body.reasons, []);

      // PEP list entry 20001: BELOZERSKAYA, Yelena Viktorovna, written in Cyrillic.
      const pep = await submit(application({}, { legalName: 'Елена Викторовна Белозерская' }));
      assert.equal(pep.body.status, 'in_review');
      assert.deepEqual(pep.body.reasons, []);
      const review = await operator('GET', `/v1/admin/kyc/reviews/${pep.body.id}`);
      assert.deepEqual(review.body.reasons, ['politically_exposed_person']);
      assert.equal(review.body.riskRating, 'high');

      // A common name that only shares letters with listed people passes.
      const ordinary = await submit(application({}, { legalName: 'Arthur Zimmerman' }));
      assert.equal(ordinary.body.status, 'approved');
    });

    it('queues referrals for operators, who claim, approve or reject them with a note', async () => {
      const noDocument = await submit(application({ documents: [] }));
      assert.equal(noDocument.body.status, 'in_review');
      const id = String(noDocument.body.id);
      const queue = await operator('GET', '/v1/admin/kyc/reviews?limit=100');
      assert.ok((queue.body.reviews as { id: string }[]).some((review) => review.id === id));

      const decide = (verdict: string, reviewer: string) =>
        operator('POST', `/v1/admin/kyc/reviews/${id}/${verdict}`, {
          reviewer,
          note: 'checked the passport by video',
        });
      assert.deepEqual((await decide('approve', 'ops-ana')).body.code, 'review_not_claimed');
      assert.equal(
        (await operator('POST', `/v1/admin/kyc/reviews/${id}/claim`, { reviewer: 'ops-ana' })).status,
        200,
      );
      const stolen = await operator('POST', `/v1/admin/kyc/reviews/${id}/claim`, { reviewer: 'ops-ben' });
      assert.deepEqual([stolen.status, stolen.body.code], [409, 'review_claimed_by_another']);
      assert.equal((await decide('approve', 'ops-ben')).body.code, 'review_claimed_by_another');
      const approved = await decide('approve', 'ops-ana');
      assert.equal(approved.status, 200);
      assert.equal(approved.body.status, 'approved');
      assert.equal(approved.body.decidedBy, 'ops-ana');
      assert.ok(approved.body.customerId && approved.body.accountId);
      assert.equal((await decide('reject', 'ops-ana')).body.code, 'review_not_pending');
      assert.equal(
        (await operator('GET', `/v1/admin/kyc/reviews/${id}`)).body.decisionNote,
        'checked the passport by video',
      );

      const other = await submit(application({ documents: [] }));
      await operator('POST', `/v1/admin/kyc/reviews/${other.body.id}/claim`, { reviewer: 'ops-ben' });
      const rejected = await operator('POST', `/v1/admin/kyc/reviews/${other.body.id}/reject`, {
        reviewer: 'ops-ben',
        note: 'no identity document provided',
      });
      assert.equal(rejected.body.status, 'rejected');
      assert.equal(
        await built.customers?.withNationalId({
          type: 'uk_nino',
          number: `JK${String(100000 + applicants).slice(-6)}A`,
        }),
        undefined,
      );
      const events = (await eventsAbout(db, String(other.body.id))).map((event) => event.type);
      assert.deepEqual(events.slice(-3), [
        'onboarding.application.referred',
        'onboarding.review.claimed',
        'onboarding.application.rejected',
      ]);

      assert.equal((await built.app.inject({ url: '/v1/admin/kyc/reviews' })).statusCode, 401);
    });

    it('keeps uploaded documents, checked by content, encrypted, for the operator to download', async () => {
      const { body } = await submit(
        application({
          documents: [
            passport,
            { kind: 'proof_of_address', content: PDF.toString('base64'), mediaType: 'application/pdf' },
          ],
        }),
      );
      const review = await operator('GET', `/v1/admin/kyc/reviews/${body.id}`);
      const documents = review.body.documents as {
        id: string;
        kind: string;
        mediaType: string;
        sizeBytes: number;
      }[];
      assert.deepEqual(
        documents.map((d) => [d.kind, d.mediaType, d.sizeBytes]),
        [
          ['passport', 'image/png', PNG.length],
          ['proof_of_address', 'application/pdf', PDF.length],
        ],
      );
      const download = await built.app.inject({
        url: `/v1/admin/kyc/reviews/${body.id}/documents/${documents[0]?.id}`,
        headers: admin,
      });
      assert.equal(download.headers['content-type'], 'image/png');
      assert.equal(download.headers['content-disposition'], 'attachment');
      assert.deepEqual(download.rawPayload, PNG);
      const stored = await db.query<{ content_enc: string }>('select content_enc from onboarding_documents');
      assert.ok(stored.every((row) => row.content_enc.startsWith('v1.')));
    });

    it('refuses bad input with a 4xx problem and stores nothing', async () => {
      const cases: [string, unknown, number, string][] = [
        [
          'CN id with a wrong check digit',
          application(
            {},
            { nationalId: { type: 'cn_resident_id', number: '110105194912310021' }, nationality: 'CN' },
          ),
          422,
          'application_invalid',
        ],
        [
          'UK NINO with a prefix never issued',
          application({}, { nationalId: { type: 'uk_nino', number: 'QQ123456C' } }),
          422,
          'application_invalid',
        ],
        [
          'US SSN in area 666',
          application({}, { nationalId: { type: 'us_ssn', number: '666-12-3456' }, nationality: 'US' }),
          422,
          'application_invalid',
        ],
        [
          'a phone number with no country code',
          application({}, { phone: '07700123456' }),
          422,
          'application_invalid',
        ],
        ['a phone number no plan issues', application({}, { phone: '+44 12' }), 422, 'application_invalid'],
        [
          'a date of birth that does not exist',
          application({}, { dateOfBirth: '1990-02-30' }),
          422,
          'application_invalid',
        ],
        [
          'consent given in the future',
          application({ applicantConsentAt: '2999-01-01T00:00:00Z' }),
          422,
          'application_invalid',
        ],
        [
          'a script uploaded as a PDF',
          application({
            documents: [
              { kind: 'passport', content: SCRIPT.toString('base64'), mediaType: 'application/pdf' },
            ],
          }),
          422,
          'document_rejected',
        ],
        [
          'a PNG declared as a PDF',
          application({
            documents: [{ kind: 'passport', content: PNG.toString('base64'), mediaType: 'application/pdf' }],
          }),
          422,
          'document_rejected',
        ],
        [
          'a file too small to be a scan',
          application({ documents: [{ kind: 'passport', content: PNG.subarray(0, 20).toString('base64') }] }),
          422,
          'document_rejected',
        ],
        [
          'content that is not base64',
          application({ documents: [{ kind: 'passport', content: 'not base64!' }] }),
          400,
          'validation_failed',
        ],
        [
          'an unknown document kind',
          application({ documents: [{ kind: 'selfie', content: PNG.toString('base64') }] }),
          400,
          'validation_failed',
        ],
        ['a currency the bank does not offer', application({ currency: 'JPY' }), 422, 'currency_not_offered'],
        ['an unknown product', application({ product: 'crypto' }), 400, 'validation_failed'],
        ['an unknown field', { ...application(), referrer: 'x' }, 400, 'validation_failed'],
        ['no applicant', { ...application(), applicant: undefined }, 400, 'validation_failed'],
        ['an email without a domain', application({}, { email: 'harriet@' }), 400, 'validation_failed'],
        ['an empty name', application({}, { legalName: '' }), 400, 'validation_failed'],
        ['a lower-case nationality', application({}, { nationality: 'gb' }), 400, 'validation_failed'],
        ['five documents', application({ documents: Array(5).fill(passport) }), 400, 'validation_failed'],
      ];
      const before = await Promise.all(
        ['onboarding_applications', 'customers', 'onboarding_documents', 'outbox_events'].map(count),
      );
      for (const [what, body, status, code] of cases) {
        const response = await submit(body);
        assert.deepEqual([response.status, response.body.code], [status, code], what);
      }
      const malformed = await partner('POST', '/v1/onboarding/applications', undefined);
      assert.equal(malformed.status >= 400 && malformed.status < 500, true);
      assert.deepEqual(
        await Promise.all(
          ['onboarding_applications', 'customers', 'onboarding_documents', 'outbox_events'].map(count),
        ),
        before,
      );
    });

    it("opens an account through the bank's own page, with a password the applicant chose", async () => {
      const page = await fetch(`${issuer}/open-account`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /enctype="multipart\/form-data"/);
      const form = (fields: Record<string, string>, files: Record<string, Buffer> = {}) => {
        const body = new FormData();
        for (const [name, value] of Object.entries(fields)) body.append(name, value);
        for (const [name, bytes] of Object.entries(files))
          body.append(name, new Blob([bytes]), `${name}.bin`);
        return fetch(`${issuer}/open-account`, { method: 'POST', body });
      };
      const fields = {
        legalName: 'Ottilie Pagefield',
        dateOfBirth: '1991-09-09',
        nationality: 'gb',
        nationalIdType: 'uk_nino',
        nationalIdNumber: 'PR 12 34 56 D',
        addressLine1: '3 Quay Street',
        city: 'Bristol',
        postCode: 'BS1 4DJ',
        country: 'GB',
        email: 'ottilie@example.net',
        phone: '+44 7911 123456',
        product: 'current',
        currency: 'EUR',
        identityDocumentKind: 'passport',
        password: 'a long page password',
        agree: 'yes',
      };
      const before = await count('onboarding_applications');
      const wrong = await form(
        { ...fields, nationalIdNumber: 'QQ123456C', password: 'short', agree: '' },
        { identityDocument: SCRIPT },
      );
      assert.equal(wrong.status, 422);
      const wrongPage = await wrong.text();
      for (const field of ['nationalIdNumber', 'password', 'agree', 'identityDocument']) {
        assert.match(wrongPage, new RegExp(`id="${field}-error"`), `${field}: ${wrongPage.slice(0, 3000)}`);
      }
      assert.match(wrongPage, /value="Ottilie Pagefield"/, 'what was typed is kept');
      assert.doesNotMatch(wrongPage, /short/, 'the password is never sent back');
      assert.equal(await count('onboarding_applications'), before, 'nothing stored');

      // A body that is not the multipart form it says: cut short, without a boundary, not matching it.
      const boundary = 'XyZbOuNdArY';
      for (const [contentType, body] of [
        [
          `multipart/form-data; boundary=${boundary}`,
          `--${boundary}\r\nContent-Disposition: form-data; name="legalName"\r\n\r\nHarriet\r\n--${boundary}\r\nContent-Disposition: form-data; name="identityDocument"; filename="p.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG`,
        ],
        ['multipart/form-data', 'x'],
        [`multipart/form-data; boundary=${boundary}`, 'xxxxxxxxxx'],
      ]) {
        const malformed = await fetch(`${issuer}/open-account`, {
          method: 'POST',
          headers: { 'content-type': contentType as string },
          body,
        });
        assert.equal(malformed.status, 422, `${contentType}: ${malformed.status}`);
        assert.match(await malformed.text(), /could not be read: the form arrived incomplete or malformed/);
      }
      assert.equal(await count('onboarding_applications'), before, 'nothing stored');

      const opened = await form(fields, { identityDocument: PDF });
      assert.equal(opened.status, 201);
      const [, customerNumber] = /customer number is <strong>(\d+)<\/strong>/.exec(await opened.text()) ?? [];
      assert.ok(customerNumber);
      const signIn = await fetch(`${issuer}/me/sign-in`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username: customerNumber, password: fields.password, code: '123456' }),
        redirect: 'manual',
      });
      assert.equal(signIn.status, 303);
      const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      const mine = (await (await fetch(`${issuer}/v1/me/accounts`, { headers: { cookie } })).json()) as {
        accounts: { currency: string; product: string }[];
      };
      assert.deepEqual(
        mine.accounts.map((a) => `${a.product} ${a.currency}`),
        ['current EUR'],
      );
      const stored = await db.query<{ channel: string; client_id: string | null }>(
        `select channel, client_id from onboarding_applications order by created_at desc limit 1`,
      );
      assert.deepEqual(stored[0], { channel: 'bank_page', client_id: null });
    });

    it('keeps no name, national id, phone or email in plaintext anywhere in the database', async () => {
      const { body } = await submit(
        application(
          {},
          { legalName: 'Wilhelmina Plaintextova', phone: '+447400987654', email: 'wilhelmina@example.org' },
        ),
      );
      assert.equal(body.status, 'approved', JSON.stringify(body));
      const nino = `JK${String(100000 + applicants).slice(-6)}A`;
      const tables = await db.query<{ table_name: string }>(
        `select table_name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'`,
      );
      assert.ok(tables.length > 10);
      let dump = '';
      for (const { table_name } of tables) {
        const rows = await db.query(`select * from ${table_name}`);
        dump += JSON.stringify(rows, (_key, value) => (typeof value === 'bigint' ? String(value) : value));
      }
      for (const secret of [
        'Wilhelmina',
        'Plaintextova',
        nino,
        '447700987654',
        '7700 987654',
        'wilhelmina@example.org',
      ]) {
        assert.ok(!dump.includes(secret), `${secret} is in the database in plaintext`);
      }
      // ...while the bank itself reads it back.
      assert.equal((await built.customers?.find(String(body.customerId)))?.phone, '+447400987654');
    });
  });
}
