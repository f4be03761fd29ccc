// The bank's signatures in the Open Banking profile, shared by the facades: detached JWS over response
// bodies (Payment Initiation, Events) and signed event notifications (Events API, aggregated polling).
// One key, the bank's published token-signing key, so a third party verifies both with the bank's JWKS.
import { CompactSign, importJWK, type JWK } from 'jose';

const OB_CRIT = [
  'http://openbanking.org.uk/iat',
  'http://openbanking.org.uk/iss',
  'http://openbanking.org.uk/tan',
];

function keyOf(jwk: JWK): { alg: string; key: ReturnType<typeof importJWK> } {
  const alg = jwk.alg ?? 'ES256';
  return { alg, key: importJWK(jwk, alg) };
}

/**
 * Detached JWS over a response body (RFC 7515 Appendix F), with the claims the Open Banking profile makes
 * critical: when it was signed, by whom, and the trust anchor. Verifiable with the bank's JWKS.
 */
export function responseSigner(jwk: JWK, issuer: string): (body: string) => Promise<string> {
  const { alg, key } = keyOf(jwk);
  return async (body) => {
    const jws = await new CompactSign(new TextEncoder().encode(body))
      .setProtectedHeader({
        alg,
        ...(jwk.kid && { kid: jwk.kid }),
        typ: 'JOSE',
        cty: 'application/json',
        'http://openbanking.org.uk/iat': Math.floor(Date.now() / 1000),
        'http://openbanking.org.uk/iss': issuer,
        'http://openbanking.org.uk/tan': 'openbanking.org.uk',
        crit: OB_CRIT,
      })
      .sign(await key, { crit: Object.fromEntries(OB_CRIT.map((name) => [name, true])) });
    const [header, , signature] = jws.split('.');
    return `${header}..${signature}`;
  };
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
