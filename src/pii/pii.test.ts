// Personal-data encryption against the real database: sealing and its context binding, blind indexes, data
// keys kept only wrapped by the master key, rotation of data keys and of the master key while other
// processes keep running, and the master keys file.
import assert from 'node:assert/strict';
import { createDecipheriv, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../config.ts';
import { CustomerAuth } from '../customer-auth/service.ts';
import { Customers, type PersonalData } from '../customers/service.ts';
import type { Db } from '../db/db.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { loadMasterKeys, type MasterKeys, newMasterKeysFile, parseMasterKeys } from './master-keys.ts';
import { ENCRYPTED_COLUMNS, fieldContext, Pii, PiiDecryptionError } from './pii.ts';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
// More logins than one rotation batch (ROTATE_BATCH_ROWS = 200), so rotation has to loop.
const LOGINS = 201;

const masterKeys = (active: string, ...ids: string[]): MasterKeys => ({
  activeId: active,
  keys: new Map(ids.map((id) => [id, Buffer.alloc(KEY_BYTES, id)])),
});
const OLD_MASTER = masterKeys('m-old', 'm-old');

const person = (n: number, withNationalId = true): PersonalData => ({
  legalName: `Zoë Ångström-Łukasiewicz ${n} 山田`,
  dateOfBirth: '1990-02-28',
  nationality: 'GB',
  nationalId: withNationalId ? { type: 'uk_nino', number: `AB${String(n).padStart(6, '0')}C` } : null,
  address: { lines: ['1 High Street', `Flat ${n}`], city: 'London', postCode: 'SW1A 1AA', country: 'GB' },
  email: `zoe.${n}@example.com`,
  phone: `+4477009${String(n).padStart(5, '0')}`,
});

/** The sealed value with its binary body changed (the key id and version left as they are). */
function reseal(sealed: string, change: (body: Buffer) => Buffer): string {
  const [version, keyId, body] = sealed.split('.');
  return `${version}.${keyId}.${change(Buffer.from(body ?? '', 'base64url')).toString('base64url')}`;
}

/** AES-256-GCM opened independently of pii.ts, to check what it stores. */
function gcmOpen(key: Buffer, sealed: Buffer, aad: string): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  return Buffer.concat([
    decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)),
    decipher.final(),
  ]);
}

interface KeyRow {
  id: string;
  purpose: 'encryption' | 'blind_index';
  master_key_id: string;
  wrapped_key: string;
  status: 'active' | 'retired';
}
const keyRows = (db: Db) =>
  db.query<KeyRow>(
    'select id, purpose, master_key_id, wrapped_key, status from pii_keys order by created_at, id',
  );
const activeKeyId = async (db: Db, purpose: KeyRow['purpose']) =>
  (await keyRows(db)).find((row) => row.purpose === purpose && row.status === 'active')?.id;

/** Every non-null sealed value in the database, with where it is. */
async function sealedValues(db: Db): Promise<{ where: string; sealed: string }[]> {
  const found: { where: string; sealed: string }[] = [];
  for (const { table, columns } of ENCRYPTED_COLUMNS) {
    const rows = await db.query<Record<string, string | null>>(
      `select id::text as id, ${columns.join(', ')} from ${table}`,
    );
    for (const row of rows) {
      for (const column of columns) {
        const sealed = row[column];
        if (sealed != null) found.push({ where: fieldContext(table, column, String(row.id)), sealed });
      }
    }
  }
  return found;
}

for (const database of testDatabases()) {
  describe(`personal-data encryption on ${database.name}`, () => {
    // `db` is shared by the tests below; `other` stays without keys until the concurrent-open test, which
    // must therefore run first (node:test runs a block's tests in order).
    let db: TestDb;
    let other: TestDb;
    let pii: Pii;

    before(async () => {
      [db, other] = await Promise.all([database.open(), database.open()]);
      pii = await Pii.open(db, OLD_MASTER);
    });
    after(async () => {
      await Promise.all([db?.close(), other?.close()]);
    });

    it('creates one active key per purpose when several processes open a new database at once', async () => {
      assert.equal((await keyRows(other)).length, 0);
      // Connections already open (as two running servers' pools would be), so the openings truly overlap.
      await Promise.all(Array.from({ length: 4 }, () => other.query('select pg_sleep(0.02)')));
      const [first, second] = (await Promise.all(
        Array.from({ length: 4 }, () => Pii.open(other, OLD_MASTER)),
      )) as [Pii, Pii, Pii, Pii];
      const rows = await keyRows(other);
      assert.deepEqual(rows.map((row) => [row.purpose, row.status]).sort(), [
        ['blind_index', 'active'],
        ['encryption', 'active'],
      ]);
      // Both use the same keys: each reads what the other wrote, and indexes agree.
      const context = fieldContext('customers', 'email_enc', randomUUID());
      assert.equal(await second.decrypt(first.encrypt('a@example.com', context), context), 'a@example.com');
      assert.equal(first.blindIndex('email', 'a'), second.blindIndex('email', 'a'));
    });

    it('round-trips text and bytes of any size', async () => {
      const context = fieldContext('onboarding_documents', 'content_enc', randomUUID());
      const unicode = 'Zoë Łukasiewicz 山田太郎 مرحبا 🏦👩🏽‍💼 e\u0301';
      const megabyteText = '€ ü 山 🏦 '.repeat(Math.ceil(2 ** 20 / Buffer.byteLength('€ ü 山 🏦 ')));
      for (const text of ['', 'a', unicode, megabyteText]) {
        assert.equal(await pii.decrypt(pii.encrypt(text, context), context), text);
      }
      // Bytes stay bytes, including ones that are not UTF-8.
      for (const bytes of [Buffer.alloc(0), Buffer.from([0, 0xff, 0xfe, 0x80]), randomBytes(2 ** 20)]) {
        assert.deepEqual(await pii.decryptBytes(pii.encrypt(bytes, context), context), bytes);
      }
      assert.deepEqual(await pii.decryptBytes(pii.encrypt(unicode, context), context), Buffer.from(unicode));
    });

    it('seals as v1.<active key id>.<base64url(iv | ciphertext | tag)> with a fresh IV each time', async () => {
      const keyId = await activeKeyId(db, 'encryption');
      assert.ok(keyId);
      const context = fieldContext('customers', 'legal_name_enc', randomUUID());
      const sealed = Array.from({ length: 20 }, () => pii.encrypt('Zoë', context));
      assert.equal(new Set(sealed).size, sealed.length);
      const ivs = new Set<string>();
      for (const value of sealed) {
        const match = /^v1\.([^.]+)\.([A-Za-z0-9_-]+)$/.exec(value);
        assert.ok(match, value);
        assert.equal(match[1], keyId);
        const body = Buffer.from(match[2] as string, 'base64url');
        assert.equal(body.length, IV_BYTES + Buffer.byteLength('Zoë') + TAG_BYTES);
        ivs.add(body.subarray(0, IV_BYTES).toString('hex'));
      }
      assert.equal(ivs.size, sealed.length);
    });

    it('opens a value only in the context it was sealed for', async () => {
      const id = randomUUID();
      const sealed = pii.encrypt('AB123456C', fieldContext('customers', 'national_id_enc', id));
      for (const elsewhere of [
        fieldContext('customers', 'national_id_enc', randomUUID()),
        fieldContext('customers', 'phone_enc', id),
        fieldContext('customer_logins', 'national_id_enc', id),
        `${fieldContext('customers', 'national_id_enc', id)} `,
        '',
      ]) {
        await assert.rejects(pii.decrypt(sealed, elsewhere), PiiDecryptionError, elsewhere);
      }
      assert.equal(await pii.decrypt(sealed, fieldContext('customers', 'national_id_enc', id)), 'AB123456C');
    });

    it('refuses a value with any byte changed, truncated, or not sealed at all', async () => {
      const context = fieldContext('customers', 'email_enc', randomUUID());
      const sealed = pii.encrypt('zoe@example.com', context);
      const length = Buffer.from(sealed.split('.')[2] as string, 'base64url').length;
      // Every byte of the IV, the ciphertext and the tag.
      for (let i = 0; i < length; i++) {
        const flipped = reseal(sealed, (body) => {
          const copy = Buffer.from(body);
          copy[i] = (copy[i] as number) ^ 0x01;
          return copy;
        });
        await assert.rejects(pii.decrypt(flipped, context), PiiDecryptionError, `byte ${i}`);
      }
      // Every shorter prefix of the text, and the body cut at both ends.
      for (let end = 0; end < sealed.length; end++) {
        await assert.rejects(pii.decrypt(sealed.slice(0, end), context), PiiDecryptionError, `prefix ${end}`);
      }
      for (const cut of [
        (body: Buffer) => body.subarray(1),
        (body: Buffer) => body.subarray(0, body.length - 1),
        (body: Buffer) => body.subarray(0, IV_BYTES + TAG_BYTES - 1),
        () => Buffer.alloc(0),
      ]) {
        await assert.rejects(pii.decrypt(reseal(sealed, cut), context), PiiDecryptionError);
      }
      for (const notSealed of [
        'zoe@example.com',
        sealed.replace(/^v1\./, 'v2.'),
        sealed.replace(/^v1\./, '.'),
      ]) {
        await assert.rejects(pii.decrypt(notSealed, context), PiiDecryptionError, notSealed);
      }
    });

    it('refuses a value naming an unknown key, or the blind-index key', async () => {
      const context = fieldContext('customers', 'phone_enc', randomUUID());
      const [, keyId, body] = pii.encrypt('+447700900123', context).split('.');
      const indexKeyId = await activeKeyId(db, 'blind_index');
      for (const wrongId of ['dk-00000000', `${keyId}x`, indexKeyId]) {
        await assert.rejects(pii.decrypt(`v1.${wrongId}.${body}`, context), PiiDecryptionError, wrongId);
      }
    });

    it('gives blind indexes that are deterministic, keyed and separated by field', () => {
      const index = pii.blindIndex('national_id', 'uk_nino:AB123456C');
      assert.equal(pii.blindIndex('national_id', 'uk_nino:AB123456C'), index);
      assert.notEqual(pii.blindIndex('national_id', 'uk_nino:AB123456D'), index);
      assert.notEqual(pii.blindIndex('email', 'uk_nino:AB123456C'), index);
      assert.notEqual(pii.blindIndex('national_id', ''), pii.blindIndex('email', ''));
      assert.match(index, /^[A-Za-z0-9_-]{43}$/);
      assert.ok(!index.includes('AB123456C') && !index.includes('123456'));
      const unkeyed = createHmac('sha256', Buffer.alloc(0)).update('national_id\u0000uk_nino:AB123456C');
      assert.notEqual(unkeyed.digest('base64url'), index);
    });

    it('keeps blind indexes across restarts, and not across databases', async () => {
      const index = pii.blindIndex('national_id', 'uk_nino:AB123456C');
      const restarted = await Pii.open(db, OLD_MASTER);
      assert.equal(restarted.blindIndex('national_id', 'uk_nino:AB123456C'), index);
      const elsewhere = await Pii.open(other, OLD_MASTER);
      assert.notEqual(elsewhere.blindIndex('national_id', 'uk_nino:AB123456C'), index);
    });

    it('stores data keys only wrapped by the master key, bound to their row', async () => {
      const rows = await keyRows(db);
      assert.equal(rows.length, 2);
      const master = OLD_MASTER.keys.get('m-old') as Buffer;
      const secrets = [master];
      for (const row of rows) {
        assert.equal(row.master_key_id, 'm-old');
        const wrapped = Buffer.from(row.wrapped_key, 'base64url');
        assert.equal(wrapped.length, IV_BYTES + KEY_BYTES + TAG_BYTES);
        assert.throws(() => gcmOpen(master, wrapped, 'pii_keys:another-key'));
        const key = gcmOpen(master, wrapped, `pii_keys:${row.id}`);
        assert.equal(key.length, KEY_BYTES);
        assert.ok(!wrapped.includes(key));
        secrets.push(key);
      }
      const dump = JSON.stringify(rows);
      for (const secret of secrets) {
        for (const encoding of ['hex', 'base64', 'base64url'] as const) {
          assert.ok(!dump.includes(secret.toString(encoding)), encoding);
        }
      }
      // The unwrapped keys are the ones in use. The index formula is pinned: changing it would silently
      // stop duplicate detection from matching the indexes already stored.
      const dataKey = secrets[1 + rows.findIndex((row) => row.purpose === 'encryption')] as Buffer;
      const indexKey = secrets[1 + rows.findIndex((row) => row.purpose === 'blind_index')] as Buffer;
      const context = fieldContext('customers', 'legal_name_enc', randomUUID());
      const body = Buffer.from(pii.encrypt('Zoë', context).split('.')[2] as string, 'base64url');
      assert.equal(gcmOpen(dataKey, body, context).toString(), 'Zoë');
      assert.equal(
        pii.blindIndex('national_id', 'uk_nino:AB123456C'),
        createHmac('sha256', indexKey).update('national_id\u0000uk_nino:AB123456C').digest('base64url'),
      );
    });

    it('refuses to open with a master keys file that does not hold the wrapping key', async () => {
      await assert.rejects(Pii.open(db, masterKeys('m-new', 'm-new')), PiiDecryptionError);
      // Same id, other bytes: the wrapped keys do not authenticate.
      const impostor: MasterKeys = { activeId: 'm-old', keys: new Map([['m-old', randomBytes(KEY_BYTES)]]) };
      await assert.rejects(Pii.open(db, impostor), PiiDecryptionError);
    });

    it('covers every *_enc column of the schema in ENCRYPTED_COLUMNS', async () => {
      const rows = await db.query<{ table_name: string; column_name: string }>(
        `select table_name, column_name from information_schema.columns
         where table_schema = current_schema() and column_name like '%\\_enc' order by 1, 2`,
      );
      const listed = ENCRYPTED_COLUMNS.flatMap(({ table, columns }) =>
        columns.map((column) => `${table}.${column}`),
      );
      assert.deepEqual(rows.map((row) => `${row.table_name}.${row.column_name}`).sort(), [...listed].sort());
    });

    it('rotates the data key: every field re-encrypted, running processes keep reading and writing', async () => {
      const customers = new Customers({ db, pii });
      const auth = new CustomerAuth({ db, mode: 'sandbox', pii });
      const people = new Map([1, 2, 3].map((n) => [randomUUID(), person(n, n !== 3)]));
      for (const [id, who] of people) {
        assert.equal(
          await customers.create(db, { id, person: who, riskRating: 'low', applicationId: null }),
          true,
        );
      }
      const logins: string[] = [];
      for (let n = 0; n < LOGINS; n++) {
        const { created, id } = await auth.createLogin({
          username: `rotation-${n}`,
          password: null,
          displayName: `Zoë ${n}`,
          email: `login.${n}@example.com`,
          emailVerified: true,
        });
        assert.ok(created);
        logins.push(id);
      }
      const dump = JSON.stringify(await db.query('select * from customers'));
      for (const who of people.values()) {
        for (const plain of [who.legalName, who.email, who.phone, who.nationalId?.number ?? who.email]) {
          assert.ok(!dump.includes(plain), plain);
        }
      }
      const oldKeyId = await activeKeyId(db, 'encryption');
      const indexKeyId = await activeKeyId(db, 'blind_index');
      const indexes = await db.query('select id, national_id_index from customers order by id');
      // A second server process, started before the rotation.
      const running = await Pii.open(db, OLD_MASTER);

      const report = await pii.rotate();

      assert.equal(report.newKeyId, await activeKeyId(db, 'encryption'));
      assert.notEqual(report.newKeyId, oldKeyId);
      // Same master key: nothing to re-wrap. Fields: 7 + 7 + 6 (no national id) per customer, 2 per login.
      assert.deepEqual(report, {
        newKeyId: report.newKeyId,
        rewrappedKeys: 0,
        reencryptedFields: 20 + 2 * LOGINS,
      });
      const sealed = await sealedValues(db);
      assert.equal(sealed.length, 20 + 2 * LOGINS);
      for (const { where, sealed: value } of sealed) {
        assert.ok(value.startsWith(`v1.${report.newKeyId}.`), where);
      }
      // The old key is kept (retired) for processes that have not reloaded; the index key is untouched.
      const rows = await keyRows(db);
      assert.deepEqual(
        rows.map((row) => [row.id, row.purpose, row.status]).sort(),
        [
          [oldKeyId, 'encryption', 'retired'],
          [report.newKeyId, 'encryption', 'active'],
          [indexKeyId, 'blind_index', 'active'],
        ].sort(),
      );
      assert.deepEqual(await db.query('select id, national_id_index from customers order by id'), indexes);

      for (const [id, who] of people) {
        const found = await customers.find(id);
        assert.ok(found);
        const { id: _id, riskRating: _risk, status: _status, createdAt: _at, ...personal } = found;
        assert.deepEqual(personal, who);
        if (who.nationalId) assert.equal(await customers.withNationalId(who.nationalId), id);
      }
      assert.deepEqual(await auth.find(logins[LOGINS - 1] as string), {
        id: logins[LOGINS - 1],
        username: `rotation-${LOGINS - 1}`,
        displayName: `Zoë ${LOGINS - 1}`,
        email: `login.${LOGINS - 1}@example.com`,
        emailVerified: true,
      });

      // The running process has not reloaded: it still writes with the old key, and both read that.
      const runningCustomers = new Customers({ db, pii: running });
      const lateId = randomUUID();
      await runningCustomers.create(db, {
        id: lateId,
        person: person(4),
        riskRating: 'low',
        applicationId: null,
      });
      const [late] = await db.query<{ legal_name_enc: string }>(
        'select legal_name_enc from customers where id = $1',
        [lateId],
      );
      assert.ok(late?.legal_name_enc.startsWith(`v1.${oldKeyId}.`));
      assert.equal((await customers.find(lateId))?.legalName, person(4).legalName);
      assert.equal((await runningCustomers.find(lateId))?.legalName, person(4).legalName);
      // It reads what is written under the new key (loading it), and writes with it from then on.
      const [firstId] = people.keys();
      assert.equal((await runningCustomers.find(firstId as string))?.email, person(1).email);
      const context = fieldContext('customers', 'email_enc', randomUUID());
      assert.ok(running.encrypt('x', context).startsWith(`v1.${report.newKeyId}.`));
      assert.equal(await pii.decrypt(running.encrypt('x', context), context), 'x');
    });

    it('rotates the master key: every data key re-wrapped, the old master key can be retired', async () => {
      // `other` has keys wrapped by the old master key (opened in the tests above). Write under them.
      const customers = new Customers({ db: other, pii: await Pii.open(other, OLD_MASTER) });
      const id = randomUUID();
      await customers.create(other, { id, person: person(5), riskRating: 'medium', applicationId: null });
      const auth = new CustomerAuth({ db: other, mode: 'sandbox', pii: await Pii.open(other, OLD_MASTER) });
      const login = await auth.createLogin({
        id,
        username: 'master-rotation',
        password: null,
        displayName: 'Zoë',
        email: 'zoe@example.com',
        emailVerified: false,
      });
      assert.ok(login.created);
      const keysBefore = await keyRows(other);
      assert.ok(keysBefore.every((row) => row.master_key_id === 'm-old'));

      const both = masterKeys('m-new', 'm-old', 'm-new');
      const report = await (await Pii.open(other, both)).rotate();

      assert.deepEqual(report, {
        newKeyId: report.newKeyId,
        rewrappedKeys: keysBefore.length,
        reencryptedFields: 9,
      });
      const keysAfter = await keyRows(other);
      assert.equal(keysAfter.length, keysBefore.length + 1);
      const newMaster = both.keys.get('m-new') as Buffer;
      for (const row of keysAfter) {
        assert.equal(row.master_key_id, 'm-new', row.id);
        const wrapped = Buffer.from(row.wrapped_key, 'base64url');
        assert.equal(gcmOpen(newMaster, wrapped, `pii_keys:${row.id}`).length, KEY_BYTES);
      }
      for (const { where, sealed } of await sealedValues(other)) {
        assert.ok(sealed.startsWith(`v1.${report.newKeyId}.`), where);
      }

      // Only the new master key from now on; the old one alone no longer opens anything.
      const onlyNew = await Pii.open(other, masterKeys('m-new', 'm-new'));
      const customersNow = new Customers({ db: other, pii: onlyNew });
      const found = await customersNow.find(id);
      assert.equal(found?.legalName, person(5).legalName);
      assert.deepEqual(found?.nationalId, { type: 'uk_nino', number: 'AB000005C' });
      assert.equal(await customersNow.withNationalId({ type: 'uk_nino', number: 'AB000005C' }), id);
      assert.equal(
        (await new CustomerAuth({ db: other, mode: 'sandbox', pii: onlyNew }).find(id))?.email,
        'zoe@example.com',
      );
      await assert.rejects(Pii.open(other, OLD_MASTER), PiiDecryptionError);
    });
  });
}

describe('master keys file', () => {
  const key = (bytes: number) => randomBytes(bytes).toString('base64');
  const problemsOf = (text: string) => {
    try {
      parseMasterKeys(text, 'keys.json');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.problems.length, 1);
      return error.problems[0] as string;
    }
    assert.fail(`accepted ${text}`);
  };

  it('parses a generated file: one fresh 256-bit key, active', () => {
    const first = parseMasterKeys(newMasterKeysFile(), 'keys.json');
    const second = parseMasterKeys(newMasterKeysFile(), 'keys.json');
    assert.equal(first.keys.size, 1);
    assert.equal(first.keys.get(first.activeId)?.length, KEY_BYTES);
    assert.notEqual(first.activeId, second.activeId);
    assert.notDeepEqual(first.keys.get(first.activeId), second.keys.get(second.activeId));
  });

  it('parses several keys with one active', () => {
    const old = key(32);
    const keys = parseMasterKeys(
      JSON.stringify({ active: 'k2', keys: { k1: old, k2: key(32) } }),
      'keys.json',
    );
    assert.equal(keys.activeId, 'k2');
    assert.deepEqual([...keys.keys.keys()], ['k1', 'k2']);
    assert.deepEqual(keys.keys.get('k1'), Buffer.from(old, 'base64'));
  });

  it('refuses what is not a valid keys file, naming the problem and the file', () => {
    assert.match(problemsOf('{"active": "k1", keys: {}}'), /keys\.json is not JSON/);
    assert.match(problemsOf(''), /not JSON/);
    for (const bytes of [0, 16, 31, 33, 64]) {
      assert.match(
        problemsOf(JSON.stringify({ active: 'k1', keys: { k1: key(bytes) } })),
        /keys\.json: key k1 .*32 bytes/,
      );
    }
    for (const badId of ['', 'has space', 'x'.repeat(41), 'dot.ted']) {
      assert.match(problemsOf(JSON.stringify({ active: badId, keys: { [badId]: key(32) } })), /short id/);
    }
    for (const file of [
      { active: 'k2', keys: { k1: key(32) } },
      { keys: { k1: key(32) } },
      { active: 'k1', keys: {} },
      { active: 'k1' },
      // Not the string "1": an active id of another type would fail later, at the first use.
      { active: 1, keys: { 1: key(32) } },
      null,
      [],
    ]) {
      assert.match(problemsOf(JSON.stringify(file)), /keys\.json: "active" must name one of its keys/);
    }
  });

  it('creates a missing file in the sandbox, readable by its owner only, and reads it back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'apibank-master-keys-'));
    try {
      const path = join(dir, 'data', 'pii-keys.json');
      const created = loadMasterKeys(path, 'sandbox');
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.equal(created.keys.get(created.activeId)?.length, KEY_BYTES);
      assert.deepEqual(loadMasterKeys(path, 'sandbox'), created);
      assert.deepEqual(parseMasterKeys(readFileSync(path, 'utf8'), path), created);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a missing file in production, and reads a provisioned one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'apibank-master-keys-'));
    try {
      const path = join(dir, 'pii-keys.json');
      assert.throws(
        () => loadMasterKeys(path, 'production'),
        (error) => error instanceof ConfigError && error.problems.some((p) => p.includes(path)),
      );
      assert.throws(() => statSync(path), { code: 'ENOENT' });
      const text = newMasterKeysFile();
      writeFileSync(path, text, { mode: 0o600 });
      assert.deepEqual(loadMasterKeys(path, 'production'), parseMasterKeys(text, path));
      writeFileSync(path, 'not json');
      assert.throws(() => loadMasterKeys(path, 'production'), ConfigError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
