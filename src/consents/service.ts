import { v7 as uuidv7 } from 'uuid';
import type { Db, Sql } from '../db/db.ts';
import { alone, GroupRead, type Jointly } from '../db/group-commit.ts';
import { emit } from '../events/outbox.ts';
import { fieldContext, type Pii } from '../pii/pii.ts';
import {
  type Consent,
  type ConsentStatus,
  type ConsentType,
  type Consumption,
  consumeConsents,
  destroyGrant,
  findConsent,
  insertConsent,
  listCustomerConsents,
  lockAuthorisedConsent,
  transitionConsent,
} from './store.ts';

export const CONSENT_VALIDITY_MAX_MS = 180 * 24 * 60 * 60 * 1000; // PSD2 RTS Art. 10: re-authenticate every 180 days
export const CONSENTS_PAGE_MAX = 100;

/** The scope an app needs to ask for each kind of consent. */
export const SCOPE_OF: Readonly<Record<ConsentType, string>> = {
  account_information: 'accounts',
  payment_initiation: 'payments',
  funds_confirmation: 'funds_confirmation',
  // A mandate lets the app take payments while the customer is away (src/mandates/).
  mandate: 'payments',
};

export type ConsentProblem = 'invalid_expiry' | 'not_found' | 'consent_not_active';

/** Consents and their lifecycle: awaiting authorisation → authorised → consumed | revoked | expired, or rejected. */
export class Consents {
  readonly #db: Db;
  readonly #pii: Pii;
  readonly #reads: GroupRead;
  readonly #now: () => Date;

  constructor(options: { db: Db; pii: Pii; now?: () => Date }) {
    this.#db = options.db;
    this.#pii = options.pii;
    this.#reads = new GroupRead(options.db);
    this.#now = options.now ?? (() => new Date());
  }

  // A consent's terms name people (a payee, a creditor account's holder): they are sealed at rest as one
  // value (details_enc), bound to the consent, and opened on every read. Nothing queries inside them.
  #seal(consent: Consent): Consent {
    const detailsEnc = this.#pii.encrypt(JSON.stringify(consent.details), detailsContext(consent.id));
    return { ...consent, details: {}, detailsEnc };
  }

  async #open(consent: Consent | undefined): Promise<Consent | undefined> {
    // Consents written before terms were sealed keep them in `details`.
    if (!consent?.detailsEnc) return consent;
    const { detailsEnc, ...rest } = consent;
    return { ...rest, details: JSON.parse(await this.#pii.decrypt(detailsEnc, detailsContext(consent.id))) };
  }

  /** In the caller's transaction when `sql` is given (a mandate's terms and its consent commit together). */
  async create(
    clientId: string,
    request: { type: ConsentType; details: Record<string, unknown>; expiresAt: Date },
    sql?: Sql,
  ): Promise<{ ok: true; consent: Consent } | { ok: false; code: ConsentProblem }> {
    const now = this.#now();
    const aheadMs = request.expiresAt.getTime() - now.getTime();
    if (aheadMs <= 0 || aheadMs > CONSENT_VALIDITY_MAX_MS) return { ok: false, code: 'invalid_expiry' };
    const consent: Consent = {
      id: uuidv7(),
      clientId,
      customerId: null,
      type: request.type,
      status: 'awaiting_authorisation',
      details: request.details,
      grantId: null,
      accountIds: null,
      expiresAt: request.expiresAt,
      createdAt: now,
      statusUpdatedAt: now,
    };
    const record = async (tx: Sql) => {
      await insertConsent(tx, this.#seal(consent));
      await emit(tx, now, consentEvent(consent, 'created'));
    };
    await (sql ? record(sql) : this.#db.transaction(record));
    return { ok: true, consent };
  }

  /** The consent as `clientId` may see it: another app's consent does not exist for it. */
  async getForClient(clientId: string, id: string): Promise<Consent | undefined> {
    const consent = await findConsent(this.#db, id, this.#now());
    return consent?.clientId === clientId ? this.#open(consent) : undefined;
  }

  async getForCustomer(customerId: string, id: string): Promise<Consent | undefined> {
    const consent = await findConsent(this.#db, id, this.#now());
    return consent?.customerId === customerId ? this.#open(consent) : undefined;
  }

  /** Read on every call made under a consent: concurrent calls' reads share a connection's round trip. */
  async find(id: string): Promise<Consent | undefined> {
    return this.#open(await this.#reads.run((sql) => findConsent(sql, id, this.#now())));
  }

  async listForCustomer(
    customerId: string,
    afterId: string | undefined,
    limit: number,
    type?: ConsentType,
  ): Promise<Consent[]> {
    const listed = await listCustomerConsents(
      this.#db,
      customerId,
      type,
      afterId,
      Math.min(limit, CONSENTS_PAGE_MAX),
      this.#now(),
    );
    return (await Promise.all(listed.map((consent) => this.#open(consent)))) as Consent[];
  }

  /**
   * The consent, if still authorised, inside the caller's transaction and share-locked until it commits: a
   * mandate's charge and a revocation of its consent happen one after the other, never interleaved.
   */
  async lockAuthorised(id: string, sql: Sql): Promise<Consent | undefined> {
    return this.#open(await lockAuthorisedConsent(sql, id, this.#now()));
  }

  /** The customer approved it at the consent page, choosing the accounts it covers. */
  authorise(
    id: string,
    customerId: string,
    grantId: string,
    accountIds: readonly string[],
  ): Promise<Consent | undefined> {
    return this.#move(undefined, id, ['awaiting_authorisation'], 'authorised', {
      customerId,
      grantId,
      accountIds,
    });
  }

  reject(id: string, customerId: string): Promise<Consent | undefined> {
    return this.#move(undefined, id, ['awaiting_authorisation'], 'rejected', { customerId });
  }

  /**
   * A single-use consent (a payment) used up, inside the caller's transaction: the payment and the consent's
   * end commit together, so a revocation racing the payment either comes first (no payment) or finds it
   * consumed. False when it was no longer authorised. One statement, its event with it; with `jointly`, one
   * with the other consents its group consumes (src/db/group-commit.ts).
   */
  consume(consent: Consent, sql: Sql, jointly: Jointly = alone(sql)): Promise<boolean> {
    const consumed: Consent = { ...consent, status: 'consumed' };
    return jointly(this.#consumeAll, { id: consent.id, event: consentEvent(consumed, 'consumed') });
  }

  // One function value for every work of a group (a joint call's identity).
  readonly #consumeAll = (sql: Sql, items: Consumption[]) => consumeConsents(sql, this.#now(), items);

  /** Revoked by its customer or its app: every token issued under it stops working at once. */
  async revoke(consent: Consent): Promise<Consent | undefined> {
    const revoked = await this.#move(
      undefined,
      consent.id,
      ['awaiting_authorisation', 'authorised'],
      'revoked',
      {},
    );
    if (revoked?.grantId) await destroyGrant(this.#db, revoked.grantId);
    return revoked;
  }

  /** The authorization server revoked `grantId`: the consents it carried that are still live end too. */
  async endGrant(grantId: string): Promise<void> {
    const live = await this.#db.query<{ id: string }>(
      `select id from consents where grant_id = $1 and status in ('awaiting_authorisation', 'authorised')`,
      [grantId],
    );
    for (const { id } of live) {
      await this.#move(undefined, id, ['awaiting_authorisation', 'authorised'], 'revoked', {});
    }
  }

  /** A status change and its event, in the caller's transaction or one of its own. */
  async #move(
    sql: Sql | undefined,
    id: string,
    from: readonly ConsentStatus[],
    to: ConsentStatus,
    changes: { customerId?: string; grantId?: string; accountIds?: readonly string[] },
  ): Promise<Consent | undefined> {
    const now = this.#now();
    const move = async (tx: Sql) => {
      const moved = await transitionConsent(tx, id, from, to, changes, now);
      if (moved) await emit(tx, now, consentEvent(moved, to));
      return moved;
    };
    return this.#open(await (sql ? move(sql) : this.#db.transaction(move)));
  }
}

const detailsContext = (id: string) => fieldContext('consents', 'details_enc', id);

/** Ids and the new status only: the consent's terms (a payee's name) stay out of events and webhooks. */
function consentEvent(consent: Consent, what: string) {
  return {
    type: `consent.${what}`,
    subjectId: consent.id,
    payload: {
      consentId: consent.id,
      clientId: consent.clientId,
      customerId: consent.customerId,
      type: consent.type,
      status: consent.status,
    },
  };
}
