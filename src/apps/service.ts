import { randomBytes } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import { TtlCache } from '../cache.ts';
import type { Mode } from '../config.ts';
import type { Db } from '../db/db.ts';
import { literalAddressProblem } from '../outbound.ts';
import { fieldContext, type Pii } from '../pii/pii.ts';
import {
  type AppRecord,
  type AppSettings,
  type AppStatus,
  deleteApp,
  findApp,
  listApps,
  type StoredApp,
  saveApp,
  type TokenEndpointAuthMethod,
} from './store.ts';

/** What the bank's authorization server offers apps. */
export const OFFERED_SCOPES = [
  'openid',
  'profile',
  'email',
  'accounts',
  'payments',
  'funds_confirmation',
  'onboarding',
] as const;
export const APPS_PAGE_MAX = 100;
export const APP_CACHE_TTL_MS = 1000;
const APP_CACHE_ENTRIES_MAX = 10_000;
const SECRET_AUTH_METHODS: readonly TokenEndpointAuthMethod[] = ['client_secret_basic', 'client_secret_post'];

export type AppSettingsError =
  | 'invalid_redirect_uri'
  | 'invalid_client_keys'
  | 'auth_method_not_allowed'
  | 'scope_not_available';
export type AppOutcome =
  | { ok: true; app: AppRecord; clientSecret?: string }
  | { ok: false; code: AppSettingsError | 'not_found' | 'app_suspended'; detail?: string };

/** The app registry: developers manage their own apps; operators suspend and reinstate any. */
export class Apps {
  readonly #db: Db;
  readonly #mode: Mode;
  readonly #now: () => Date;
  readonly #cache = new TtlCache<AppRecord | undefined>({
    ttlMs: APP_CACHE_TTL_MS,
    max: APP_CACHE_ENTRIES_MAX,
  });

  readonly #onCreate: ((app: AppRecord) => Promise<void>) | undefined;

  readonly #pii: Pii;

  constructor(options: {
    db: Db;
    mode: Mode;
    pii: Pii;
    now?: () => Date;
    onCreate?: (app: AppRecord) => Promise<void>;
  }) {
    this.#db = options.db;
    this.#mode = options.mode;
    this.#pii = options.pii;
    this.#now = options.now ?? (() => new Date());
    this.#onCreate = options.onCreate;
  }

  async create(developerId: string, settings: AppSettings): Promise<AppOutcome> {
    const problem = this.#check(settings);
    if (problem) return { ok: false, ...problem };
    const now = this.#now();
    const clientSecret = SECRET_AUTH_METHODS.includes(settings.tokenEndpointAuthMethod) ? newSecret() : null;
    const app: AppRecord = {
      ...settings,
      id: uuidv7(),
      developerId,
      clientSecret,
      status: 'active',
      createdAt: now,
      updatedAt: now,
    };
    await saveApp(this.#db, this.#seal(app));
    await this.#onCreate?.(app);
    return clientSecret ? { ok: true, app, clientSecret } : { ok: true, app };
  }

  /** One developer's app; another developer's is reported as absent, so its existence does not leak. */
  async get(developerId: string, id: string): Promise<AppRecord | undefined> {
    const app = await this.#find(id);
    return app?.developerId === developerId ? app : undefined;
  }

  async list(
    developerId: string | undefined,
    afterId: string | undefined,
    limit: number,
  ): Promise<AppRecord[]> {
    const stored = await listApps(this.#db, developerId, afterId, Math.min(limit, APPS_PAGE_MAX));
    return Promise.all(stored.map((app) => this.#open(app)));
  }

  /** Client secrets rest sealed: a copy of the database does not let anyone act as an app. */
  #seal(app: AppRecord): StoredApp {
    const { clientSecret, ...rest } = app;
    return {
      ...rest,
      clientSecretEnc:
        clientSecret === null
          ? null
          : this.#pii.encrypt(clientSecret, fieldContext('apps', 'client_secret_enc', app.id)),
    };
  }

  async #open(stored: StoredApp): Promise<AppRecord> {
    const { clientSecretEnc, ...rest } = stored;
    return {
      ...rest,
      clientSecret:
        clientSecretEnc === null
          ? null
          : await this.#pii.decrypt(clientSecretEnc, fieldContext('apps', 'client_secret_enc', stored.id)),
    };
  }

  async #find(id: string): Promise<AppRecord | undefined> {
    const stored = await findApp(this.#db, id);
    return stored && this.#open(stored);
  }

  async update(developerId: string, id: string, changes: Partial<AppSettings>): Promise<AppOutcome> {
    const app = await this.get(developerId, id);
    if (!app) return { ok: false, code: 'not_found' };
    if (app.status === 'suspended') return { ok: false, code: 'app_suspended' };
    const settings: AppSettings = { ...app, ...changes };
    const problem = this.#check(settings);
    if (problem) return { ok: false, ...problem };
    const usesSecret = SECRET_AUTH_METHODS.includes(settings.tokenEndpointAuthMethod);
    const clientSecret = usesSecret ? (app.clientSecret ?? newSecret()) : null;
    const updated: AppRecord = { ...app, ...settings, clientSecret, updatedAt: this.#now() };
    await saveApp(this.#db, this.#seal(updated));
    this.#changed(updated);
    return clientSecret && !app.clientSecret
      ? { ok: true, app: updated, clientSecret }
      : { ok: true, app: updated };
  }

  async rotateSecret(developerId: string, id: string): Promise<AppOutcome> {
    const app = await this.get(developerId, id);
    if (!app) return { ok: false, code: 'not_found' };
    if (!SECRET_AUTH_METHODS.includes(app.tokenEndpointAuthMethod)) {
      return {
        ok: false,
        code: 'auth_method_not_allowed',
        detail: 'this app authenticates without a secret',
      };
    }
    const clientSecret = newSecret();
    const updated: AppRecord = { ...app, clientSecret, updatedAt: this.#now() };
    await saveApp(this.#db, this.#seal(updated));
    this.#changed(updated);
    return { ok: true, app: updated, clientSecret };
  }

  async delete(developerId: string, id: string): Promise<boolean> {
    const app = await this.get(developerId, id);
    if (!app) return false;
    await deleteApp(this.#db, id);
    this.#changed({ ...app, status: 'suspended' });
    return true;
  }

  /** Operators: suspend or reinstate any app. A suspended app's tokens stop working at once. */
  async setStatus(id: string, status: AppStatus): Promise<AppRecord | undefined> {
    const app = await this.#find(id);
    if (!app) return undefined;
    const updated: AppRecord = { ...app, status, updatedAt: this.#now() };
    await saveApp(this.#db, this.#seal(updated));
    this.#changed(updated);
    return updated;
  }

  /**
   * For the authorization and resource servers: any app by id, whoever owns it. Read on every token
   * request and API call, so it is cached briefly: a change made through this process (suspension,
   * deletion) takes effect at once; one made by another process within APP_CACHE_TTL_MS.
   */
  find(id: string): Promise<AppRecord | undefined> {
    return this.#cache.get(id, () => this.#find(id));
  }

  /** `find`'s answer when it is cached and fresh, without waiting; undefined when it must be read. */
  cached(id: string): { readonly app: AppRecord | undefined } | undefined {
    const peeked = this.#cache.peek(id);
    return peeked && { app: peeked.value };
  }

  #changed(app: AppRecord): void {
    this.#cache.delete(app.id);
  }

  #check(settings: AppSettings): { code: AppSettingsError; detail: string } | undefined {
    for (const uri of settings.redirectUris) {
      const problem = redirectUriProblem(uri, this.#mode);
      if (problem) return { code: 'invalid_redirect_uri', detail: `${uri}: ${problem}` };
    }
    const unknown = settings.scopes.filter((scope) => !(OFFERED_SCOPES as readonly string[]).includes(scope));
    if (unknown.length > 0)
      return { code: 'scope_not_available', detail: `not offered: ${unknown.join(', ')}` };
    if (this.#mode === 'production' && SECRET_AUTH_METHODS.includes(settings.tokenEndpointAuthMethod)) {
      return {
        code: 'auth_method_not_allowed',
        detail: 'FAPI 2.0 allows private_key_jwt or mutual TLS; this bank offers private_key_jwt',
      };
    }
    // The authorization server does not take mutual TLS yet: an app registered for it could never authenticate.
    if (settings.tokenEndpointAuthMethod === 'tls_client_auth') {
      return {
        code: 'auth_method_not_allowed',
        detail: 'mutual TLS client authentication (tls_client_auth) is not offered yet: use private_key_jwt',
      };
    }
    if (settings.tokenEndpointAuthMethod === 'private_key_jwt') {
      const keys = settings.jwks?.keys;
      if (!settings.jwksUri && (!keys || keys.length === 0)) {
        return { code: 'invalid_client_keys', detail: 'private_key_jwt needs jwks or jwksUri' };
      }
      if (keys?.some((key) => typeof key.kty !== 'string' || 'd' in key || 'k' in key || 'p' in key)) {
        return { code: 'invalid_client_keys', detail: 'jwks must hold public asymmetric keys only' };
      }
    }
    if (settings.jwksUri) {
      const problem = redirectUriProblem(settings.jwksUri, this.#mode);
      if (problem) return { code: 'invalid_client_keys', detail: `jwksUri: ${problem}` };
      // The bank fetches it: an address it never reaches is refused now (a host name, when fetched).
      const refused = literalAddressProblem(new URL(settings.jwksUri), this.#mode);
      if (refused) return { code: 'invalid_client_keys', detail: `jwksUri: ${refused}` };
    }
    return undefined;
  }
}

const newSecret = () => randomBytes(32).toString('base64url');

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** RFC 6749 §3.1.2: absolute, no fragment; TLS required except on a loopback host in the sandbox. */
function redirectUriProblem(text: string, mode: Mode): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'not an absolute URL';
  }
  if (url.hash !== '' || text.includes('#')) return 'must not have a fragment';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && mode === 'sandbox' && LOOPBACK_HOSTS.has(url.hostname)) return undefined;
  return mode === 'sandbox' ? 'must be https (or http on localhost)' : 'must be https';
}
