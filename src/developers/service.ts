import { createHash, randomBytes } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import type { Db } from '../db/db.ts';
import { DECOY_PASSWORD_HASH, hashPassword, verifyPassword } from '../passwords.ts';
import {
  type Developer,
  deleteSession,
  findDeveloperByEmail,
  findSessionDeveloper,
  insertDeveloper,
  insertSession,
} from './store.ts';

export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
const SESSION_TOKEN_PREFIX = 'dev_';

export type SignUpOutcome = { ok: true; developer: Developer } | { ok: false; code: 'email_taken' };
export type LogInOutcome =
  | { ok: true; token: string; expiresAt: Date }
  | { ok: false; code: 'invalid_credentials' };

const tokenHash = (token: string) => createHash('sha256').update(token).digest();

/** Developer accounts and their portal sessions. */
export class Developers {
  readonly #db: Db;
  readonly #now: () => Date;

  constructor(options: { db: Db; now?: () => Date }) {
    this.#db = options.db;
    this.#now = options.now ?? (() => new Date());
  }

  async signUp(input: { name: string; email: string; password: string }): Promise<SignUpOutcome> {
    const developer = await insertDeveloper(this.#db, {
      id: uuidv7(),
      name: input.name,
      email: input.email.toLowerCase(),
      passwordHash: await hashPassword(input.password),
      createdAt: this.#now(),
    });
    return developer ? { ok: true, developer } : { ok: false, code: 'email_taken' };
  }

  /** A session token, shown once; an unknown email costs the same time as a wrong password. */
  async logIn(input: { email: string; password: string }): Promise<LogInOutcome> {
    const developer = await findDeveloperByEmail(this.#db, input.email.toLowerCase());
    const valid = await verifyPassword(input.password, developer?.passwordHash ?? DECOY_PASSWORD_HASH);
    if (!developer || !valid) return { ok: false, code: 'invalid_credentials' };
    const token = `${SESSION_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const now = this.#now();
    const expiresAt = new Date(now.getTime() + SESSION_TTL_MS);
    await insertSession(this.#db, {
      tokenHash: tokenHash(token),
      developerId: developer.id,
      createdAt: now,
      expiresAt,
    });
    return { ok: true, token, expiresAt };
  }

  authenticate(token: string): Promise<Developer | undefined> {
    if (!token.startsWith(SESSION_TOKEN_PREFIX)) return Promise.resolve(undefined);
    return findSessionDeveloper(this.#db, tokenHash(token), this.#now());
  }

  logOut(token: string): Promise<void> {
    return deleteSession(this.#db, tokenHash(token));
  }
}
