// The API side of OAuth: every protected route verifies the access token locally (RFC 9068 JWT: signature,
// issuer, audience, expiry), the DPoP proof when the token is bound to a key (RFC 9449 §4.3, §7), and
// that the app is still active, then puts who is calling on the request.
import { createHash, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  decodeProtectedHeader,
  type JWK,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import type { AppRecord } from '../apps/store.ts';
import type { Mode } from '../config.ts';
import type { Consent } from '../consents/store.ts';
import { checks } from '../http/openapi.ts';
import { Problem } from '../http/problems.ts';
import { DPOP_ALGS } from './provider.ts';
import { MemoryReplayGuard, type ReplayGuard, ReplayGuardUnavailable } from './replay.ts';

export interface AccessContext {
  readonly clientId: string;
  /** The customer the token acts for; equals clientId for client-credentials tokens. */
  readonly subject: string;
  readonly scopes: ReadonlySet<string>;
  readonly authorizationDetails: readonly Record<string, unknown>[];
  /** The consents the token was issued under, each checked still authorised for this customer. */
  readonly consents: readonly Consent[];
  readonly tokenId: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    access?: AccessContext;
  }
}

export interface ResourceServerOptions {
  readonly issuer: string;
  readonly audience: string;
  readonly jwks: { keys: JWK[] };
  readonly mode: Mode;
  readonly apps: {
    find(id: string): Promise<AppRecord | undefined>;
    /** The app when its record is cached and fresh, without waiting. */
    cached?(id: string): { readonly app: AppRecord | undefined } | undefined;
  };
  readonly consents: { find(id: string): Promise<Consent | undefined> };
  /** Where proof jtis are remembered; default: this process's memory. */
  readonly replay?: ReplayGuard;
  readonly now?: () => Date;
}

// RFC 9449 §11.1: proofs are accepted within a short window around now; their jti is remembered that long.
const PROOF_WINDOW_S = 60;
const BOUND_KEYS_MAX = 10_000;
const VERIFIED_TOKENS_MAX = 50_000;

/** The onRequest hook factory every protected route uses: `requireAccess('accounts')`. */
export function createResourceServer(options: ResourceServerOptions) {
  const keys = createLocalJWKSet(options.jwks);
  const now = options.now ?? (() => new Date());
  const proofs = options.replay ?? new MemoryReplayGuard();
  const proofKeys = new BoundedCache<{ thumbprint: string; key: KeyObject }>(BOUND_KEYS_MAX);

  const invalidToken = (scheme: string, description: string) => {
    const problem = new Problem('invalid_token', description);
    problem.headers = {
      'www-authenticate': `${scheme} error="invalid_token", error_description="${description}"`,
    };
    return problem;
  };
  const invalidProof = (description: string) => {
    const problem = new Problem('invalid_dpop_proof', description);
    problem.headers = {
      'www-authenticate': `DPoP error="invalid_dpop_proof", error_description="${description}"`,
    };
    return problem;
  };

  // A token is immutable: once its signature checked out, later calls with it only re-check its expiry.
  const verified = new VerifiedTokens(VERIFIED_TOKENS_MAX);
  async function verifiedToken(token: string, scheme: string): Promise<VerifiedToken> {
    const known = verified.get(token);
    if (known) {
      if (known.exp > Math.floor(now().getTime() / 1000)) return known;
      throw invalidToken(scheme, 'the access token has expired');
    }
    let claims: Record<string, unknown>;
    try {
      ({ payload: claims } = await jwtVerify(token, keys, {
        issuer: options.issuer,
        audience: options.audience,
        typ: 'at+jwt',
        algorithms: ['ES256', 'PS256'],
        requiredClaims: ['exp', 'client_id'],
        currentDate: now(),
      }));
    } catch (error) {
      const reason =
        error instanceof joseErrors.JWTExpired
          ? 'the access token has expired'
          : 'the access token is not valid';
      throw invalidToken(scheme, reason);
    }
    const prepared = prepare(claims);
    verified.remember(token, prepared);
    return prepared;
  }

  async function authenticate(request: FastifyRequest): Promise<AccessContext> {
    const match = /^(Bearer|DPoP) ([A-Za-z0-9_.-]+)$/i.exec(request.headers.authorization ?? '');
    const scheme =
      match?.[1] === undefined ? 'Bearer' : match[1].toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer';
    const token = match?.[2];
    if (!token) throw invalidToken(scheme, 'no access token in the Authorization header');
    const known = await verifiedToken(token, scheme);
    if (known.boundKey !== undefined) {
      if (scheme !== 'DPoP')
        throw invalidToken('DPoP', 'a DPoP-bound token must be sent with the DPoP scheme');
      await verifyProof(request, token, known.boundKey);
    } else if (options.mode === 'production' || scheme === 'DPoP') {
      // FAPI 2.0 §5.3.2.2: production accepts sender-constrained tokens only.
      throw invalidToken(scheme, 'a sender-constrained (DPoP-bound) token is required');
    }
    const { clientId, subject, authorizationDetails } = known.access;
    const app = await options.apps.find(clientId);
    if (app?.status !== 'active') throw invalidToken(scheme, 'the app is suspended or deleted');
    if (authorizationDetails.length === 0) return known.access;
    // A revoked or expired consent ends its tokens at once: checked on every call, not at issue time.
    const consents: Consent[] = [];
    for (const detail of authorizationDetails) {
      const consent =
        typeof detail.consentId === 'string' ? await options.consents.find(detail.consentId) : undefined;
      // A payment consent its payment consumed still authenticates: the app reads that payment's status and
      // replays its request with this token, and a second payment under it finds the consent used (409).
      const usable =
        consent?.status === 'authorised' ||
        (consent?.status === 'consumed' && consent.type === 'payment_initiation');
      if (!usable || consent.customerId !== subject || consent.clientId !== clientId) {
        throw invalidToken(scheme, 'the consent behind this token is no longer authorised');
      }
      consents.push(consent);
    }
    return { ...known.access, consents };
  }

  /**
   * The calling context without waiting, when everything it depends on is at hand: a Bearer token verified
   * before and not yet expired, bound to no key (no proof to check), naming no consent (consents are read
   * on every call), of an app whose cached record says active. Otherwise undefined, and `authenticate`
   * decides, with its errors. Production takes only DPoP-bound tokens, so never this way.
   */
  function atHand(request: FastifyRequest): AccessContext | undefined {
    if (options.mode === 'production') return undefined;
    const header = request.headers.authorization;
    if (header === undefined || header.length < 8 || header.slice(0, 7).toLowerCase() !== 'bearer ')
      return undefined;
    const known = verified.get(header.slice(7));
    if (
      known === undefined ||
      known.boundKey !== undefined ||
      known.access.authorizationDetails.length > 0 ||
      known.exp <= Math.floor(now().getTime() / 1000)
    )
      return undefined;
    return options.apps.cached?.(known.access.clientId)?.app?.status === 'active' ? known.access : undefined;
  }

  // A proof is remembered for the window either side of its iat in which it could be accepted.
  async function firstSighting(jti: string, nowS: number): Promise<boolean> {
    try {
      return await proofs.firstSeen(jti, 2 * PROOF_WINDOW_S, nowS);
    } catch (error) {
      if (error instanceof ReplayGuardUnavailable)
        throw new Problem('service_unavailable', 'DPoP proofs cannot be checked');
      throw error;
    }
  }

  async function verifyProof(request: FastifyRequest, token: string, boundKey: string): Promise<void> {
    const proof = request.headers.dpop;
    if (typeof proof !== 'string') throw invalidProof('a DPoP proof is required');
    let claims: Record<string, unknown>;
    try {
      // The proof must be signed by the key the token is bound to (RFC 9449 §4.3 step 12): check the
      // embedded key's thumbprint first, then verify with that key, imported once per bound key.
      const header = decodeProtectedHeader(proof);
      if (!header.jwk) throw invalidProof('the proof carries no public key');
      // RFC 9449 §4.3 step 7: the key in the header must be a public key.
      if ('d' in header.jwk) throw invalidProof('the proof carries a private key');
      // Keyed by the embedded JWK's text: a client's proofs repeat it, so the thumbprint and the imported
      // key are computed once per key, not once per call.
      const jwkText = JSON.stringify(header.jwk);
      let known = proofKeys.get(jwkText);
      if (!known) {
        known = {
          thumbprint: await calculateJwkThumbprint(header.jwk, 'sha256'),
          key: createPublicKey({ key: header.jwk as JsonWebKey, format: 'jwk' }),
        };
        proofKeys.remember(jwkText, known);
      }
      if (known.thumbprint !== boundKey) {
        throw invalidProof('the proof is signed by another key than the token is bound to');
      }
      const key = known.key;
      ({ payload: claims } = await jwtVerify(proof, key, {
        typ: 'dpop+jwt',
        algorithms: DPOP_ALGS,
        currentDate: now(),
      }));
    } catch (error) {
      if (error instanceof Problem) throw error;
      throw invalidProof('the DPoP proof is not a valid signed JWT');
    }
    const nowS = Math.floor(now().getTime() / 1000);
    const issuedAt = Number(claims.iat);
    // RFC 9449 §4.3: htu is compared without query and fragment, against the URL this server is known by.
    const expectedUrl = new URL(request.url.split('?')[0] ?? '/', options.issuer).href;
    let proofUrl = '';
    try {
      const parsed = new URL(String(claims.htu));
      parsed.search = '';
      parsed.hash = '';
      proofUrl = parsed.href;
    } catch {}
    if (claims.htm !== request.method) throw invalidProof('the proof is for another HTTP method');
    if (proofUrl !== expectedUrl) throw invalidProof('the proof is for another URL');
    if (!Number.isFinite(issuedAt) || Math.abs(nowS - issuedAt) > PROOF_WINDOW_S)
      throw invalidProof('the proof is not fresh');
    if (claims.ath !== createHash('sha256').update(token).digest('base64url')) {
      throw invalidProof('the proof is for another access token');
    }
    if (typeof claims.jti !== 'string' || !(await firstSighting(claims.jti, nowS))) {
      throw invalidProof('the proof was used before');
    }
  }

  /**
   * The onRequest hook of a route that needs `scopes`. Callback-style, and answering at once when the
   * caller's context is at hand: on the hottest path a promise and a microtask per call are worth saving.
   */
  return function requireAccess(...scopes: string[]) {
    const admit = (access: AccessContext, request: FastifyRequest): void => {
      const missing = scopes.filter((scope) => !access.scopes.has(scope));
      if (missing.length > 0) {
        const problem = new Problem('insufficient_scope', `needs scope ${missing.join(' ')}`);
        problem.headers = {
          'www-authenticate': `Bearer error="insufficient_scope", scope="${scopes.join(' ')}"`,
        };
        throw problem;
      }
      request.access = access;
    };
    return checks(
      'accessToken',
      (request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void): void => {
        const access = atHand(request);
        if (access === undefined) {
          authenticate(request)
            .then((authenticated) => admit(authenticated, request))
            .then(() => done(), done);
          return;
        }
        try {
          admit(access, request);
        } catch (error) {
          done(error as Error);
          return;
        }
        done();
      },
    );
  };
}

/** A verified token's claims, read once into the calling context they give. */
interface VerifiedToken {
  readonly exp: number;
  /** The DPoP key thumbprint the token is bound to (cnf.jkt), if any. */
  readonly boundKey: string | undefined;
  /** The context with no consent read yet: the whole context for a token that names none. */
  readonly access: AccessContext;
}

function prepare(claims: Record<string, unknown>): VerifiedToken {
  const clientId = String(claims.client_id ?? '');
  const boundKey = (claims.cnf as { jkt?: unknown } | undefined)?.jkt;
  return {
    exp: Number(claims.exp),
    boundKey: typeof boundKey === 'string' ? boundKey : undefined,
    access: {
      clientId,
      subject: String(claims.sub ?? clientId),
      scopes: new Set(
        String(claims.scope ?? '')
          .split(' ')
          .filter(Boolean),
      ),
      authorizationDetails: Array.isArray(claims.authorization_details) ? claims.authorization_details : [],
      consents: [],
      tokenId: String(claims.jti ?? ''),
    },
  };
}

/** Imported public keys by thumbprint, so a client's proofs do not re-import its key on every call. */
class BoundedCache<Value> {
  readonly #entries = new Map<string, Value>();
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  get(key: string): Value | undefined {
    return this.#entries.get(key);
  }
  remember(key: string, value: Value): void {
    if (this.#entries.has(key)) return;
    if (this.#entries.size >= this.#max) this.#entries.clear();
    this.#entries.set(key, value);
  }
}

/**
 * Verified tokens by their signature: a map keyed by the whole token would hash its ~800 characters on every
 * call, the signature's 86 (ES256) are enough to find it. The whole token must still match: the signature
 * alone does not say what it signed.
 */
class VerifiedTokens {
  readonly #entries: BoundedCache<{ readonly token: string; readonly verified: VerifiedToken }>;
  constructor(max: number) {
    this.#entries = new BoundedCache(max);
  }
  get(token: string): VerifiedToken | undefined {
    const entry = this.#entries.get(signatureOf(token));
    return entry?.token === token ? entry.verified : undefined;
  }
  remember(token: string, verified: VerifiedToken): void {
    this.#entries.remember(signatureOf(token), { token, verified });
  }
}

const signatureOf = (token: string) => token.slice(token.lastIndexOf('.') + 1);
