// The bank's authorization server: oidc-provider (OpenID-certified), configured once for both profiles.
// The sandbox relaxes client authentication and sender-constraining; production is the FAPI 2.0 Security
// Profile, whose checks the library's `fapi` switch only partly makes (PKCE, issuer-exact assertion
// audiences): the rest is set here explicitly.
import Provider, { type Configuration, errors } from 'oidc-provider';
import type { Mode } from '../config.ts';
import type { Consents } from '../consents/service.ts';
import type { CustomerLogin } from '../customer-auth/service.ts';
import type { Db } from '../db/db.ts';
import { type ClientSource, createAdapterFactory } from './adapter.ts';
import type { OAuthKeys } from './keys.ts';

export const ACCESS_TOKEN_TTL_S = 300;
export const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'] as const;
export const API_SCOPES = ['accounts', 'payments', 'funds_confirmation', 'onboarding'] as const;
// FAPI 2.0 §5.4: PS256, ES256 or EdDSA with Ed25519 only. Ed25519 is taken under its RFC 9864 name too, which
// current clients sign with (openid-client 6 names every Ed25519 signature so).
const ED25519 = ['EdDSA', 'Ed25519'];
const SIGNING_ALGS = ['ES256', 'PS256', ...ED25519];
/** What DPoP proofs may be signed with: the token endpoint's list, and the API's (src/oauth/resource-server.ts). */
export const DPOP_ALGS = ['ES256', ...ED25519];

export interface ProviderOptions {
  readonly issuer: string;
  readonly mode: Mode;
  readonly db: Db;
  readonly clients: ClientSource;
  readonly keys: OAuthKeys;
  /** Customers, by their id (the OpenID Connect subject), and whether account opening verified them. */
  readonly customers: {
    find(id: string): Promise<CustomerLogin | undefined>;
    kycVerified(id: string): Promise<boolean>;
  };
  readonly consents: Consents;
  /** Told of a failure in work the provider's events start, which no request answers for. */
  readonly onError?: (error: unknown, doing: string) => void;
}

/** The RAR types (RFC 9396) the bank accepts; each names a consent the app created beforehand. */
export const AUTHORIZATION_DETAILS_TYPES = [
  'account_information',
  'payment_initiation',
  'funds_confirmation',
  'mandate',
] as const;

/** The one resource server the bank's API is (RFC 8707): every access token names it as its audience. */
export const apiResource = (issuer: string) => `${issuer}/v1`;

export function createProvider(options: ProviderOptions): Provider {
  const { issuer, mode } = options;
  const resource = apiResource(issuer);
  const production = mode === 'production';
  // A client may introspect or revoke only its own tokens.
  const ownTokensOnly = async (_ctx: unknown, caller: { clientId: string }, token: { clientId?: string }) =>
    caller.clientId === token.clientId;

  const configuration: Configuration = {
    adapter: createAdapterFactory(options.db, options.clients, mode),
    jwks: { keys: options.keys.signingKeys as NonNullable<Configuration['jwks']>['keys'] },
    cookies: { keys: [...options.keys.cookieKeys] },
    routes: {
      authorization: '/oauth/authorize',
      token: '/oauth/token',
      jwks: '/oauth/jwks',
      pushed_authorization_request: '/oauth/par',
      introspection: '/oauth/introspect',
      revocation: '/oauth/revoke',
      userinfo: '/oauth/userinfo',
      end_session: '/oauth/logout',
    },
    scopes: [...OIDC_SCOPES, ...API_SCOPES],
    claims: { openid: ['sub'], profile: ['name', 'kyc_verified'], email: ['email', 'email_verified'] },
    responseTypes: ['code'],
    clientAuthMethods: production
      ? ['private_key_jwt']
      : ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      id_token_signed_response_alg: 'ES256',
      token_endpoint_auth_method: production ? 'private_key_jwt' : 'client_secret_basic',
    },
    enabledJWA: {
      clientAuthSigningAlgValues: SIGNING_ALGS as never,
      requestObjectSigningAlgValues: SIGNING_ALGS as never,
      idTokenSigningAlgValues: ['ES256', 'PS256'] as never,
      userinfoSigningAlgValues: ['ES256', 'PS256'] as never,
      introspectionSigningAlgValues: ['ES256', 'PS256'] as never,
      authorizationSigningAlgValues: ['ES256', 'PS256'] as never,
      dPoPSigningAlgValues: DPOP_ALGS as never,
    },
    pkce: { required: () => true },
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL_S,
      ClientCredentials: ACCESS_TOKEN_TTL_S,
      // FAPI 2.0 §5.3.2.1: authorization codes live at most 60 seconds.
      AuthorizationCode: 60,
      IdToken: 300,
      RefreshToken: 30 * 24 * 60 * 60,
      Interaction: 10 * 60,
      Session: 24 * 60 * 60,
      Grant: 365 * 24 * 60 * 60,
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // Customers sign in at the bank's pages (customer-auth/routes.ts); the provider releases each claim
    // only when its scope was requested and granted.
    findAccount: async (_ctx, id) => {
      const customer = await options.customers.find(id);
      if (!customer) return undefined;
      return {
        accountId: customer.id,
        claims: async () => ({
          sub: customer.id,
          name: customer.displayName,
          email: customer.email,
          email_verified: customer.emailVerified,
          // "Sign in with your bank": the bank vouches that it checked who this is (account opening, KYC).
          kyc_verified: await options.customers.kycVerified(customer.id),
        }),
      };
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true, allowedPolicy: ownTokensOnly },
      revocation: { enabled: true, allowedPolicy: ownTokensOnly },
      dPoP: { enabled: true },
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: production },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, requested) => {
          if (requested !== resource) throw new errors.InvalidTarget();
          return {
            scope: API_SCOPES.join(' '),
            audience: resource,
            accessTokenTTL: ACCESS_TOKEN_TTL_S,
            // JWT access tokens (RFC 9068) so the API verifies them locally, without a call per request.
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
      richAuthorizationRequests: {
        enabled: true,
        // Each detail is { type, consentId }: the consent must be this app's, of this type, and still
        // awaiting authorisation. What the customer approves is the consent record; the token carries its id.
        types: Object.fromEntries(
          AUTHORIZATION_DETAILS_TYPES.map((type) => [
            type,
            {
              async validate(_ctx: unknown, detail: Record<string, unknown>, client: { clientId: string }) {
                const keys = Object.keys(detail).sort().join(',');
                if (keys !== 'consentId,type' || typeof detail.consentId !== 'string') {
                  throw new errors.InvalidAuthorizationDetails(`${type} details are { type, consentId }`);
                }
                const consent = /^[0-9a-f-]{36}$/.test(detail.consentId)
                  ? await options.consents.find(detail.consentId)
                  : undefined;
                if (!consent || consent.clientId !== client.clientId || consent.type !== type) {
                  throw new errors.InvalidAuthorizationDetails(
                    `no ${type} consent ${detail.consentId} for this client`,
                  );
                }
                if (consent.status !== 'awaiting_authorisation') {
                  throw new errors.InvalidAuthorizationDetails(`consent ${consent.id} is ${consent.status}`);
                }
              },
            },
          ]),
        ),
        // Carried from the approved grant into the code, from the code into tokens, and out on introspection.
        authorizationDetailsForGrantSource: async (ctx: { oidc: { grant?: { rar?: unknown } } }) =>
          ctx.oidc.grant?.rar,
        authorizationDetailsForAccessToken: async (
          _ctx: unknown,
          _token: unknown,
          source?: { rar?: unknown },
        ) => source?.rar,
        authorizationDetailsForIntrospection: async (_ctx: unknown, token: { rar?: unknown }) => token.rar,
      } as never,
      ...(production ? { fapi: { enabled: true, profile: '2.0' } } : {}),
    },
  };
  const provider = new Provider(issuer, configuration);
  // The provider builds its endpoints' URLs, its cookies' Secure flag and the htu it expects in DPoP proofs
  // from the request it is given (Koa's protocol and host). Behind a proxy that ends TLS, that request says
  // http, and its Host is whatever the caller sent. So every request reaches it as one to the issuer
  // (asIssuerRequest), and it reads protocol and host from the forwarded headers set there.
  provider.proxy = true;
  // The provider revokes a grant, and every token it issued, when its authorization code is used twice
  // (RFC 6749 §4.1.2) or its refresh token is revoked. Access tokens are JWTs the API checks against their
  // consents, not the grant: so the grant's consents end with it, and its access tokens stop at once.
  provider.on('grant.revoked', (_ctx: unknown, grantId: string) => {
    options.consents
      .endGrant(grantId)
      .catch((error: unknown) => options.onError?.(error, 'ending a revoked grant'));
  });
  return provider;
}

/**
 * Makes `raw` a request to `issuer` in the provider's eyes, whatever protocol and Host it arrived with:
 * endpoint URLs follow the configured public URL, never a Host header a caller chose.
 */
export function asIssuerRequest(raw: import('node:http').IncomingMessage, issuer: string): void {
  const url = new URL(issuer);
  raw.headers['x-forwarded-proto'] = url.protocol.slice(0, -1);
  raw.headers['x-forwarded-host'] = url.host;
}
