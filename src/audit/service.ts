// The tamper-evident audit log. Requests never wait for it: entries are buffered and written in batches,
// each batch in one transaction that locks the chain's head row, so processes append in turn and the chain
// never forks. Hashes are computed here, in order, from each record's canonical form.
import { hash } from 'node:crypto';
import { CompactSign, compactVerify, importJWK, type JWK } from 'jose';
import type { Db } from '../db/db.ts';

export type ActorType = 'anonymous' | 'operator' | 'developer' | 'app' | 'customer';

export interface AuditEntry {
  readonly at: Date;
  readonly actorType: ActorType;
  readonly actorId: string | null;
  readonly appId: string | null;
  readonly customerId: string | null;
  readonly consentIds: string | null;
  readonly method: string;
  readonly route: string;
  readonly status: number;
  readonly requestId: string;
  readonly bodyHash: string | null;
}

interface AuditRecord extends AuditEntry {
  readonly seq: number;
  readonly prevHash: string;
  readonly hash: string;
}

export interface AuditVerification {
  readonly ok: boolean;
  readonly records: number;
  readonly checkpoints: number;
  readonly firstBroken?: { readonly seq: number; readonly reason: string };
}

const GENESIS_HASH = '0'.repeat(64);
const BATCH_MAX = 1000;
const BUFFERED_MAX = 100_000;
const VERIFY_PAGE = 5000;

// The last time written and its ISO form: the records of one batch share their milliseconds by the dozen.
let lastAtMs = Number.NaN;
let lastAtIso = '';
const isoOf = (at: Date): string => {
  const ms = at.getTime();
  if (ms !== lastAtMs) {
    lastAtIso = at.toISOString();
    lastAtMs = ms;
  }
  return lastAtIso;
};

/** The canonical form a record's hash covers: fixed field order, times in ISO 8601 UTC. */
function canonicalForm(entry: AuditEntry, seq: number, prevHash: string): string {
  return JSON.stringify([
    seq,
    isoOf(entry.at),
    entry.actorType,
    entry.actorId,
    entry.appId,
    entry.customerId,
    entry.consentIds,
    entry.method,
    entry.route,
    entry.status,
    entry.requestId,
    entry.bodyHash,
    prevHash,
  ]);
}

const sha256 = (text: string) => hash('sha256', text, 'hex');

export function recordHash(record: Omit<AuditRecord, 'hash'>): string {
  return sha256(canonicalForm(record, record.seq, record.prevHash));
}

/** A failed verification: how far the chain held, and the first record that does not fit and why. */
const broken = (records: number, checkpoints: number, seq: number, reason: string): AuditVerification => ({
  ok: false,
  records,
  checkpoints,
  firstBroken: { seq, reason },
});

export class AuditLog {
  readonly #db: Db;
  readonly #signingKey: JWK;
  #buffer: AuditEntry[] = [];
  #flushing: Promise<number> | undefined;
  #length = 0;
  #dropped = 0;

  constructor(options: { db: Db; signingKey: JWK }) {
    this.#db = options.db;
    this.#signingKey = options.signingKey;
  }

  /** Chain length as of the last write from this process (for metrics). */
  get length(): number {
    return this.#length;
  }

  /** Entries lost because the buffer was full: should always be 0; alert if not. */
  get dropped(): number {
    return this.#dropped;
  }

  record(entry: AuditEntry): void {
    if (this.#buffer.length >= BUFFERED_MAX) {
      this.#dropped++;
      return;
    }
    this.#buffer.push(entry);
  }

  /** Writes everything buffered, in batches; one flush at a time per process. */
  async flush(): Promise<number> {
    while (this.#flushing) await this.#flushing;
    this.#flushing = this.#flushAll();
    try {
      return await this.#flushing;
    } finally {
      this.#flushing = undefined;
    }
  }

  async #flushAll(): Promise<number> {
    let written = 0;
    // Only what was buffered when the flush began: under load, records arriving while a batch is written
    // would otherwise keep the loop going, each lap a transaction for the few records of its few
    // milliseconds. They wait for the next flush and go in one batch.
    let due = this.#buffer.length;
    while (due > 0) {
      const batch = this.#buffer.splice(0, Math.min(due, BATCH_MAX));
      due -= batch.length;
      try {
        await this.#append(batch);
      } catch (error) {
        this.#buffer.unshift(...batch); // keep them for the next attempt, in order
        throw error;
      }
      written += batch.length;
    }
    return written;
  }

  async #append(batch: readonly AuditEntry[]): Promise<void> {
    await this.#db.transaction(async (tx) => {
      const [head] = await tx.query<{ seq: bigint; hash: string }>(
        'select seq, hash from audit_head for update',
      );
      if (!head) throw new Error('audit_head is missing');
      let seq = Number(head.seq);
      let prevHash = head.hash;
      // Each record is serialised once: its canonical form is what its hash covers, and, with the hash
      // appended, the row the database reads back by position.
      const rows = batch.map((entry) => {
        seq += 1;
        const canonical = canonicalForm(entry, seq, prevHash);
        prevHash = sha256(canonical);
        return `${canonical.slice(0, -1)},"${prevHash}"]`;
      });
      await tx.query(
        `insert into audit_records (seq, at, actor_type, actor_id, app_id, customer_id, consent_ids, method, route, status,
                                    request_id, body_hash, prev_hash, hash)
         select (r->>0)::bigint, (r->>1)::timestamptz, r->>2, r->>3, r->>4, r->>5, r->>6, r->>7, r->>8, (r->>9)::int,
                r->>10, r->>11, r->>12, r->>13
           from jsonb_array_elements($1::text::jsonb) as r`,
        [`[${rows.join(',')}]`],
      );
      await tx.query('update audit_head set seq = $1, hash = $2', [seq, prevHash]);
      this.#length = seq;
    });
  }

  /**
   * Signs the current head (Ed25519 JWS), so a rebuilt chain would not match a published checkpoint. Returns
   * what it signed, for the caller to keep outside the database too (the server logs it): a checkpoint only
   * in the database goes with the database.
   */
  async checkpoint(now: Date): Promise<{ seq: number; hash: string; jws: string } | undefined> {
    const [head] = await this.#db.query<{ seq: bigint; hash: string }>('select seq, hash from audit_head');
    if (!head || Number(head.seq) === 0) return undefined;
    const payload = new TextEncoder().encode(
      JSON.stringify({ seq: Number(head.seq), hash: head.hash, at: now.toISOString() }),
    );
    const jws = await new CompactSign(payload)
      .setProtectedHeader({ alg: 'EdDSA', kid: String(this.#signingKey.kid) })
      .sign(await importJWK(this.#signingKey, 'EdDSA'));
    await this.#db.query(
      'insert into audit_checkpoints (seq, hash, jws, at) values ($1, $2, $3, $4) on conflict (seq) do nothing',
      [Number(head.seq), head.hash, jws, now],
    );
    return { seq: Number(head.seq), hash: head.hash, jws };
  }

  /**
   * Recomputes the whole chain and checks every checkpoint; names the first record that does not fit.
   * `kept` are checkpoints (JWS) kept outside the database, such as the server logs them: someone able to
   * write the database can rebuild the chain's hashes and delete the checkpoints stored with it, or cut off
   * its last records, but cannot make a chain match a checkpoint signed before.
   */
  async verify(kept: readonly string[] = []): Promise<AuditVerification> {
    let expectedSeq = 1;
    let prevHash = GENESIS_HASH;
    const { d: _private, ...publicJwk } = this.#signingKey;
    const publicKey = await importJWK(publicJwk, 'EdDSA');
    /** The head a checkpoint signed; throws when its signature does not verify. */
    const signedHead = async (jws: string): Promise<{ seq: number; hash: string }> => {
      const signed = JSON.parse(new TextDecoder().decode((await compactVerify(jws, publicKey)).payload));
      return { seq: Number(signed.seq), hash: String(signed.hash) };
    };
    const outside: { seq: number; hash: string }[] = [];
    for (const jws of kept) {
      try {
        outside.push(await signedHead(jws));
      } catch {
        return broken(0, 0, 0, 'a checkpoint kept outside the database does not verify');
      }
    }
    // Only the hashes checkpoints name are kept, so verifying a long chain needs little memory.
    const checkpointed = new Set([
      ...(await this.#db.query<{ seq: bigint }>('select seq from audit_checkpoints')).map((row) =>
        Number(row.seq),
      ),
      ...outside.map((checkpoint) => checkpoint.seq),
    ]);
    const hashes = new Map<number, string>();
    for (;;) {
      const rows = await this.#db.query<Record<string, unknown>>(
        'select * from audit_records where seq >= $1 order by seq limit $2',
        [expectedSeq, VERIFY_PAGE],
      );
      for (const row of rows) {
        const record = {
          seq: Number(row.seq),
          at: row.at as Date,
          actorType: row.actor_type as ActorType,
          actorId: row.actor_id as string | null,
          appId: row.app_id as string | null,
          customerId: row.customer_id as string | null,
          consentIds: row.consent_ids as string | null,
          method: row.method as string,
          route: row.route as string,
          status: Number(row.status),
          requestId: row.request_id as string,
          bodyHash: row.body_hash as string | null,
          prevHash: row.prev_hash as string,
        };
        const brokenHere = (reason: string) => broken(expectedSeq - 1, 0, expectedSeq, reason);
        if (record.seq !== expectedSeq) return brokenHere(`record ${expectedSeq} is missing`);
        if (record.prevHash !== prevHash)
          return brokenHere('its previous hash does not match the record before it');
        const hash = recordHash(record);
        if (hash !== row.hash) return brokenHere('its content does not match its hash');
        if (checkpointed.has(record.seq)) hashes.set(record.seq, hash);
        prevHash = hash;
        expectedSeq++;
      }
      if (rows.length < VERIFY_PAGE) break;
    }
    const records = expectedSeq - 1;
    const [head] = await this.#db.query<{ seq: bigint; hash: string }>('select seq, hash from audit_head');
    if (!head || Number(head.seq) !== records || head.hash !== prevHash) {
      return broken(records, 0, records + 1, 'the head does not match the last record');
    }
    for (const checkpoint of outside) {
      if (hashes.get(checkpoint.seq) !== checkpoint.hash) {
        return broken(
          records,
          0,
          Math.min(checkpoint.seq, records + 1),
          checkpoint.seq > records
            ? `the chain ends at record ${records}, before a checkpoint kept outside it (record ${checkpoint.seq})`
            : 'the chain differs from a checkpoint kept outside the database',
        );
      }
    }
    const checkpoints = await this.#db.query<{ seq: bigint; hash: string; jws: string }>(
      'select seq, hash, jws from audit_checkpoints order by seq',
    );
    for (const checkpoint of checkpoints) {
      const seq = Number(checkpoint.seq);
      let signed: { seq: number; hash: string };
      try {
        signed = await signedHead(checkpoint.jws);
      } catch {
        return broken(records, checkpoints.length, seq, 'a checkpoint signature does not verify');
      }
      if (signed.seq !== seq || signed.hash !== checkpoint.hash || hashes.get(seq) !== signed.hash) {
        return broken(records, checkpoints.length, seq, 'the chain differs from a signed checkpoint');
      }
    }
    return { ok: true, records, checkpoints: checkpoints.length + outside.length };
  }
}
