import type { Sql } from '../db/db.ts';

export type AppStatus = 'active' | 'suspended';
export type TokenEndpointAuthMethod =
  | 'client_secret_basic'
  | 'client_secret_post'
  | 'private_key_jwt'
  | 'tls_client_auth';

export interface AppRecord {
  readonly id: string;
  readonly developerId: string;
  readonly name: string;
  readonly redirectUris: readonly string[];
  readonly scopes: readonly string[];
  readonly tokenEndpointAuthMethod: TokenEndpointAuthMethod;
  readonly jwks: { keys: Record<string, unknown>[] } | null;
  readonly jwksUri: string | null;
  /** Sandbox only; never returned by the API after creation or rotation. */
  readonly clientSecret: string | null;
  readonly status: AppStatus;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

interface AppRow {
  id: string;
  developer_id: string;
  name: string;
  redirect_uris: string[];
  scopes: string[];
  token_endpoint_auth_method: TokenEndpointAuthMethod;
  jwks: { keys: Record<string, unknown>[] } | null;
  jwks_uri: string | null;
  client_secret: string | null;
  status: AppStatus;
  created_at: Date;
  updated_at: Date;
}

// Arrays travel as JSON and come back through to_jsonb: both drivers agree on JSON, not on array syntax.
const SELECT = `select id, developer_id, name, to_jsonb(redirect_uris) as redirect_uris, to_jsonb(scopes) as scopes,
  token_endpoint_auth_method, jwks, jwks_uri, client_secret, status, created_at, updated_at from apps`;

const appFromRow = (row: AppRow): AppRecord => ({
  id: row.id,
  developerId: row.developer_id,
  name: row.name,
  redirectUris: row.redirect_uris,
  scopes: row.scopes,
  tokenEndpointAuthMethod: row.token_endpoint_auth_method,
  jwks: row.jwks,
  jwksUri: row.jwks_uri,
  clientSecret: row.client_secret,
  status: row.status,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export async function insertApp(sql: Sql, app: AppRecord): Promise<AppRecord> {
  await sql.query(
    `insert into apps (id, developer_id, name, redirect_uris, scopes, token_endpoint_auth_method, jwks, jwks_uri,
                       client_secret, status, created_at, updated_at)
     select $1, $2, $3, array(select jsonb_array_elements_text($4::text::jsonb)),
            array(select jsonb_array_elements_text($5::text::jsonb)), $6, $7::text::jsonb, $8, $9, $10, $11, $12`,
    [
      app.id,
      app.developerId,
      app.name,
      JSON.stringify(app.redirectUris),
      JSON.stringify(app.scopes),
      app.tokenEndpointAuthMethod,
      app.jwks === null ? null : JSON.stringify(app.jwks),
      app.jwksUri,
      app.clientSecret,
      app.status,
      app.createdAt,
      app.updatedAt,
    ],
  );
  return app;
}

export async function findApp(sql: Sql, id: string): Promise<AppRecord | undefined> {
  const [row] = await sql.query<AppRow>(`${SELECT} where id = $1`, [id]);
  return row && appFromRow(row);
}

/** Apps in creation order after `afterId`; only one developer's when `developerId` is given. */
export async function listApps(
  sql: Sql,
  developerId: string | undefined,
  afterId: string | undefined,
  limit: number,
): Promise<AppRecord[]> {
  const rows = await sql.query<AppRow>(
    `${SELECT} where ($1::uuid is null or developer_id = $1) and ($2::uuid is null or id > $2) order by id limit $3`,
    [developerId ?? null, afterId ?? null, limit],
  );
  return rows.map(appFromRow);
}

export async function updateApp(sql: Sql, app: AppRecord): Promise<void> {
  await sql.query(
    `update apps set name = $2, redirect_uris = array(select jsonb_array_elements_text($3::text::jsonb)),
       scopes = array(select jsonb_array_elements_text($4::text::jsonb)), token_endpoint_auth_method = $5,
       jwks = $6::text::jsonb, jwks_uri = $7, client_secret = $8, status = $9, updated_at = $10
     where id = $1`,
    [
      app.id,
      app.name,
      JSON.stringify(app.redirectUris),
      JSON.stringify(app.scopes),
      app.tokenEndpointAuthMethod,
      app.jwks === null ? null : JSON.stringify(app.jwks),
      app.jwksUri,
      app.clientSecret,
      app.status,
      app.updatedAt,
    ],
  );
}

export async function deleteApp(sql: Sql, id: string): Promise<void> {
  await sql.query('delete from apps where id = $1', [id]);
}
