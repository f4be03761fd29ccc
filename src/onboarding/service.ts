// Account opening: an application is checked (KYC) the moment it arrives and is approved, rejected, or
// queued for an operator. Approval creates the customer, their login and their first account in one
// transaction, with an event for every step written to the outbox in that same transaction.
import { randomInt } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import type { Accounts } from '../accounts/service.ts';
import type { BankAccount } from '../accounts/store.ts';
import type { CustomerAuth } from '../customer-auth/service.ts';
import type { Customers, PersonalData } from '../customers/service.ts';
import type { Db, Sql } from '../db/db.ts';
import { emit, type OutboxEvent } from '../events/outbox.ts';
import type { Screener } from '../kyc/screening.ts';
import { hashPassword } from '../passwords.ts';
import { fieldContext, type Pii } from '../pii/pii.ts';
import { type CheckRecord, decide, type Outcome } from './checks.ts';
import type { CheckedDocument } from './documents.ts';
import {
  claimReview,
  findApplication,
  findChecks,
  findDocumentContent,
  findDocuments,
  insertApplication,
  insertChecks,
  insertDocument,
  listInReview,
  pendingApplicationExists,
  recordDecision,
  type StoredApplication,
} from './store.ts';

export const REVIEWS_PAGE_MAX = 100;
// A claim not acted on within this time may be taken over by another reviewer.
export const REVIEW_CLAIM_MS = 30 * 60 * 1000;

export interface NewApplication {
  readonly applicant: PersonalData;
  readonly product: 'current' | 'savings';
  readonly currency: string;
  readonly documents: readonly CheckedDocument[];
  readonly channel: 'partner' | 'bank_page';
  readonly clientId: string | null;
  /** The password the applicant chose at the bank's page; none for a partner's applicant. */
  readonly password?: string;
}

export interface Application {
  readonly id: string;
  readonly clientId: string | null;
  readonly channel: 'partner' | 'bank_page';
  readonly status: Outcome;
  readonly product: 'current' | 'savings';
  readonly currency: string;
  readonly riskRating: 'low' | 'medium' | 'high';
  readonly reasons: readonly string[];
  readonly customerId: string | null;
  readonly accountId: string | null;
  readonly reviewClaimedBy: string | null;
  readonly decidedBy: string | null;
  readonly decidedAt: Date | null;
  readonly createdAt: Date;
}

export interface ApplicationForReview extends Application {
  readonly applicant: PersonalData;
  readonly checks: readonly (CheckRecord & { createdAt: Date })[];
  readonly documents: readonly {
    id: string;
    kind: string;
    mediaType: string;
    sizeBytes: number;
    sha256: string;
  }[];
  readonly decisionNote: string | null;
}

export type ReviewOutcome =
  | { ok: true; application: Application }
  | {
      ok: false;
      code: 'not_found' | 'review_not_pending' | 'review_claimed_by_another' | 'review_not_claimed';
    };

const view = (stored: StoredApplication): Application => ({
  id: stored.id,
  clientId: stored.clientId,
  channel: stored.channel,
  status: stored.status,
  product: stored.product,
  currency: stored.currency,
  riskRating: stored.riskRating,
  reasons: stored.reasons,
  customerId: stored.customerId,
  accountId: stored.accountId,
  reviewClaimedBy: stored.reviewClaimedBy,
  decidedBy: stored.decidedBy,
  decidedAt: stored.decidedAt,
  createdAt: stored.createdAt,
});

// Thrown inside a transaction to roll the customer back when the username is taken.
class UsernameTaken extends Error {}

export class Onboarding {
  readonly #db: Db;
  readonly #pii: Pii;
  readonly #customers: Customers;
  readonly #accounts: Accounts;
  readonly #logins: CustomerAuth;
  readonly #screener: Screener;
  readonly #now: () => Date;

  constructor(options: {
    db: Db;
    pii: Pii;
    customers: Customers;
    accounts: Accounts;
    logins: CustomerAuth;
    screener: Screener;
    now?: () => Date;
  }) {
    this.#db = options.db;
    this.#pii = options.pii;
    this.#customers = options.customers;
    this.#accounts = options.accounts;
    this.#logins = options.logins;
    this.#screener = options.screener;
    this.#now = options.now ?? (() => new Date());
  }

  /** Runs every check and records the application with its outcome (creating the customer when approved). */
  async submit(input: NewApplication): Promise<Application> {
    const id = uuidv7();
    const loginPasswordHash = input.password === undefined ? null : await hashPassword(input.password);
    const now = this.#now();
    const { applicant } = input;
    const nationalIdIndex = applicant.nationalId
      ? this.#customers.nationalIdIndex(applicant.nationalId)
      : null;
    const hits = this.#screener.screen({ name: applicant.legalName, dateOfBirth: applicant.dateOfBirth });
    return this.#db.transaction(async (tx) => {
      const decision = decide({
        applicant,
        today: now,
        existingCustomer: applicant.nationalId
          ? (await this.#customers.withNationalId(applicant.nationalId, tx)) !== undefined
          : false,
        pendingApplication: nationalIdIndex ? await pendingApplicationExists(tx, nationalIdIndex) : false,
        hits,
        documentKinds: input.documents.map((document) => document.kind),
      });
      const stored: StoredApplication = {
        id,
        clientId: input.clientId,
        channel: input.channel,
        status: decision.outcome,
        applicantEnc: this.#pii.encrypt(
          JSON.stringify(applicant),
          fieldContext('onboarding_applications', 'applicant_enc', id),
        ),
        loginPasswordHash,
        nationalIdIndex,
        product: input.product,
        currency: input.currency,
        riskRating: decision.riskRating,
        reasons: decision.reasons,
        customerId: null,
        accountId: null,
        reviewClaimedBy: null,
        reviewClaimedAt: null,
        decidedBy: decision.outcome === 'in_review' ? null : 'automatic',
        decisionNoteEnc: null,
        decidedAt: decision.outcome === 'in_review' ? null : now,
        createdAt: now,
      };
      await insertApplication(tx, stored);
      await insertChecks(tx, id, decision.checks, now);
      for (const document of input.documents) {
        const documentId = uuidv7();
        await insertDocument(tx, {
          id: documentId,
          applicationId: id,
          kind: document.kind,
          mediaType: document.mediaType,
          sha256: document.sha256,
          sizeBytes: document.bytes.length,
          contentEnc: this.#pii.encrypt(
            document.bytes,
            fieldContext('onboarding_documents', 'content_enc', documentId),
          ),
          createdAt: now,
        });
      }
      await emit(
        tx,
        now,
        {
          type: 'onboarding.application.submitted',
          subjectId: id,
          // clientId routes the event to the partner's webhooks. Check results and reasons never carry it:
          // screening outcomes must not reach the applicant's side (tipping off).
          payload: { applicationId: id, channel: input.channel, clientId: input.clientId },
        },
        ...decision.checks.map(
          (check): OutboxEvent => ({
            type: 'kyc.check.completed',
            subjectId: id,
            payload: { applicationId: id, check: check.name, result: check.result, reason: check.reason },
          }),
        ),
      );
      if (decision.outcome === 'approved') return this.#approve(tx, stored, 'automatic', null, now);
      await emit(tx, now, {
        type:
          decision.outcome === 'rejected'
            ? 'onboarding.application.rejected'
            : 'onboarding.application.referred',
        subjectId: id,
        payload: { applicationId: id, reasons: decision.reasons, riskRating: decision.riskRating },
      });
      return view(stored);
    });
  }

  // Creates customer, login and account. Two applications for one national id can both pass the duplicate
  // check; the customers table's unique blind index lets only one through, and the other is rejected.
  async #approve(
    tx: Sql,
    application: StoredApplication,
    reviewer: string,
    note: string | null,
    now: Date,
  ): Promise<Application> {
    const applicant = await this.#applicant(application);
    const customerId = uuidv7();
    const noteEnc = this.#pii.encrypt(
      note ?? '',
      fieldContext('onboarding_applications', 'decision_note_enc', application.id),
    );
    if (
      !(await this.#customers.create(tx, {
        id: customerId,
        person: applicant,
        riskRating: application.riskRating,
        applicationId: application.id,
      }))
    ) {
      return this.#reject(tx, application, reviewer, note ?? '', now, ['already_a_customer']);
    }
    // The customer signs in with a customer number (not their email: usernames are stored in the clear,
    // for lookup) once they have set a password through the activation the bank sends them.
    const login = {
      id: customerId,
      password: application.loginPasswordHash === null ? null : { hash: application.loginPasswordHash },
      displayName: applicant.legalName,
      email: applicant.email,
      emailVerified: false,
    };
    for (let attempt = 0; ; attempt++) {
      const username = String(randomInt(1_000_000_000, 10_000_000_000));
      if ((await this.#logins.createLogin({ ...login, username }, tx)).created) break;
      if (attempt >= 5) throw new Error('no free customer number after 6 attempts');
    }
    const account = await this.#accounts.open(tx, {
      customerId,
      product: application.product,
      currency: application.currency,
    });
    await recordDecision(tx, application.id, {
      status: 'approved',
      reviewer,
      noteEnc,
      at: now,
      customerId,
      accountId: account.id,
    });
    await emit(
      tx,
      now,
      {
        type: 'onboarding.application.approved',
        subjectId: application.id,
        payload: {
          applicationId: application.id,
          customerId,
          decidedBy: reviewer,
          clientId: application.clientId,
        },
      },
      {
        type: 'customer.created',
        subjectId: customerId,
        payload: { customerId, applicationId: application.id },
      },
      {
        type: 'account.opened',
        subjectId: account.id,
        payload: { accountId: account.id, customerId, product: account.product, currency: account.currency },
      },
    );
    return view((await findApplication(tx, application.id)) as StoredApplication);
  }

  /** Records a rejection (with any reasons found at decision time) and its event. */
  async #reject(
    tx: Sql,
    application: StoredApplication,
    reviewer: string,
    note: string,
    now: Date,
    moreReasons: readonly string[],
  ): Promise<Application> {
    const reasons = [...application.reasons, ...moreReasons];
    await recordDecision(tx, application.id, {
      status: 'rejected',
      reviewer,
      noteEnc: this.#pii.encrypt(
        note,
        fieldContext('onboarding_applications', 'decision_note_enc', application.id),
      ),
      at: now,
      customerId: null,
      accountId: null,
      reasons,
    });
    await emit(tx, now, {
      type: 'onboarding.application.rejected',
      subjectId: application.id,
      payload: { applicationId: application.id, reasons, decidedBy: reviewer },
    });
    return view((await findApplication(tx, application.id)) as StoredApplication);
  }

  async #applicant(application: StoredApplication): Promise<PersonalData> {
    return JSON.parse(
      await this.#pii.decrypt(
        application.applicantEnc,
        fieldContext('onboarding_applications', 'applicant_enc', application.id),
      ),
    ) as PersonalData;
  }

  /**
   * A customer with a login and accounts, without an application: the sandbox's ready-made customers (their
   * documented passwords) and tests. Returns undefined when the national id or username is taken.
   */
  async createDirectly(
    input: {
      person: PersonalData;
      username: string;
      /** A password, or its hash when the caller hashed many in parallel (the sandbox seeder). */
      password: string | { hash: string };
      accounts: readonly { product: 'current' | 'savings'; currency: string; name?: string }[];
      /** A business: `person` is its representative, whose login is the first user; `users` are the others. */
      business?: {
        users: readonly { username: string; password: string; displayName: string; email: string }[];
      };
    },
    sql?: Sql,
  ): Promise<{ customerId: string; loginIds: string[]; accounts: BankAccount[] } | undefined> {
    const create = async (tx: Sql) => {
      const customerId = uuidv7();
      const now = this.#now();
      if (
        !(await this.#customers.create(tx, {
          id: customerId,
          person: input.person,
          riskRating: 'low',
          applicationId: null,
          kind: input.business ? 'business' : 'personal',
        }))
      ) {
        return undefined;
      }
      const login = await this.#logins.createLogin(
        {
          id: customerId,
          username: input.username,
          password: input.password,
          displayName: input.person.legalName,
          email: input.person.email,
          emailVerified: true,
        },
        tx,
      );
      if (!login.created) throw new UsernameTaken();
      const loginIds = [login.id];
      for (const user of input.business?.users ?? []) {
        const added = await this.#logins.createLogin({ ...user, emailVerified: true, customerId }, tx);
        if (!added.created) throw new UsernameTaken();
        loginIds.push(added.id);
      }
      const accounts: BankAccount[] = [];
      for (const wanted of input.accounts) {
        const account = await this.#accounts.open(tx, { customerId, ...wanted });
        accounts.push(account);
        await emit(tx, now, {
          type: 'account.opened',
          subjectId: account.id,
          payload: {
            accountId: account.id,
            customerId,
            product: account.product,
            currency: account.currency,
          },
        });
      }
      await emit(tx, now, {
        type: 'customer.created',
        subjectId: customerId,
        payload: { customerId, applicationId: null },
      });
      return { customerId, loginIds, accounts };
    };
    try {
      // Inside the caller's transaction, an undefined answer leaves partial rows: the caller rolls back.
      return await (sql ? create(sql) : this.#db.transaction(create));
    } catch (error) {
      if (error instanceof UsernameTaken) return undefined;
      throw error;
    }
  }

  usernameTaken(username: string): Promise<boolean> {
    return this.#logins.usernameTaken(username);
  }

  /** The application as its submitting app sees it; another app's application is not found. */
  async getForClient(clientId: string, id: string): Promise<Application | undefined> {
    const stored = await findApplication(this.#db, id);
    return stored?.clientId === clientId ? view(stored) : undefined;
  }

  async listReviews(afterId: string | undefined, limit: number): Promise<Application[]> {
    return (await listInReview(this.#db, afterId, Math.min(limit, REVIEWS_PAGE_MAX + 1))).map(view);
  }

  async forReview(id: string): Promise<ApplicationForReview | undefined> {
    const stored = await findApplication(this.#db, id);
    if (!stored) return undefined;
    return {
      ...view(stored),
      applicant: await this.#applicant(stored),
      checks: await findChecks(this.#db, id),
      documents: await findDocuments(this.#db, id),
      decisionNote: stored.decisionNoteEnc
        ? await this.#pii.decrypt(
            stored.decisionNoteEnc,
            fieldContext('onboarding_applications', 'decision_note_enc', id),
          )
        : null,
    };
  }

  async document(
    applicationId: string,
    documentId: string,
  ): Promise<{ mediaType: string; bytes: Buffer } | undefined> {
    const found = await findDocumentContent(this.#db, applicationId, documentId);
    if (!found) return undefined;
    return {
      mediaType: found.mediaType,
      bytes: await this.#pii.decryptBytes(
        found.contentEnc,
        fieldContext('onboarding_documents', 'content_enc', documentId),
      ),
    };
  }

  /** A reviewer takes an application; nobody else may decide it while the claim is fresh. */
  async claim(id: string, reviewer: string): Promise<ReviewOutcome> {
    const now = this.#now();
    const claimed = await claimReview(this.#db, id, reviewer, now, new Date(now.getTime() - REVIEW_CLAIM_MS));
    if (claimed) {
      await emit(this.#db, now, {
        type: 'onboarding.review.claimed',
        subjectId: id,
        payload: { applicationId: id, reviewer },
      });
      return { ok: true, application: view(claimed) };
    }
    const stored = await findApplication(this.#db, id);
    if (!stored) return { ok: false, code: 'not_found' };
    return {
      ok: false,
      code: stored.status === 'in_review' ? 'review_claimed_by_another' : 'review_not_pending',
    };
  }

  async decide(
    id: string,
    reviewer: string,
    verdict: 'approve' | 'reject',
    note: string,
  ): Promise<ReviewOutcome> {
    return this.#db.transaction(async (tx): Promise<ReviewOutcome> => {
      const stored = await findApplication(tx, id, true);
      if (!stored) return { ok: false, code: 'not_found' };
      if (stored.status !== 'in_review') return { ok: false, code: 'review_not_pending' };
      if (stored.reviewClaimedBy !== reviewer) {
        return {
          ok: false,
          code: stored.reviewClaimedBy ? 'review_claimed_by_another' : 'review_not_claimed',
        };
      }
      const now = this.#now();
      if (verdict === 'approve')
        return { ok: true, application: await this.#approve(tx, stored, reviewer, note, now) };
      return { ok: true, application: await this.#reject(tx, stored, reviewer, note, now, []) };
    });
  }
}
