import { arrayLiteral, type Sql, UUID_MIN } from '../db/db.ts';

export type AppStatus = 'active' | 'suspended';
export type TokenEndpointAuthMethod =
  | 'client_secret_basic'
  | 'client_secret_post'
  | 'private_key_jwt'
  | 'tls_client_auth';

/** What a developer chooses for an app. */
export interface AppSettings {
  readonly name: string;
  readonly redirectUris: readonly string[];
  readonly scopes: readonly string[];
  readonly tokenEndpointAuthMethod: TokenEndpointAuthMethod;
  readonly jwks: { keys: Record<string, unknown>[] } | null;
  readonly jwksUri: string | null;
}

export interface AppRecord extends AppSettings {
  readonly id: string;
  readonly developerId: string;
  /** Sandbox only; never returned by the API after creation or rotation. Sealed at rest (pii.ts). */
  readonly clientSecret: string | null;
  readonly status: AppStatus;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** An app as stored: the client secret sealed under `apps.client_secret_enc:<id>`. */
export type StoredApp = Omit<AppRecord, 'clientSecret'> & { readonly clientSecretEnc: string | null };

interface AppRow {
  id: string;
  developer_id: string;
  name: string;
  redirect_uris: string[];
  scopes: string[];
  token_endpoint_auth_method: TokenEndpointAuthMethod;
  jwks: { keys: Record<string, unknown>[] } | null;
  jwks_uri: string | null;
  client_secret_enc: string | null;
  status: AppStatus;
  created_at: Date;
  updated_at: Date;
}

// Arrays travel as JSON and come back through to_jsonb: both drivers agree on JSON, not on array syntax.
const SELECT = `select id, developer_id, name, to_jsonb(redirect_uris) as redirect_uris, to_jsonb(scopes) as scopes,
  token_endpoint_auth_method, jwks, jwks_uri, client_secret_enc, status, created_at, updated_at from apps`;

const appFromRow = (row: AppRow): StoredApp => ({
  id: row.id,
  developerId: row.developer_id,
  name: row.name,
  redirectUris: row.redirect_uris,
  scopes: row.scopes,
  tokenEndpointAuthMethod: row.token_endpoint_auth_method,
  jwks: row.jwks,
  jwksUri: row.jwks_uri,
  clientSecretEnc: row.client_secret_enc,
  status: row.status,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** Creates the app, or replaces everything but its owner and creation time. */
export async function saveApp(sql: Sql, app: StoredApp): Promise<void> {
  await sql.query(
    `insert into apps (id, developer_id, name, redirect_uris, scopes, token_endpoint_auth_method, jwks, jwks_uri,
                       client_secret_enc, status, created_at, updated_at)
     values ($1, $2, $3, $4::text::text[], $5::text::text[], $6, $7::text::jsonb, $8, $9, $10, $11, $12)
     on conflict (id) do update set name = excluded.name, redirect_uris = excluded.redirect_uris,
       scopes = excluded.scopes, token_endpoint_auth_method = excluded.token_endpoint_auth_method,
       jwks = excluded.jwks, jwks_uri = excluded.jwks_uri, client_secret_enc = excluded.client_secret_enc,
       status = excluded.status, updated_at = excluded.updated_at`,
    [
      app.id,
      app.developerId,
      app.name,
      arrayLiteral(app.redirectUris),
      arrayLiteral(app.scopes),
      app.tokenEndpointAuthMethod,
      app.jwks === null ? null : JSON.stringify(app.jwks),
      app.jwksUri,
      app.clientSecretEnc,
      app.status,
      app.createdAt,
      app.updatedAt,
    ],
  );
}

export async function findApp(sql: Sql, id: string): Promise<StoredApp | undefined> {
  const [row] = await sql.query<AppRow>(`${SELECT} where id = $1`, [id]);
  return row && appFromRow(row);
}

/** Apps in creation order after `afterId`; only one developer's when `developerId` is given. */
export async function listApps(
  sql: Sql,
  developerId: string | undefined,
  afterId: string | undefined,
  limit: number,
): Promise<StoredApp[]> {
  // One statement for each case, the cursor an index condition even when absent: a developer's apps
  // through their index, every app through the key.
  const rows =
    developerId === undefined
      ? await sql.query<AppRow>(
          `${SELECT} where id > coalesce($1::uuid, '${UUID_MIN}') order by id limit $2`,
          [afterId ?? null, limit],
        )
      : await sql.query<AppRow>(
          `${SELECT} where developer_id = $1 and id > coalesce($2::uuid, '${UUID_MIN}') order by id limit $3`,
          [developerId, afterId ?? null, limit],
        );
  return rows.map(appFromRow);
}

export async function deleteApp(sql: Sql, id: string): Promise<void> {
  await sql.query('delete from apps where id = $1', [id]);
}
