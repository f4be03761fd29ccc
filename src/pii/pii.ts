// Field-level encryption of personal data (envelope encryption) and keyed blind indexes.
//
// Each field is sealed with AES-256-GCM under a data key, with the field's table, column and row id as
// additional authenticated data, so a ciphertext copied into another row or column does not decrypt. Data
// keys are stored in `pii_keys` wrapped by a master key from outside the database (master-keys.ts). The
// sealed form `v1.<data key id>.<base64url(iv | ciphertext | tag)>` names its key, so keys rotate: new
// writes use the active key, old fields stay readable, and `rotate()` re-encrypts them.
//
// Equality lookups (is this national id already a customer?) use a blind index: HMAC-SHA-256 of the
// normalised value under a separate key, domain-separated by field. It reveals equality and nothing else.
import {
  type CipherKey,
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  type KeyObject,
  randomBytes,
  randomUUID,
} from 'node:crypto';
import type { Db, Sql } from '../db/db.ts';
import type { MasterKeys } from './master-keys.ts';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const ROTATE_BATCH_ROWS = 200;

/** Every encrypted column, so rotation can find them all. Context = `<table>.<column>:<row id>`. */
export const ENCRYPTED_COLUMNS: readonly { table: string; columns: readonly string[] }[] = [
  {
    table: 'customers',
    columns: [
      'legal_name_enc',
      'date_of_birth_enc',
      'nationality_enc',
      'national_id_enc',
      'address_enc',
      'email_enc',
      'phone_enc',
    ],
  },
  { table: 'customer_logins', columns: ['display_name_enc', 'email_enc'] },
  { table: 'onboarding_applications', columns: ['applicant_enc', 'decision_note_enc'] },
  { table: 'onboarding_documents', columns: ['content_enc'] },
  { table: 'apps', columns: ['client_secret_enc'] },
  { table: 'payments', columns: ['creditor_name_enc'] },
  { table: 'webhook_endpoints', columns: ['secret_enc', 'previous_secret_enc'] },
  { table: 'payment_orders', columns: ['creditor_name_enc'] },
  { table: 'fx_payment_messages', columns: ['xml_enc'] },
  { table: 'idempotency_keys', columns: ['response_enc'] },
  { table: 'payout_items', columns: ['creditor_name_enc'] },
  { table: 'consents', columns: ['details_enc'] },
];

export const fieldContext = (table: string, column: string, id: string) => `${table}.${column}:${id}`;

interface KeyRow {
  id: string;
  purpose: 'encryption' | 'blind_index';
  master_key_id: string;
  wrapped_key: string;
  status: 'active' | 'retired';
}

function seal(key: CipherKey, plaintext: Buffer, aad: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

function open(key: CipherKey, sealed: Buffer, aad: string): Buffer {
  if (sealed.length < IV_BYTES + TAG_BYTES) throw new PiiDecryptionError('the sealed value is truncated');
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    return Buffer.concat([
      decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)),
      decipher.final(),
    ]);
  } catch {
    // A wrong key, a wrong context (the value was moved) or tampering: GCM cannot tell which.
    throw new PiiDecryptionError('the sealed value does not authenticate in this context');
  }
}

/** A programmer or integrity error: a sealed value that cannot be opened. Never expected in operation. */
export class PiiDecryptionError extends Error {}

export interface RotationReport {
  readonly newKeyId: string;
  readonly rewrappedKeys: number;
  readonly reencryptedFields: number;
}

export class Pii {
  readonly #db: Db;
  readonly #master: MasterKeys;
  // KeyObjects, made once: a cipher given raw key bytes imports them on every call, twice the cost of a seal.
  readonly #keys = new Map<string, KeyObject>();
  #activeId = '';
  #indexKey: KeyObject | undefined;

  private constructor(db: Db, master: MasterKeys) {
    this.#db = db;
    this.#master = master;
  }

  /** Loads the data keys, creating the first ones on a new database. */
  static async open(db: Db, master: MasterKeys): Promise<Pii> {
    const pii = new Pii(db, master);
    await db.transaction(async (tx) => {
      // One creator at a time: two processes starting on a new database create one key of each kind.
      await tx.query("select pg_advisory_xact_lock(hashtext('pii_keys'))");
      for (const purpose of ['encryption', 'blind_index'] as const) {
        const [active] = await tx.query(`select 1 from pii_keys where purpose = $1 and status = 'active'`, [
          purpose,
        ]);
        if (!active) await pii.#insertKey(tx, purpose);
      }
    });
    await pii.#load();
    return pii;
  }

  async #insertKey(sql: Sql, purpose: KeyRow['purpose']): Promise<string> {
    const id = `${purpose === 'encryption' ? 'dk' : 'ik'}-${randomUUID().slice(0, 8)}`;
    const master = this.#masterKey(this.#master.activeId);
    await sql.query(
      `insert into pii_keys (id, purpose, master_key_id, wrapped_key, status, created_at)
       values ($1, $2, $3, $4, 'active', $5)`,
      [
        id,
        purpose,
        this.#master.activeId,
        seal(master, randomBytes(KEY_BYTES), `pii_keys:${id}`).toString('base64url'),
        new Date(),
      ],
    );
    return id;
  }

  #masterKey(id: string): Buffer {
    const key = this.#master.keys.get(id);
    if (!key) throw new PiiDecryptionError(`master key ${id} is not in the keys file`);
    return key;
  }

  async #load(): Promise<void> {
    const rows = await this.#db.query<KeyRow>(
      'select id, purpose, master_key_id, wrapped_key, status from pii_keys',
    );
    for (const row of rows) {
      const key = open(
        this.#masterKey(row.master_key_id),
        Buffer.from(row.wrapped_key, 'base64url'),
        `pii_keys:${row.id}`,
      );
      if (row.purpose === 'encryption') {
        this.#keys.set(row.id, createSecretKey(key));
        if (row.status === 'active') this.#activeId = row.id;
      } else if (row.status === 'active') {
        this.#indexKey = createSecretKey(key);
      }
    }
    if (!this.#activeId || this.#indexKey?.symmetricKeySize !== KEY_BYTES)
      throw new Error('pii_keys has no active keys');
  }

  encrypt(plaintext: string | Buffer, context: string): string {
    const key = this.#keys.get(this.#activeId) as KeyObject;
    const body = seal(key, Buffer.isBuffer(plaintext) ? plaintext : Buffer.from(plaintext, 'utf8'), context);
    return `${VERSION}.${this.#activeId}.${body.toString('base64url')}`;
  }

  async decryptBytes(sealed: string, context: string): Promise<Buffer> {
    const [version, keyId, body] = sealed.split('.');
    if (version !== VERSION || !keyId || body === undefined)
      throw new PiiDecryptionError('not a sealed value');
    // A key another process created (by rotation) since this one loaded.
    if (!this.#keys.has(keyId)) await this.#load();
    const key = this.#keys.get(keyId);
    if (!key) throw new PiiDecryptionError(`unknown data key ${keyId}`);
    return open(key, Buffer.from(body, 'base64url'), context);
  }

  async decrypt(sealed: string, context: string): Promise<string> {
    return (await this.decryptBytes(sealed, context)).toString('utf8');
  }

  /** Equal inputs give equal indexes; normalise before calling. */
  blindIndex(field: string, value: string): string {
    return createHmac('sha256', this.#indexKey as KeyObject)
      .update(`${field}\u0000${value}`)
      .digest('base64url');
  }

  /**
   * A new active data key; every data key re-wrapped under the active master key; every field not under the
   * new key re-encrypted. Safe to run while servers are up: they read both keys (retired keys are kept, since
   * a server that has not reloaded may still write with the previous key).
   */
  async rotate(): Promise<RotationReport> {
    let newKeyId = '';
    let rewrappedKeys = 0;
    await this.#db.transaction(async (tx) => {
      await tx.query("select pg_advisory_xact_lock(hashtext('pii_keys'))");
      await tx.query(
        `update pii_keys set status = 'retired' where purpose = 'encryption' and status = 'active'`,
      );
      newKeyId = await this.#insertKey(tx, 'encryption');
      const stale = await tx.query<KeyRow>(
        'select id, purpose, master_key_id, wrapped_key, status from pii_keys where master_key_id <> $1',
        [this.#master.activeId],
      );
      for (const row of stale) {
        const key = open(
          this.#masterKey(row.master_key_id),
          Buffer.from(row.wrapped_key, 'base64url'),
          `pii_keys:${row.id}`,
        );
        await tx.query('update pii_keys set master_key_id = $2, wrapped_key = $3 where id = $1', [
          row.id,
          this.#master.activeId,
          seal(this.#masterKey(this.#master.activeId), key, `pii_keys:${row.id}`).toString('base64url'),
        ]);
      }
      rewrappedKeys = stale.length;
    });
    await this.#load();
    let reencryptedFields = 0;
    const current = `${VERSION}.${newKeyId}.%`;
    for (const { table, columns } of ENCRYPTED_COLUMNS) {
      const stale = columns.map((column) => `(${column} is not null and ${column} not like $1)`).join(' or ');
      for (;;) {
        // Counted after the commit: a transaction retried on a serialisation failure would count twice.
        const batch = await this.#db.transaction(async (tx) => {
          let fields = 0;
          const rows = await tx.query<Record<string, string | null>>(
            `select id::text as id, ${columns.join(', ')} from ${table} where ${stale} limit ${ROTATE_BATCH_ROWS} for update`,
            [current],
          );
          for (const row of rows) {
            const id = String(row.id);
            const values: (string | null)[] = [];
            for (const column of columns) {
              const sealed = row[column];
              if (sealed == null || sealed.startsWith(`${VERSION}.${newKeyId}.`)) {
                values.push(sealed ?? null);
                continue;
              }
              const context = fieldContext(table, column, id);
              values.push(this.encrypt(await this.decryptBytes(sealed, context), context));
              fields++;
            }
            await tx.query(
              `update ${table} set ${columns.map((column, i) => `${column} = $${i + 2}`).join(', ')} where id = $1`,
              [id, ...values],
            );
          }
          return { fields, done: rows.length < ROTATE_BATCH_ROWS };
        });
        reencryptedFields += batch.fields;
        if (batch.done) break;
      }
    }
    return { newKeyId, rewrappedKeys, reencryptedFields };
  }
}
