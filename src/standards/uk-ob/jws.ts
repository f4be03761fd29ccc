// Signatures in the Open Banking profile, shared by the facades: the bank's detached JWS over response
// bodies (Payment Initiation, Events) and signed event notifications (Events API, aggregated polling), one
// key, the bank's published token-signing key, so a third party verifies both with the bank's JWKS; and the
// verification of the detached JWS a third party puts on its requests (`requestSignatureCheck`), with a key
// of the JWKS its app registered (`jwks` or `jwksUri`, as for private_key_jwt).
import type { FastifyRequest } from 'fastify';
import {
  CompactSign,
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  errors,
  type FlattenedVerifyGetKey,
  flattenedVerify,
  importJWK,
  type JSONWebKeySet,
  type JWK,
  type JWSHeaderParameters,
} from 'jose';
import type { Mode } from '../../config.ts';
import { type App, registerJsonParser } from '../../http/app.ts';
import { outboundFetch } from '../../outbound.ts';
import { accessOf } from './access.ts';
import { OB_ERROR_CODES, ObError, type ObErrorCode } from './errors.ts';

const OB_IAT = 'http://openbanking.org.uk/iat';
const OB_ISS = 'http://openbanking.org.uk/iss';
const OB_TAN = 'http://openbanking.org.uk/tan';
const OB_CRIT = [OB_IAT, OB_ISS, OB_TAN];
/**
 * The trust anchor the bank's signatures name and third parties' must name (`http://openbanking.org.uk/tan`):
 * Open Banking's directory. A deployment under another directory sets APIBANK_OB_TRUST_ANCHOR.
 */
export const DEFAULT_TRUST_ANCHOR = 'openbanking.org.uk';

function keyOf(jwk: JWK): { alg: string; key: ReturnType<typeof importJWK> } {
  const alg = jwk.alg ?? 'ES256';
  return { alg, key: importJWK(jwk, alg) };
}

/**
 * Detached JWS over a response body (RFC 7515 Appendix F), with the claims the Open Banking profile makes
 * critical: when it was signed, by whom, and the trust anchor. Verifiable with the bank's JWKS.
 */
export function responseSigner(
  jwk: JWK,
  issuer: string,
  trustAnchor = DEFAULT_TRUST_ANCHOR,
): (body: string) => Promise<string> {
  const { alg, key } = keyOf(jwk);
  return async (body) => {
    const jws = await new CompactSign(new TextEncoder().encode(body))
      .setProtectedHeader({
        alg,
        ...(jwk.kid && { kid: jwk.kid }),
        typ: 'JOSE',
        cty: 'application/json',
        [OB_IAT]: Math.floor(Date.now() / 1000),
        [OB_ISS]: issuer,
        [OB_TAN]: trustAnchor,
        crit: OB_CRIT,
      })
      .sign(await key, { crit: Object.fromEntries(OB_CRIT.map((name) => [name, true])) });
    const [header, , signature] = jws.split('.');
    return `${header}..${signature}`;
  };
}

/** What a scope of the payment APIs needs to sign its answers and check its callers' signatures. */
export interface MessageSigning {
  /** A private signing JWK of the bank (published at its JWKS): signs every response body. */
  readonly signingKey: JWK;
  /** The bank's URL, the signatures' issuer. */
  readonly publicUrl: string;
  /** The apps' registered keys, which verify the third parties' request signatures. */
  readonly apps: AppSigningKeys;
  /** The trust anchor (`http://openbanking.org.uk/tan`) signatures name. */
  readonly trustAnchor: string;
  /** Which addresses an app's JWKS URI may lead to (outbound.ts): loopback in the sandbox only. */
  readonly mode: Mode;
}

/**
 * The Read/Write profile's message signing in `scope`: every response body goes out with its detached
 * `x-jws-signature`, and the returned check, given to a route as `preValidation`, refuses a request body
 * not signed by the calling app (requestSignatureCheck).
 */
export function signedMessages(
  scope: App,
  signing: MessageSigning,
): (request: FastifyRequest) => Promise<void> {
  const sign = responseSigner(signing.signingKey, signing.publicUrl, signing.trustAnchor);
  scope.addHook('onSend', async (_request, reply, payload) => {
    if (typeof payload === 'string' && payload.length > 0) {
      reply.header('x-jws-signature', await sign(payload));
    }
    return payload;
  });
  return requestSignatureCheck(scope, {
    apps: signing.apps,
    trustAnchor: signing.trustAnchor,
    mode: signing.mode,
  });
}

/**
 * A security event token (RFC 8417) as a compact JWS, as the Events API delivers event notifications
 * (OBEventNotification2 claims): the receiver needs the claims, so the payload is attached, not detached.
 */
export function tokenSigner(jwk: JWK): (claims: Readonly<Record<string, unknown>>) => Promise<string> {
  const { alg, key } = keyOf(jwk);
  return async (claims) =>
    new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
      .setProtectedHeader({ alg, ...(jwk.kid && { kid: jwk.kid }), typ: 'secevent+jwt' })
      .sign(await key);
}

// ---- request signatures ---------------------------------------------------------------------------------

/** The algorithms a request may be signed with: the profile's PS256, or ES256 for an app's EC key. */
const REQUEST_ALGORITHMS = ['PS256', 'ES256'];
// `iat` may run ahead of the bank's clock by this much (the third party's clock is not ours), no more.
const IAT_CLOCK_SKEW_S = 60;
// A remote JWKS is fetched at most this long, and kept per URI (a bounded set: apps are few).
const JWKS_FETCH_TIMEOUT_MS = 5000;
const REMOTE_JWKS_CACHED_MAX = 1000;
// A header longer than this is not a signature of ours to parse (an RSA-4096 one is under 1 kB).
const SIGNATURE_LENGTH_MAX = 8192;

/** Where an app's registered signing keys are: Apps (src/apps/service.ts) is one. */
export interface AppSigningKeys {
  find(clientId: string): Promise<
    | {
        readonly jwks: { keys: Record<string, unknown>[] } | null;
        readonly jwksUri: string | null;
      }
    | undefined
  >;
}

type KeySet = FlattenedVerifyGetKey;

/**
 * Verifies the detached JWS in `x-jws-signature` over a request's body (RFC 7515 Appendix F) the way the
 * Read/Write API profile's "Message Signing" asks: a protected header with `alg` (PS256, or ES256), the `kid`
 * of a key in the calling app's registered JWKS, and the critical claims `http://openbanking.org.uk/iat`
 * (not in the future), `/iss` (the app: its client id, the bank's software statement id) and `/tan` (the
 * bank's trust anchor). Anything else is a 400 in the codes of OBInternalErrorResponseError1Code, before the
 * handler runs, so nothing is created: U019 Missing, U018 Malformed, U017 MissingClaim, U016 InvalidClaim,
 * U015 Invalid.
 *
 * Installs in `scope` a JSON parser that keeps the body's text (the signature covers its exact bytes) and
 * returns the check, to give a route as `preValidation` after its gateway step (it needs the caller's app).
 */
export function requestSignatureCheck(
  scope: App,
  options: { apps: AppSigningKeys; trustAnchor: string; mode: Mode; now?: () => Date },
): (request: FastifyRequest) => Promise<void> {
  registerJsonParser(scope, { keepText: true });
  const now = options.now ?? (() => new Date());
  const remote = new Map<string, KeySet>();
  const fetchOutbound = outboundFetch(options.mode);
  const keysOf = async (clientId: string): Promise<KeySet | undefined> => {
    const app = await options.apps.find(clientId);
    if (app?.jwks && app.jwks.keys.length > 0) return createLocalJWKSet(app.jwks as JSONWebKeySet);
    if (!app?.jwksUri) return undefined;
    let keys = remote.get(app.jwksUri);
    if (!keys) {
      if (remote.size >= REMOTE_JWKS_CACHED_MAX) remote.clear();
      keys = createRemoteJWKSet(new URL(app.jwksUri), {
        timeoutDuration: JWKS_FETCH_TIMEOUT_MS,
        [customFetch]: fetchOutbound,
      });
      remote.set(app.jwksUri, keys);
    }
    return keys;
  };
  return async (request) => {
    const clientId = accessOf(request).clientId;
    // No JSON body at all (no content type) is an empty payload: signed or not, the schema refuses it next.
    const text = request.jsonText ?? '';
    const signature = signatureParts(request.headers['x-jws-signature']);
    const header = claimsChecked(signature.header, {
      clientId,
      trustAnchor: options.trustAnchor,
      nowS: Math.floor(now().getTime() / 1000),
    });
    const keys = await keysOf(clientId);
    if (!keys) {
      throw signatureError(
        OB_ERROR_CODES.signatureInvalidClaim,
        'the app registered no signing keys (jwks or jwksUri) to verify this kid with',
        'kid',
      );
    }
    try {
      await flattenedVerify(
        {
          protected: signature.protected,
          payload: Buffer.from(text).toString('base64url'),
          signature: signature.signature,
        },
        keys,
        { algorithms: REQUEST_ALGORITHMS, crit: Object.fromEntries(OB_CRIT.map((name) => [name, true])) },
      );
    } catch (error) {
      throw verificationError(error, header.kid as string);
    }
  };
}

const signatureError = (code: ObErrorCode, message: string, path?: string) =>
  ObError.of(400, code, `x-jws-signature: ${message}`, path);

/** The detached JWS's three parts (the middle, the payload, empty) and its decoded protected header. */
function signatureParts(given: string | string[] | undefined) {
  if (given === undefined || given === '') {
    throw signatureError(OB_ERROR_CODES.signatureMissing, 'is required on this request', 'x-jws-signature');
  }
  const parts = typeof given === 'string' && given.length <= SIGNATURE_LENGTH_MAX ? given.split('.') : [];
  const [protectedPart, payload, signature] = parts;
  if (parts.length !== 3 || payload !== '' || !protectedPart || !signature) {
    throw signatureError(
      OB_ERROR_CODES.signatureMalformed,
      'must be a detached JWS: header..signature (RFC 7515 Appendix F)',
      'x-jws-signature',
    );
  }
  let header: JWSHeaderParameters;
  try {
    header = decodeProtectedHeader({ protected: protectedPart, payload: '', signature });
  } catch {
    throw signatureError(
      OB_ERROR_CODES.signatureMalformed,
      'its protected header is not base64url JSON',
      'x-jws-signature',
    );
  }
  return { protected: protectedPart, signature, header };
}

/** The profile's claims, present (U017) and right (U016), in the order a signer would fix them. */
function claimsChecked(
  header: JWSHeaderParameters,
  expected: { clientId: string; trustAnchor: string; nowS: number },
): JWSHeaderParameters {
  for (const name of ['alg', 'kid', 'crit', OB_IAT, OB_ISS, OB_TAN]) {
    if (header[name] === undefined) {
      throw signatureError(OB_ERROR_CODES.signatureMissingClaim, `the header has no ${name}`, name);
    }
  }
  const invalid = (name: string, message: string) =>
    signatureError(OB_ERROR_CODES.signatureInvalidClaim, message, name);
  if (typeof header.alg !== 'string' || !REQUEST_ALGORITHMS.includes(header.alg)) {
    throw invalid('alg', `alg must be ${REQUEST_ALGORITHMS.join(' or ')}`);
  }
  if (typeof header.kid !== 'string' || header.kid === '') throw invalid('kid', 'kid must be a string');
  // Since version 3.1.4 of the profile the payload is base64url-encoded as RFC 7515 has it: no b64 claim.
  if (header.b64 !== undefined) throw invalid('b64', 'b64 is not used by this profile');
  if (header.typ !== undefined && header.typ !== 'JOSE') throw invalid('typ', 'typ, when given, is JOSE');
  const crit = header.crit;
  if (
    !Array.isArray(crit) ||
    crit.length !== OB_CRIT.length ||
    !OB_CRIT.every((name) => crit.includes(name))
  ) {
    throw invalid('crit', `crit must name exactly ${OB_CRIT.join(', ')}`);
  }
  const iat = header[OB_IAT];
  if (typeof iat !== 'number' || !Number.isInteger(iat) || iat > expected.nowS + IAT_CLOCK_SKEW_S) {
    throw invalid(OB_IAT, `${OB_IAT} must be a time in seconds, not in the future`);
  }
  if (header[OB_ISS] !== expected.clientId) {
    throw invalid(OB_ISS, `${OB_ISS} must be the app's client id, the one the access token was issued to`);
  }
  if (header[OB_TAN] !== expected.trustAnchor) {
    throw invalid(OB_TAN, `${OB_TAN} must be ${expected.trustAnchor}`);
  }
  return header;
}

/** jose's refusals in the profile's codes: no key for the kid is a bad claim; a bad signature is invalid. */
function verificationError(error: unknown, kid: string): ObError {
  if (error instanceof errors.JWKSNoMatchingKey) {
    return signatureError(
      OB_ERROR_CODES.signatureInvalidClaim,
      `no key of the app's registered JWKS matches kid ${kid} for this alg`,
      'kid',
    );
  }
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) {
    return signatureError(
      OB_ERROR_CODES.signatureInvalidClaim,
      "the app's jwksUri gave no usable key set",
      'kid',
    );
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return signatureError(OB_ERROR_CODES.signatureInvalidClaim, 'alg is not allowed', 'alg');
  }
  if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWSInvalid) {
    return signatureError(
      OB_ERROR_CODES.signatureInvalid,
      'does not verify over this body with the key of this kid',
      'x-jws-signature',
    );
  }
  // A jwksUri that cannot be fetched at all (refused, not JSON): the app's keys cannot be read.
  if (error instanceof Error && !(error instanceof errors.JOSEError)) {
    return signatureError(OB_ERROR_CODES.signatureInvalidClaim, "the app's jwksUri could not be read", 'kid');
  }
  return signatureError(OB_ERROR_CODES.signatureInvalid, 'could not be verified', 'x-jws-signature');
}
