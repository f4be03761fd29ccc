import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';

import { type BankIdentity, bankIdentityProblem } from './accounts/iban.ts';
import { DEFAULT_SCREENING_LISTS, type ListSetting, parseListsSetting } from './kyc/screening.ts';
import { currencyExponent } from './money.ts';

export type Mode = 'sandbox' | 'production';

export const DEFAULT_BANK: BankIdentity = {
  name: 'apibank Sandbox Bank',
  country: 'GB',
  bankCode: 'APIB400000',
};
export const DEFAULT_CURRENCIES = ['EUR', 'GBP', 'USD'] as const;

export interface Config {
  readonly mode: Mode;
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  /** Unset: the embedded PGlite database under `dataDir`. */
  readonly databaseUrl: string | undefined;
  readonly databasePoolMax: number;
  /** Unset outside production: generated into `dataDir` by `resolveAdminToken`. */
  readonly adminToken: string | undefined;
  /** The bearer token Prometheus sends to `/metrics`; required in production, unset: `/metrics` is open. */
  readonly metricsToken: string | undefined;
  readonly logLevel: string;
  readonly shutdownTimeoutMs: number;
  /** The origin clients reach the bank at; the OAuth issuer. Default: http://HOST:PORT. */
  readonly publicUrl: string;
  /** JSON file with the authorization server's signing keys and cookie keys; generated in the sandbox. */
  readonly oauthKeysFile: string;
  /** JSON file with the master keys that wrap personal-data encryption keys; generated in the sandbox. */
  readonly piiKeysFile: string;
  /** Who the bank is: its name on statements, and the country and bank code its IBANs carry. */
  readonly bank: BankIdentity;
  /** ISO 4217 currencies customers may open accounts in. */
  readonly currencies: readonly string[];
  /** Sanctions and PEP lists account opening screens against (APIBANK_SCREENING_LISTS). */
  readonly screeningLists: readonly ListSetting[];
  /** Shared rate-limit counters; unset: in memory, per process. */
  readonly redisUrl: string | undefined;
  /** What the gateway does when Redis cannot be reached: let calls through, or refuse them (503). */
  readonly rateLimitOnRedisFailure: 'open' | 'closed';
  /** Browser origins allowed to call the API (CORS); empty: none. */
  readonly corsOrigins: readonly string[];
  /** Proxies (addresses or CIDR ranges) whose X-Forwarded-For names the caller; none by default. */
  readonly trustedProxies: readonly string[];
  /** FX mid rates (APIBANK_FX_RATES): `sandbox` (the shipped, invented rates) or a rates file's path. */
  readonly fxRates: string;
  /** UK Open Banking trust anchor (APIBANK_OB_TRUST_ANCHOR): the `tan` of request and response signatures. */
  readonly obTrustAnchor: string;
}

/** Every wrong setting at once, so an operator fixes them in one pass rather than one restart each. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const BEARER_TOKEN_MIN_LENGTH = 32;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const problems: string[] = [];
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return value;
  };

  const modeRaw = env.APIBANK_MODE ?? 'sandbox';
  if (modeRaw !== 'sandbox' && modeRaw !== 'production') {
    problems.push(`APIBANK_MODE must be "sandbox" or "production", got "${modeRaw}"`);
  }
  const mode: Mode = modeRaw === 'production' ? 'production' : 'sandbox';

  const host = env.HOST || '127.0.0.1';
  if (host !== 'localhost' && isIP(host) === 0) {
    problems.push(`HOST must be an IP address or "localhost", got "${host}"`);
  }

  const databaseUrl = env.DATABASE_URL || undefined;
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    // Never echo the URL: it may carry a password.
    problems.push('DATABASE_URL must be a postgres:// or postgresql:// URL');
  }

  /** A bearer token setting: at least BEARER_TOKEN_MIN_LENGTH characters, and required in production. */
  const bearerToken = (name: string, whyRequired = '') => {
    const token = env[name] || undefined;
    if (token !== undefined && token.length < BEARER_TOKEN_MIN_LENGTH) {
      problems.push(`${name} must be at least ${BEARER_TOKEN_MIN_LENGTH} characters`);
    }
    if (mode === 'production' && token === undefined) {
      problems.push(`${name} is required when APIBANK_MODE=production${whyRequired}`);
    }
    return token;
  };
  const adminToken = bearerToken('APIBANK_ADMIN_TOKEN');
  const metricsToken = bearerToken('APIBANK_METRICS_TOKEN', ' (metrics name every app and its traffic)');
  if (mode === 'production' && databaseUrl === undefined) {
    problems.push(
      'DATABASE_URL is required when APIBANK_MODE=production (the embedded database is for sandboxes)',
    );
  }

  const logLevel = env.LOG_LEVEL || 'info';
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);

  const port = integer('PORT', 8080, 0, 65535);
  const publicUrl = (env.APIBANK_PUBLIC_URL || `http://${host}:${port}`).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/?#]+$/.test(publicUrl)) {
    problems.push(`APIBANK_PUBLIC_URL must be an origin such as https://bank.example, got "${publicUrl}"`);
  } else if (mode === 'production' && !publicUrl.startsWith('https://')) {
    problems.push('APIBANK_PUBLIC_URL must be https in production (FAPI 2.0 requires TLS)');
  }
  if (mode === 'production' && !env.APIBANK_PII_KEYS_FILE) {
    problems.push(
      'APIBANK_PII_KEYS_FILE is required when APIBANK_MODE=production (see README: personal data encryption)',
    );
  }
  const bank: BankIdentity = {
    name: env.APIBANK_BANK_NAME || DEFAULT_BANK.name,
    country: env.APIBANK_BANK_COUNTRY || DEFAULT_BANK.country,
    bankCode: env.APIBANK_BANK_CODE || DEFAULT_BANK.bankCode,
  };
  const ibanProblem = bankIdentityProblem(bank);
  if (ibanProblem) problems.push(`APIBANK_BANK_COUNTRY / APIBANK_BANK_CODE: ${ibanProblem}`);
  const currencies = (env.APIBANK_CURRENCIES || DEFAULT_CURRENCIES.join(',')).split(',').map((c) => c.trim());
  for (const currency of currencies) {
    if (currencyExponent(currency) === undefined)
      problems.push(`APIBANK_CURRENCIES: "${currency}" is not an ISO 4217 currency`);
  }
  let screeningLists: readonly ListSetting[] = DEFAULT_SCREENING_LISTS;
  try {
    if (env.APIBANK_SCREENING_LISTS) screeningLists = parseListsSetting(env.APIBANK_SCREENING_LISTS);
  } catch (error) {
    problems.push((error as Error).message);
  }
  if (mode === 'production' && !env.APIBANK_SCREENING_LISTS) {
    problems.push(
      'APIBANK_SCREENING_LISTS is required when APIBANK_MODE=production (the shipped lists are synthetic)',
    );
  }
  if (mode === 'production' && !env.APIBANK_OAUTH_KEYS_FILE) {
    problems.push(
      'APIBANK_OAUTH_KEYS_FILE is required when APIBANK_MODE=production (see README: generating OAuth keys)',
    );
  }
  const dataDir = resolve(env.APIBANK_DATA_DIR || './data');
  const redisUrl = env.REDIS_URL || undefined;
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl))
    problems.push('REDIS_URL must be a redis:// or rediss:// URL');
  const onRedisFailure = env.APIBANK_RATE_LIMIT_ON_REDIS_FAILURE || 'open';
  if (onRedisFailure !== 'open' && onRedisFailure !== 'closed') {
    problems.push(`APIBANK_RATE_LIMIT_ON_REDIS_FAILURE must be "open" or "closed", got "${onRedisFailure}"`);
  }

  if (env.APIBANK_OB_TRUST_ANCHOR && !/^[a-z0-9.-]{1,253}$/i.test(env.APIBANK_OB_TRUST_ANCHOR)) {
    problems.push('APIBANK_OB_TRUST_ANCHOR must be a domain name such as openbanking.org.uk');
  }
  const corsOrigins = (env.APIBANK_CORS_ORIGINS ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  for (const origin of corsOrigins) {
    if (!/^https?:\/\/[^/?#]+$/.test(origin))
      problems.push(`APIBANK_CORS_ORIGINS: "${origin}" is not an origin such as https://app.example`);
  }

  const trustedProxies = (env.APIBANK_TRUSTED_PROXIES ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  for (const entry of trustedProxies) {
    const [address = '', prefix, extra] = entry.split('/');
    const family = isIP(address);
    const bits = family === 6 ? 128 : 32;
    if (
      family === 0 ||
      extra !== undefined ||
      (prefix !== undefined && !(/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits))
    ) {
      problems.push(`APIBANK_TRUSTED_PROXIES: "${entry}" is not an address or CIDR range such as 10.0.0.0/8`);
    }
  }

  const config: Config = {
    mode,
    port,
    host,
    dataDir,
    databaseUrl,
    databasePoolMax: integer('DATABASE_POOL_MAX', 10, 1, 200),
    adminToken,
    metricsToken,
    logLevel,
    shutdownTimeoutMs: integer('SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    publicUrl,
    oauthKeysFile: resolve(env.APIBANK_OAUTH_KEYS_FILE || join(dataDir, 'oauth-keys.json')),
    piiKeysFile: resolve(env.APIBANK_PII_KEYS_FILE || join(dataDir, 'pii-keys.json')),
    bank,
    currencies,
    screeningLists,
    redisUrl,
    rateLimitOnRedisFailure: onRedisFailure === 'closed' ? 'closed' : 'open',
    corsOrigins,
    trustedProxies,
    // Read and checked at start (fx/rate-source.ts loadRateSource), which refuses the sandbox's in production.
    fxRates:
      !env.APIBANK_FX_RATES || env.APIBANK_FX_RATES === 'sandbox' ? 'sandbox' : resolve(env.APIBANK_FX_RATES),
    // Open Banking's directory, whose members sign with `tan` openbanking.org.uk (Read/Write API profile).
    obTrustAnchor: env.APIBANK_OB_TRUST_ANCHOR || 'openbanking.org.uk',
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/**
 * The operator token: the configured one, or (outside production) one generated on first start and kept
 * in the data directory, readable by its owner only, so restarts keep the same token.
 */
export function resolveAdminToken(config: Config): { token: string; file?: string } {
  if (config.adminToken !== undefined) return { token: config.adminToken };
  if (config.mode === 'production') throw new ConfigError(['APIBANK_ADMIN_TOKEN is required in production']);
  const file = join(config.dataDir, 'admin-token');
  mkdirSync(config.dataDir, { recursive: true });
  try {
    const token = readFileSync(file, 'utf8').trim();
    if ((statSync(file).mode & 0o077) !== 0) {
      throw new ConfigError([`${file} must be readable by its owner only (chmod 600)`]);
    }
    if (token.length >= BEARER_TOKEN_MIN_LENGTH) return { token, file };
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const token = randomBytes(32).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return { token, file };
}
