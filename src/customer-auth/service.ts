import { createHash, randomBytes } from 'node:crypto';
import { Secret, TOTP } from 'otpauth';
import { v7 as uuidv7 } from 'uuid';
import type { Mode } from '../config.ts';
import type { Db, Sql } from '../db/db.ts';
import { DECOY_PASSWORD_HASH, hashPassword, verifyPassword } from '../passwords.ts';
import { fieldContext, type Pii } from '../pii/pii.ts';
import {
  claimAttempt,
  deleteCustomerSession,
  findCustomerSession,
  findLogin,
  findLoginByUsername,
  insertAttempt,
  insertCustomerSession,
  insertLogin,
  recordSuccess,
  type StoredLogin,
} from './store.ts';

/** What the rest of the bank sees of a login: the OpenID Connect claims, decrypted. */
export interface CustomerLogin {
  readonly id: string;
  readonly username: string;
  readonly displayName: string;
  readonly email: string;
  readonly emailVerified: boolean;
}

/** The sandbox's documented one-time code; production verifies a real TOTP (RFC 6238). */
export const SANDBOX_ONE_TIME_CODE = '123456';
export const FAILED_ATTEMPTS_LIMIT = 5;
export const LOCK_MS = 15 * 60 * 1000;
export const CUSTOMER_SESSION_TTL_MS = 30 * 60 * 1000;
const sessionHash = (token: string) => createHash('sha256').update(token).digest();

/** `customerId` is whom the login acts for; `loginId` the person signed in (they differ for a business's users). */
export type SignInOutcome =
  | { ok: true; customerId: string; loginId: string; amr: string[] }
  | { ok: false; code: 'invalid_credentials' | 'locked' };

export interface SignInRequest {
  readonly username: string;
  readonly password: string;
  readonly oneTimeCode: string;
  readonly clientId: string | null;
  readonly remoteAddress: string | null;
}

const usernameHash = (username: string) =>
  createHash('sha256').update(`apibank-login:${username}`).digest('base64url');

const TOTP_PERIOD_S = 30;

export function totpFor(secret: string): TOTP {
  return new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: TOTP_PERIOD_S });
}

/** Customer sign-in at the bank's pages: password plus a second factor, with lockout and an audit of every attempt. */
export class CustomerAuth {
  readonly #db: Db;
  readonly #mode: Mode;
  readonly #now: () => Date;
  readonly #pii: Pii;

  constructor(options: { db: Db; mode: Mode; pii: Pii; now?: () => Date }) {
    this.#db = options.db;
    this.#mode = options.mode;
    this.#pii = options.pii;
    this.#now = options.now ?? (() => new Date());
  }

  async signIn(request: SignInRequest): Promise<SignInOutcome> {
    const now = this.#now();
    const login = await findLoginByUsername(this.#db, request.username);
    // Counted before it is checked (claimAttempt): concurrent attempts cannot all pass one lock check.
    const admitted = login
      ? await claimAttempt(this.#db, login.id, FAILED_ATTEMPTS_LIMIT, LOCK_MS, now)
      : false;
    // Always spend the hashing time, so an unknown username answers as slowly as a wrong password.
    const passwordOk = await verifyPassword(request.password, login?.passwordHash ?? DECOY_PASSWORD_HASH);
    const audit = (outcome: string) =>
      insertAttempt(this.#db, {
        customerId: login?.id ?? null,
        usernameHash: usernameHash(request.username),
        outcome,
        clientId: request.clientId,
        remoteAddress: request.remoteAddress,
        at: now,
      });
    if (login && !admitted) {
      await audit('locked');
      return { ok: false, code: 'locked' };
    }
    if (!login || !passwordOk) {
      await audit('wrong_credentials');
      return { ok: false, code: 'invalid_credentials' };
    }
    const step = this.#secondFactorStep(login, request.oneTimeCode, now);
    if (step === undefined || !(await recordSuccess(this.#db, login.id, step))) {
      await audit('wrong_second_factor');
      return { ok: false, code: 'invalid_credentials' };
    }
    await audit('success');
    return { ok: true, customerId: login.customerId ?? login.id, loginId: login.id, amr: ['pwd', 'otp'] };
  }

  /** A session for the bank's own pages after a successful sign-in; the value goes in a cookie. */
  async startSession(customerId: string, loginId = customerId): Promise<{ token: string; expiresAt: Date }> {
    const token = randomBytes(32).toString('base64url');
    const now = this.#now();
    const expiresAt = new Date(now.getTime() + CUSTOMER_SESSION_TTL_MS);
    await insertCustomerSession(this.#db, {
      tokenHash: sessionHash(token),
      customerId,
      loginId,
      createdAt: now,
      expiresAt,
    });
    return { token, expiresAt };
  }

  async sessionCustomer(token: string): Promise<string | undefined> {
    return (await this.sessionUser(token))?.customerId;
  }

  /** Whom the session acts for and which of the customer's users it is (a business has several). */
  sessionUser(token: string): Promise<{ customerId: string; loginId: string } | undefined> {
    return findCustomerSession(this.#db, sessionHash(token), this.#now());
  }

  endSession(token: string): Promise<void> {
    return deleteCustomerSession(this.#db, sessionHash(token));
  }

  /**
   * Step-up: a signed-in customer confirms one action (a payment the fraud rules held) with a fresh one-time
   * code. Codes are single-use, failures count toward the same lockout as sign-in, and every attempt is audited.
   */
  async confirmWithSecondFactor(
    customerId: string,
    code: string,
  ): Promise<'confirmed' | 'wrong_code' | 'locked'> {
    const now = this.#now();
    const login = await findLogin(this.#db, customerId);
    if (!login) return 'wrong_code';
    const audit = (outcome: string) =>
      insertAttempt(this.#db, {
        customerId,
        usernameHash: usernameHash(login.username),
        outcome,
        clientId: null,
        remoteAddress: null,
        at: now,
      });
    if (!(await claimAttempt(this.#db, login.id, FAILED_ATTEMPTS_LIMIT, LOCK_MS, now))) {
      await audit('locked');
      return 'locked';
    }
    const step = this.#secondFactorStep(login, code, now);
    if (step === undefined || !(await recordSuccess(this.#db, login.id, step))) {
      await audit('wrong_second_factor');
      return 'wrong_code';
    }
    await audit('success');
    return 'confirmed';
  }

  async usernameTaken(username: string): Promise<boolean> {
    return (await findLoginByUsername(this.#db, username)) !== undefined;
  }

  async find(id: string): Promise<CustomerLogin | undefined> {
    const stored = await findLogin(this.#db, id);
    if (!stored) return undefined;
    return {
      id: stored.id,
      username: stored.username,
      displayName: await this.#pii.decrypt(
        stored.displayNameEnc,
        fieldContext('customer_logins', 'display_name_enc', id),
      ),
      email: await this.#pii.decrypt(stored.emailEnc, fieldContext('customer_logins', 'email_enc', id)),
      emailVerified: stored.emailVerified,
    };
  }

  /**
   * Creates a login; false when the username is taken. A TOTP secret is generated unless in the sandbox.
   * Without a password the login cannot sign in until the customer sets one (account opening).
   */
  async createLogin(
    input: {
      id?: string;
      username: string;
      password: string | { hash: string } | null;
      displayName: string;
      email: string;
      emailVerified: boolean;
      /** For a business's further users: the customer they act for. */
      customerId?: string;
    },
    sql: Sql = this.#db,
  ): Promise<{ created: boolean; id: string; totpSecret: string | null }> {
    const id = input.id ?? uuidv7();
    const totpSecret = this.#mode === 'production' ? new Secret({ size: 20 }).base32 : null;
    const created = await insertLogin(sql, {
      id,
      customerId: input.customerId ?? null,
      username: input.username,
      displayNameEnc: this.#pii.encrypt(
        input.displayName,
        fieldContext('customer_logins', 'display_name_enc', id),
      ),
      emailEnc: this.#pii.encrypt(input.email, fieldContext('customer_logins', 'email_enc', id)),
      emailVerified: input.emailVerified,
      // No password yet: the decoy hash, which no password matches.
      passwordHash:
        input.password === null
          ? DECOY_PASSWORD_HASH
          : typeof input.password === 'string'
            ? await hashPassword(input.password)
            : input.password.hash,
      totpSecret,
      failedAttempts: 0,
      lockedUntil: null,
      createdAt: this.#now(),
    });
    return { created, id, totpSecret };
  }

  /** The accepted code's time step (null for the sandbox code), or undefined when the code is wrong or used. */
  #secondFactorStep(login: StoredLogin, code: string, now: Date): number | null | undefined {
    if (login.totpSecret) {
      // One step either side absorbs clock drift (RFC 6238 §5.2); a step already used is refused.
      const delta = totpFor(login.totpSecret).validate({ token: code, timestamp: now.getTime(), window: 1 });
      if (delta === null) return undefined;
      const step = Math.floor(now.getTime() / 1000 / TOTP_PERIOD_S) + delta;
      return login.totpLastStep !== null && step <= login.totpLastStep ? undefined : step;
    }
    return this.#mode === 'sandbox' && code === SANDBOX_ONE_TIME_CODE ? null : undefined;
  }
}
