// The authorization server's secrets: the keys that sign tokens (ES256 and PS256, FAPI 2.0 §5.4) and the
// keys that sign its cookies. In production they come from a file the operator provisions; in the
// sandbox they are generated once into the data directory, readable by their owner only.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Mode } from '../config.ts';
import { ConfigError } from '../config.ts';

export interface OAuthKeys {
  /** Private JWKs, each with `kid`, `alg` and `use: "sig"`. The first ES256 key signs access tokens. */
  readonly signingKeys: readonly JWK[];
  readonly cookieKeys: readonly string[];
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
  return { signingKeys, cookieKeys: [randomBytes(32).toString('base64url')] };
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
    writeFileSync(file, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600 });
    return keys;
  }
  const keys = JSON.parse(text) as OAuthKeys;
  const es256 = keys.signingKeys?.some((key) => key.alg === 'ES256' && typeof key.d === 'string');
  if (!es256 || !Array.isArray(keys.cookieKeys) || keys.cookieKeys.length === 0) {
    throw new ConfigError([`${file} must hold signingKeys (with a private ES256 key) and cookieKeys`]);
  }
  return keys;
}
