import type { Sql } from '../db/db.ts';

export interface Developer {
  readonly id: string;
  readonly name: string;
  readonly email: string;
  readonly createdAt: Date;
}

interface DeveloperRow {
  id: string;
  name: string;
  email: string;
  password_hash: string;
  created_at: Date;
}

const developerFromRow = (row: DeveloperRow): Developer => ({
  id: row.id,
  name: row.name,
  email: row.email,
  createdAt: row.created_at,
});

/** Inserts a developer; undefined when the email is already registered. */
export async function insertDeveloper(
  sql: Sql,
  developer: Developer & { passwordHash: string },
): Promise<Developer | undefined> {
  const [row] = await sql.query<DeveloperRow>(
    `insert into developers (id, name, email, password_hash, created_at) values ($1, $2, $3, $4, $5)
     on conflict (email) do nothing returning *`,
    [developer.id, developer.name, developer.email, developer.passwordHash, developer.createdAt],
  );
  return row && developerFromRow(row);
}

export async function findDeveloperByEmail(
  sql: Sql,
  email: string,
): Promise<(Developer & { passwordHash: string }) | undefined> {
  const [row] = await sql.query<DeveloperRow>('select * from developers where email = $1', [email]);
  return row && { ...developerFromRow(row), passwordHash: row.password_hash };
}

export async function insertSession(
  sql: Sql,
  session: { tokenHash: Buffer; developerId: string; createdAt: Date; expiresAt: Date },
): Promise<void> {
  await sql.query(
    'insert into developer_sessions (token_hash, developer_id, created_at, expires_at) values ($1, $2, $3, $4)',
    [session.tokenHash, session.developerId, session.createdAt, session.expiresAt],
  );
}

export async function findSessionDeveloper(
  sql: Sql,
  tokenHash: Buffer,
  now: Date,
): Promise<Developer | undefined> {
  const [row] = await sql.query<DeveloperRow>(
    `select d.* from developer_sessions s join developers d on d.id = s.developer_id
      where s.token_hash = $1 and s.expires_at > $2`,
    [tokenHash, now],
  );
  return row && developerFromRow(row);
}

export async function deleteSession(sql: Sql, tokenHash: Buffer): Promise<void> {
  await sql.query('delete from developer_sessions where token_hash = $1', [tokenHash]);
}
