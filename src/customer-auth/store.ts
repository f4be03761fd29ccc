import type { Sql } from '../db/db.ts';

/** A login as stored: name and email sealed (pii.ts), under contexts `customer_logins.<column>:<id>`. */
export interface StoredLogin {
  readonly id: string;
  /** The business this user acts for; null when the login's own id is the customer's (a personal customer). */
  readonly customerId: string | null;
  readonly username: string;
  readonly displayNameEnc: string;
  readonly emailEnc: string;
  readonly emailVerified: boolean;
  readonly passwordHash: string;
  readonly totpSecret: string | null;
  readonly totpLastStep: number | null;
  readonly failedAttempts: number;
  readonly lockedUntil: Date | null;
}

interface Row {
  id: string;
  customer_id: string | null;
  username: string;
  display_name_enc: string;
  email_enc: string;
  email_verified: boolean;
  password_hash: string;
  totp_secret: string | null;
  totp_last_step: bigint | null;
  failed_attempts: number;
  locked_until: Date | null;
}

const fromRow = (row: Row): StoredLogin => ({
  id: row.id,
  customerId: row.customer_id,
  username: row.username,
  displayNameEnc: row.display_name_enc,
  emailEnc: row.email_enc,
  emailVerified: row.email_verified,
  passwordHash: row.password_hash,
  totpSecret: row.totp_secret,
  totpLastStep: row.totp_last_step === null ? null : Number(row.totp_last_step),
  failedAttempts: row.failed_attempts,
  lockedUntil: row.locked_until,
});

export async function insertLogin(
  sql: Sql,
  login: Omit<StoredLogin, 'totpLastStep'> & { createdAt: Date },
): Promise<boolean> {
  const rows = await sql.query(
    `insert into customer_logins (id, username, display_name_enc, email_enc, email_verified, password_hash, totp_secret, created_at, customer_id)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict (username) do nothing returning 1`,
    [
      login.id,
      login.username,
      login.displayNameEnc,
      login.emailEnc,
      login.emailVerified,
      login.passwordHash,
      login.totpSecret,
      login.createdAt,
      login.customerId,
    ],
  );
  return rows.length === 1;
}

export async function findLoginByUsername(sql: Sql, username: string): Promise<StoredLogin | undefined> {
  const [row] = await sql.query<Row>('select * from customer_logins where username = $1', [username]);
  return row && fromRow(row);
}

export async function findLogin(sql: Sql, id: string): Promise<StoredLogin | undefined> {
  const [row] = await sql.query<Row>('select * from customer_logins where id = $1', [id]);
  return row && fromRow(row);
}

/** Counts a failure in one statement (no lost update between two parallel guesses) and locks at the limit. */
/**
 * Counts an attempt against the login before it is checked, in one statement, and says whether it may be
 * checked at all: false while the login is locked. Counting first is what holds the limit under concurrent
 * attempts: each takes its turn at the row, and past `limit` the rest find it locked. A right answer undoes
 * the count (`recordSuccess`).
 */
export async function claimAttempt(
  sql: Sql,
  id: string,
  limit: number,
  lockMs: number,
  now: Date,
): Promise<boolean> {
  const rows = await sql.query(
    `update customer_logins set failed_attempts = failed_attempts + 1,
       locked_until = case when failed_attempts + 1 >= $2 then $4::timestamptz + make_interval(secs => $3::double precision / 1000)
                           else locked_until end
     where id = $1 and (locked_until is null or locked_until <= $4)
     returning 1`,
    [id, limit, lockMs, now],
  );
  return rows.length === 1;
}

/**
 * A right answer: the count and any lock are cleared and the one-time code's time step is spent. False when
 * another attempt spent that step first (RFC 6238 §5.2: a code is accepted once), which is then a failure.
 */
export async function recordSuccess(sql: Sql, id: string, totpStep: number | null): Promise<boolean> {
  const rows = await sql.query(
    `update customer_logins set failed_attempts = 0, locked_until = null, totp_last_step = coalesce($2, totp_last_step)
     where id = $1 and ($2::bigint is null or totp_last_step is null or totp_last_step < $2)
     returning 1`,
    [id, totpStep],
  );
  return rows.length === 1;
}

export async function insertAttempt(
  sql: Sql,
  attempt: {
    customerId: string | null;
    usernameHash: string;
    outcome: string;
    clientId: string | null;
    remoteAddress: string | null;
    at: Date;
  },
): Promise<void> {
  await sql.query(
    `insert into login_attempts (customer_id, username_hash, outcome, client_id, remote_address, created_at)
     values ($1, $2, $3, $4, $5, $6)`,
    [
      attempt.customerId,
      attempt.usernameHash,
      attempt.outcome,
      attempt.clientId,
      attempt.remoteAddress,
      attempt.at,
    ],
  );
}

export async function insertCustomerSession(
  sql: Sql,
  session: { tokenHash: Buffer; customerId: string; loginId: string; createdAt: Date; expiresAt: Date },
): Promise<void> {
  await sql.query(
    'insert into customer_sessions (token_hash, customer_id, login_id, created_at, expires_at) values ($1, $2, $3, $4, $5)',
    [session.tokenHash, session.customerId, session.loginId, session.createdAt, session.expiresAt],
  );
}

export async function findCustomerSession(
  sql: Sql,
  tokenHash: Buffer,
  now: Date,
): Promise<{ customerId: string; loginId: string } | undefined> {
  const [row] = await sql.query<{ customer_id: string; login_id: string | null }>(
    'select customer_id, login_id from customer_sessions where token_hash = $1 and expires_at > $2',
    [tokenHash, now],
  );
  return row && { customerId: row.customer_id, loginId: row.login_id ?? row.customer_id };
}

export async function deleteCustomerSession(sql: Sql, tokenHash: Buffer): Promise<void> {
  await sql.query('delete from customer_sessions where token_hash = $1', [tokenHash]);
}
