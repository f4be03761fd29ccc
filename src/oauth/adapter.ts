// oidc-provider's storage interface (lib/adapters in node-oidc-provider), backed by one table. Clients
// are read from the app registry on every request the provider makes, so a suspended or deleted app is
// refused at once (the provider caches only the parsed metadata, keyed by its content).
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { AppRecord } from '../apps/store.ts';
import type { Mode } from '../config.ts';
import type { Db } from '../db/db.ts';

export interface ClientSource {
  find(id: string): Promise<AppRecord | undefined>;
}

/** An app as OAuth client metadata (RFC 7591 names), or undefined when it may not act. */
export function clientMetadata(app: AppRecord | undefined, mode: Mode): AdapterPayload | undefined {
  if (app?.status !== 'active') return undefined;
  const scopes = new Set(app.scopes);
  // Refresh tokens for apps that act for customers (the authorization code flow).
  if (scopes.has('openid') || scopes.has('accounts') || scopes.has('payments')) scopes.add('offline_access');
  return {
    client_id: app.id,
    client_name: app.name,
    ...(app.clientSecret ? { client_secret: app.clientSecret } : {}),
    redirect_uris: [...app.redirectUris],
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
    token_endpoint_auth_method: app.tokenEndpointAuthMethod,
    ...(app.jwks ? { jwks: app.jwks } : {}),
    ...(app.jwksUri ? { jwks_uri: app.jwksUri } : {}),
    scope: [...scopes].join(' '),
    // RFC 9396: the consent types the app may ask for follow from its scopes.
    authorization_details_types: [
      ...(scopes.has('accounts') ? ['account_information'] : []),
      ...(scopes.has('payments') ? ['payment_initiation', 'mandate'] : []),
      ...(scopes.has('funds_confirmation') ? ['funds_confirmation'] : []),
    ],
    id_token_signed_response_alg: 'ES256',
    // FAPI 2.0 §5.3.2.2: sender-constrained access tokens in production; optional in the sandbox.
    dpop_bound_access_tokens: mode === 'production',
  };
}

export function createAdapterFactory(db: Db, clients: ClientSource, mode: Mode) {
  return (model: string): Adapter =>
    model === 'Client' ? new ClientAdapter(clients, mode) : new DbAdapter(db, model);
}

class ClientAdapter implements Adapter {
  readonly #clients: ClientSource;
  readonly #mode: Mode;
  constructor(clients: ClientSource, mode: Mode) {
    this.#clients = clients;
    this.#mode = mode;
  }
  async find(id: string) {
    // Client ids are app ids (UUIDs); anything else cannot be one.
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)) return undefined;
    return clientMetadata(await this.#clients.find(id), this.#mode);
  }
  async upsert() {
    throw new Error('clients are registered through the apps API, not the provider');
  }
  async findByUserCode() {
    return undefined;
  }
  async findByUid() {
    return undefined;
  }
  async consume() {}
  async destroy() {}
  async revokeByGrantId() {}
}

class DbAdapter implements Adapter {
  readonly #db: Db;
  readonly #model: string;
  constructor(db: Db, model: string) {
    this.#db = db;
    this.#model = model;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    await this.#db.query(
      `insert into oauth_payloads (model, id, payload, grant_id, uid, user_code, expires_at)
       values ($1, $2, $3::text::jsonb, $4, $5, $6, case when $7::int > 0 then now() + make_interval(secs => $7::int) end)
       on conflict (model, id) do update set payload = excluded.payload, grant_id = excluded.grant_id,
         uid = excluded.uid, user_code = excluded.user_code, expires_at = excluded.expires_at`,
      [
        this.#model,
        id,
        JSON.stringify(payload),
        payload.grantId ?? null,
        payload.uid ?? null,
        payload.userCode ?? null,
        expiresIn ?? 0,
      ],
    );
  }

  find(id: string): Promise<AdapterPayload | undefined> {
    return this.#findBy('id', id);
  }
  findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.#findBy('uid', uid);
  }
  findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return this.#findBy('user_code', userCode);
  }

  async consume(id: string): Promise<void> {
    await this.#db.query('update oauth_payloads set consumed_at = now() where model = $1 and id = $2', [
      this.#model,
      id,
    ]);
  }
  async destroy(id: string): Promise<void> {
    await this.#db.query('delete from oauth_payloads where model = $1 and id = $2', [this.#model, id]);
  }
  async revokeByGrantId(grantId: string): Promise<void> {
    await this.#db.query('delete from oauth_payloads where grant_id = $1', [grantId]);
  }

  async #findBy(column: 'id' | 'uid' | 'user_code', value: string): Promise<AdapterPayload | undefined> {
    const [row] = await this.#db.query<{ payload: AdapterPayload; consumed: number | null }>(
      `select payload, extract(epoch from consumed_at)::int as consumed from oauth_payloads
        where model = $1 and ${column} = $2 and (expires_at is null or expires_at > now())`,
      [this.#model, value],
    );
    if (!row) return undefined;
    return row.consumed === null ? row.payload : { ...row.payload, consumed: row.consumed };
  }
}

/** Deletes expired payloads, a bounded number per call. */
export async function pruneOAuthPayloads(db: Db, limit = 10_000): Promise<number> {
  const rows = await db.query(
    `delete from oauth_payloads where ctid in (
       select ctid from oauth_payloads where expires_at < now() limit $1) returning 1`,
    [limit],
  );
  return rows.length;
}
