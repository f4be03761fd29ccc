// The server's secrets: the keys that sign tokens (ES256 and PS256, FAPI 2.0 §5.4), the keys that sign
// the authorization server's cookies, and the key that signs audit checkpoints. In production they come
// from a file the operator provisions; in the sandbox they are generated once into the data directory,
// readable by their owner only.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Mode } from '../config.ts';
import { ConfigError } from '../config.ts';

export interface OAuthKeys {
  /** Private JWKs, each with `kid`, `alg` and `use: "sig"`. The first ES256 key signs access tokens. */
  readonly signingKeys: readonly JWK[];
  readonly cookieKeys: readonly string[];
  /** Ed25519 private JWK that signs audit checkpoints. */
  readonly auditSigningKey: JWK;
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];

/** The public half of the signing keys, as published at the JWKS endpoint. */
export function publicJwks(keys: OAuthKeys): { keys: JWK[] } {
  return {
    keys: keys.signingKeys.map((key) =>
      Object.fromEntries(Object.entries(key).filter(([name]) => !PRIVATE_MEMBERS.includes(name))),
    ),
  };
}

export async function generateOAuthKeys(): Promise<OAuthKeys> {
  const signingKeys: JWK[] = [];
  for (const alg of ['ES256', 'PS256'] as const) {
    const { privateKey } = await generateKeyPair(alg, { extractable: true });
    const kid = `${alg.toLowerCase()}-${randomBytes(6).toString('hex')}`;
    signingKeys.push({ ...(await exportJWK(privateKey)), kid, alg, use: 'sig' });
  }
  const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const auditSigningKey = {
    ...(await exportJWK(privateKey)),
    kid: `audit-${randomBytes(6).toString('hex')}`,
    alg: 'EdDSA',
  };
  return { signingKeys, cookieKeys: [randomBytes(32).toString('base64url')], auditSigningKey };
}

export async function loadOAuthKeys(file: string, mode: Mode): Promise<OAuthKeys> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || mode === 'production') {
      throw new ConfigError([`cannot read the OAuth keys file ${file}: ${(error as Error).message}`]);
    }
    const keys = await generateOAuthKeys();
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600 });
    return keys;
  }
  let keys: OAuthKeys;
  try {
    keys = JSON.parse(text) as OAuthKeys;
  } catch (error) {
    throw new ConfigError([`the OAuth keys file ${file} is not JSON: ${(error as Error).message}`]);
  }
  if (!keys.auditSigningKey && mode === 'sandbox') {
    // A sandbox keys file from before audit checkpoints were signed: add the key, keep the rest.
    keys = { ...keys, auditSigningKey: (await generateOAuthKeys()).auditSigningKey };
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600 });
  }
  const es256 = keys.signingKeys?.some((key) => key.alg === 'ES256' && typeof key.d === 'string');
  if (
    !es256 ||
    !Array.isArray(keys.cookieKeys) ||
    keys.cookieKeys.length === 0 ||
    keys.auditSigningKey?.crv !== 'Ed25519'
  ) {
    throw new ConfigError([
      `${file} must hold signingKeys (with a private ES256 key), cookieKeys and an Ed25519 auditSigningKey`,
    ]);
  }
  return keys;
}
