// Sign-in under concurrent attempts: the lockout and single-use one-time codes hold when attempts arrive
// together, not only one after another (flow.test.ts covers them one at a time, through the pages).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { testPii } from '../testing/pii.ts';
import { CustomerAuth, FAILED_ATTEMPTS_LIMIT, type SignInRequest, totpFor } from './service.ts';

const PASSWORD = 'a customer password for concurrency';

for (const database of testDatabases()) {
  describe(`customer sign-in under concurrent attempts on ${database.name}`, () => {
    let db: TestDb;
    let auth: CustomerAuth;
    const login = async (username: string) => {
      const created = await auth.createLogin({
        username,
        password: PASSWORD,
        displayName: username,
        email: `${username}@example.com`,
        emailVerified: true,
      });
      assert.ok(created.created && created.totpSecret);
      return created;
    };
    const attempt = (username: string, oneTimeCode: string): SignInRequest => ({
      username,
      password: PASSWORD,
      oneTimeCode,
      clientId: null,
      remoteAddress: null,
    });

    before(async () => {
      db = await database.open();
      // Production: real TOTP codes, each accepted once.
      auth = new CustomerAuth({ db, mode: 'production', pii: await testPii(db) });
    });
    after(async () => {
      await db?.close();
    });

    it('checks no more attempts than the limit when they all arrive at once', async () => {
      const { id } = await login('concurrent-target');
      const outcomes = await Promise.all(
        Array.from({ length: 30 }, () => auth.signIn(attempt('concurrent-target', '000000'))),
      );
      const codes = outcomes.map((outcome) => (outcome.ok ? 'signed in' : outcome.code));
      assert.equal(codes.filter((code) => code === 'invalid_credentials').length, FAILED_ATTEMPTS_LIMIT);
      assert.equal(codes.filter((code) => code === 'locked').length, 30 - FAILED_ATTEMPTS_LIMIT);
      const audited = await db.query<{ outcome: string; n: number }>(
        'select outcome, count(*)::int as n from login_attempts where customer_id = $1 group by outcome order by outcome',
        [id],
      );
      assert.deepEqual(
        audited.map((row) => [row.outcome, row.n]),
        [
          ['locked', 30 - FAILED_ATTEMPTS_LIMIT],
          ['wrong_second_factor', FAILED_ATTEMPTS_LIMIT],
        ],
      );
    });

    it('accepts a one-time code once, however many attempts carry it at once', async () => {
      const { totpSecret } = await login('one-code');
      const code = totpFor(totpSecret as string).generate();
      const outcomes = await Promise.all(
        Array.from({ length: 4 }, () => auth.signIn(attempt('one-code', code))),
      );
      assert.equal(outcomes.filter((outcome) => outcome.ok).length, 1, JSON.stringify(outcomes));
      assert.equal((await auth.signIn(attempt('one-code', code))).ok, false, 'and not again later');
    });
  });
}
