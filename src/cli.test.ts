// The `apibank` command as an operator runs it: a real process on the embedded database.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openDb } from './db/db.ts';
import { generateSandbox } from './sandbox/generate.ts';

const BIN = new URL('../bin/apibank.js', import.meta.url).pathname;

function apibank(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  return { child, exited, output: () => output };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  await new Promise((done) => server.close(done));
  assert.ok(address && typeof address === 'object');
  return address.port;
}

describe('apibank command', () => {
  it('refuses a wrong configuration with every problem named, before doing anything', async () => {
    const run = apibank(['serve'], { PORT: 'eighty', APIBANK_MODE: 'live' });
    assert.equal(await run.exited, 2);
    assert.match(run.output(), /PORT must be an integer/);
    assert.match(run.output(), /APIBANK_MODE must be "sandbox" or "production"/);
    // A file the settings name that is not what it should be is a configuration error too, not a crash.
    const dir = mkdtempSync(join(tmpdir(), 'apibank-cli-'));
    writeFileSync(join(dir, 'keys.json'), 'not json');
    const badKeys = apibank(['serve'], {
      APIBANK_DATA_DIR: join(dir, 'data'),
      APIBANK_OAUTH_KEYS_FILE: join(dir, 'keys.json'),
      APIBANK_SCREENING_LISTS: `sanctions:${join(dir, 'missing.csv')}`,
    });
    assert.equal(await badKeys.exited, 2, badKeys.output());
    assert.match(badKeys.output(), /invalid configuration:\n {2}- /);
    assert.doesNotMatch(badKeys.output(), /\n {4}at /, 'no stack trace');
  });

  it('serves, moves money, shuts down on SIGTERM, and verifies the ledger it left', async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'apibank-cli-'));
    const port = await freePort();
    const server = apibank(['serve'], { APIBANK_DATA_DIR: dataDir, PORT: String(port) });
    // A failed assertion must not leave the server running: the test run would wait for it forever.
    t.after(() => {
      if (server.child.exitCode === null) server.child.kill('SIGKILL');
    });
    const base = `http://127.0.0.1:${port}`;
    for (let attempt = 0; ; attempt++) {
      const ready = await fetch(`${base}/health/ready`).catch(() => undefined);
      // Ready, and its start-up lines through the pipe (the last says where the operator token is): the
      // server answers as soon as it listens, before it logs them.
      if (ready?.ok && /operator token: /.test(server.output())) break;
      assert.ok(attempt < 300 && server.child.exitCode === null, `server did not start: ${server.output()}`);
      await new Promise((done) => setTimeout(done, 100));
    }
    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    assert.match(server.output(), /operator token: .*admin-token/);
    assert.doesNotMatch(server.output(), new RegExp(token));
    const call = async (path: string, body: unknown, key?: string) => {
      const response = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          ...(key && { 'idempotency-key': key }),
        },
        body: JSON.stringify(body),
      });
      assert.ok(response.ok, `${path}: ${response.status}`);
      return (await response.json()) as { id: string };
    };
    // The documented sandbox customer signs in at the bank's pages and sees her accounts.
    const signIn = await fetch(`${base}/me/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'username=alice&password=alice-sandbox-password&code=123456',
      redirect: 'manual',
    });
    assert.equal(signIn.status, 303);
    const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const mine = (await (await fetch(`${base}/v1/me/accounts`, { headers: { cookie } })).json()) as {
      accounts: { id: string; currency: string; product: string }[];
    };
    assert.deepEqual(
      mine.accounts.map((a) => `${a.product} ${a.currency}`),
      ['current EUR', 'current GBP', 'savings EUR'],
    );
    const balances = await fetch(`${base}/v1/me/accounts/${mine.accounts[0]?.id}/balances`, {
      headers: { cookie },
    });
    assert.deepEqual(await balances.json(), {
      accountId: mine.accounts[0]?.id,
      currency: 'EUR',
      booked: '1275.80',
      available: '1250.80',
      pending: '-25.00',
    });
    const bank = await call('/v1/ledger/accounts', {
      currency: 'EUR',
      normalBalance: 'credit',
      allowOverdraft: true,
    });
    const customer = await call('/v1/ledger/accounts', { currency: 'EUR', normalBalance: 'credit' });
    await call(
      '/v1/ledger/transfers',
      { postings: [{ debitAccountId: bank.id, creditAccountId: customer.id, amount: '12.34' }] },
      'k1',
    );

    // A second server on the port the first holds: it cannot listen, says why, and exits rather than stay
    // alive serving nothing.
    const second = apibank(['serve'], {
      APIBANK_DATA_DIR: mkdtempSync(join(tmpdir(), 'apibank-cli-')),
      PORT: String(port),
    });
    // (Should it stay alive, it is killed after two minutes: the test fails rather than hangs.)
    const stillRunning = setTimeout(() => second.child.kill('SIGKILL'), 120_000);
    const secondCode = await second.exited;
    clearTimeout(stillRunning);
    assert.equal(secondCode, 1, second.output());
    assert.match(second.output(), /EADDRINUSE/);

    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0);
    assert.match(server.output(), /stopped/);

    const auditVerify = apibank(['audit', 'verify'], { APIBANK_DATA_DIR: dataDir });
    assert.equal(await auditVerify.exited, 0, auditVerify.output());
    assert.match(auditVerify.output(), /audit chain verified: [1-9]\d* records/);
    // The server signed its head as it stopped, and logged the checkpoint: checked from the log too.
    assert.match(server.output(), /"auditCheckpoint":\{"seq":\d+/);
    const logFile = join(dataDir, 'server.log');
    writeFileSync(logFile, server.output());
    const againstLog = apibank(['audit', 'verify', logFile], { APIBANK_DATA_DIR: dataDir });
    assert.equal(await againstLog.exited, 0, againstLog.output());
    assert.match(againstLog.output(), /audit chain verified: [1-9]\d* records, [2-9]\d* signed checkpoints/);

    const verify = apibank(['ledger', 'verify'], { APIBANK_DATA_DIR: dataDir });
    assert.equal(await verify.exited, 0, verify.output());
    assert.match(
      verify.output(),
      /EUR: \d+ accounts, posted debits (\d+) = credits \1, pending debits 2500 = credits 2500/,
    );

    const db = await openDb({ dataDir: join(dataDir, 'pglite') });
    // No generated customer's name rests in the clear anywhere, however the sandbox moved their money.
    const people = generateSandbox({
      customers: 20,
      seed: 1,
      from: new Date(Date.now() - 86_400_000),
      to: new Date(),
    });
    let dump = '';
    for (const { table_name } of await db.query<{ table_name: string }>(
      `select table_name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'`,
    )) {
      dump += JSON.stringify(await db.query(`select * from ${table_name}`), (_key, value) =>
        typeof value === 'bigint' ? String(value) : value,
      );
    }
    for (const person of [...people.people, { legalName: 'Alice Example' }, { legalName: 'Bob Example' }]) {
      assert.ok(!dump.includes(person.legalName), `${person.legalName} is in the database in plaintext`);
    }
    const customers = await db.query<{ username: string }>('select username from customer_logins');
    const usernames = customers.map((row) => row.username);
    assert.ok(usernames.includes('alice') && usernames.includes('bob'), usernames.join());
    assert.ok(
      usernames.includes('northwind-maker') && usernames.includes('northwind-checker'),
      usernames.join(),
    );
    assert.equal(
      usernames.length,
      24,
      'two documented customers, the business with two users, twenty generated',
    );
    await db.query('update ledger_accounts set debits_posted = debits_posted + 1 where id = $1', [
      customer.id,
    ]);
    await db.close();
    const broken = apibank(['ledger', 'verify'], { APIBANK_DATA_DIR: dataDir });
    assert.equal(await broken.exited, 1);
    assert.match(broken.output(), /debitsPosted stored 1, recomputed 0/);
    assert.match(broken.output(), /FAILED/);

    const migrate = apibank(['migrate'], { APIBANK_DATA_DIR: dataDir });
    assert.equal(await migrate.exited, 0);
    assert.match(migrate.output(), /nothing to apply/);
  });

  it('seeds generated customers with a verified history, and rotates the personal-data key', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'apibank-cli-'));
    const seed = apibank(['sandbox', 'seed', '--customers', '5', '--seed', '9'], {
      APIBANK_DATA_DIR: dataDir,
    });
    assert.equal(await seed.exited, 0, seed.output());
    assert.match(seed.output(), /seeded 5 customers, \d+ accounts, [1-9]\d+ transfers/);
    const again = apibank(['sandbox', 'seed', '--customers', '5', '--seed', '9'], {
      APIBANK_DATA_DIR: dataDir,
    });
    assert.equal(await again.exited, 1, 'the same seed twice would duplicate people');
    assert.match(again.output(), /seed 9 was applied before/);
    const wrong = apibank(['sandbox', 'seed', '--customers', 'many'], { APIBANK_DATA_DIR: dataDir });
    assert.equal(await wrong.exited, 2);

    const verify = apibank(['ledger', 'verify'], { APIBANK_DATA_DIR: dataDir });
    assert.equal(await verify.exited, 0, verify.output());

    const rotate = apibank(['keys', 'rotate'], { APIBANK_DATA_DIR: dataDir });
    assert.equal(await rotate.exited, 0, rotate.output());
    // 5 customers x 7 fields + 5 logins x 2 fields (the national id is null for some).
    const [, fields] = /(\d+) fields re-encrypted/.exec(rotate.output()) ?? [];
    assert.ok(Number(fields) >= 40, rotate.output());
    const twice = apibank(['keys', 'rotate'], { APIBANK_DATA_DIR: dataDir });
    assert.equal(await twice.exited, 0);
    assert.match(
      twice.output(),
      new RegExp(`${fields} fields re-encrypted`),
      'everything moves to the newest key',
    );
  });
});
