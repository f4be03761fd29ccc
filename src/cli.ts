// `apibank <command>`: the one entry point for operators. bin/apibank.js starts this on Node 24.
import { readFileSync, writeFileSync } from 'node:fs';
import { AuditLog } from './audit/service.ts';
import { type Config, ConfigError, loadConfig, resolveAdminToken } from './config.ts';
import type { Db } from './db/db.ts';
import { migrate } from './db/migrate.ts';
import { Ledger } from './ledger/service.ts';
import { buildApp, createLogger, openConfiguredDb, serve } from './main.ts';
import { generateOAuthKeys, loadOAuthKeys } from './oauth/keys.ts';
import type { Onboarding } from './onboarding/service.ts';
import { loadMasterKeys, newMasterKeysFile } from './pii/master-keys.ts';
import { Pii } from './pii/pii.ts';
import { SANDBOX_CUSTOMERS_MAX } from './sandbox/generate.ts';
import { GENERATED_CUSTOMER_PASSWORD, seedGenerated } from './sandbox/seed.ts';

const USAGE = `usage: apibank <command>

commands:
  serve           start the HTTP server (migrates first)
  migrate         apply pending database migrations and exit
  ledger verify   recompute every balance from the entries and every currency's totals;
                  exits 1 on any difference
  audit verify [FILE]
                  recompute the audit hash chain and check its signed checkpoints, and those in
                  FILE (the server's log, or any text holding them); exits 1 naming the first
                  broken record
  oauth generate-keys FILE
                  write new authorization-server signing and cookie keys to FILE (mode 0600),
                  for APIBANK_OAUTH_KEYS_FILE
  keys generate FILE
                  write a new personal-data master key file to FILE (mode 0600), for
                  APIBANK_PII_KEYS_FILE; to rotate the master key, add a key to the file and make it
                  "active", then run keys rotate
  keys rotate     create a new personal-data encryption key, re-wrap every data key under the
                  active master key, and re-encrypt every personal field
  sandbox seed [--customers N] [--seed S]
                  add N generated customers (default 1000) with accounts and a year of history
                  ending today, deterministic for seed S (default 1); sandbox mode only; they all
                  sign in with password sandbox-password

configuration comes from the environment; see README.md.`;

// A compact JWS whose protected header is a JSON object (base64url of '{"'): an audit checkpoint in a log.
const COMPACT_JWS = /eyJ[\w-]*\.[\w-]+\.[\w-]+/g;

async function main(args: readonly string[]): Promise<number> {
  const command = args.join(' ');
  if (command === '' || command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return command === '' ? 2 : 0;
  }
  if (args[0] === 'oauth' && args[1] === 'generate-keys' && args.length === 3) {
    // Needs no configuration: an operator runs it before the first production start.
    const file = args[2] as string;
    try {
      writeFileSync(file, `${JSON.stringify(await generateOAuthKeys(), null, 2)}\n`, {
        mode: 0o600,
        flag: 'wx',
      });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      console.error(
        `${file} exists; keys are never overwritten (tokens signed with them would stop verifying)`,
      );
      return 1;
    }
    console.log(`wrote ${file}; set APIBANK_OAUTH_KEYS_FILE=${file}`);
    return 0;
  }
  if (args[0] === 'keys' && args[1] === 'generate' && args.length === 3) {
    const file = args[2] as string;
    try {
      writeFileSync(file, newMasterKeysFile(), { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      console.error(`${file} exists; master keys are never overwritten (the data they wrap would be lost)`);
      return 1;
    }
    console.log(`wrote ${file}; set APIBANK_PII_KEYS_FILE=${file}`);
    return 0;
  }
  const config = loadConfig(process.env);
  const logger = createLogger(config);
  if (args[0] === 'sandbox' && args[1] === 'seed') {
    const options = parseSeedOptions(args.slice(2));
    if (typeof options === 'string') {
      console.error(`${options}\n\n${USAGE}`);
      return 2;
    }
    if (config.mode !== 'sandbox') {
      console.error('sandbox seed writes generated customers: it runs only with APIBANK_MODE=sandbox');
      return 2;
    }
    return withServices(config, async ({ db, onboarding }) => {
      const to = new Date();
      const from = new Date(Date.UTC(to.getUTCFullYear() - 1, to.getUTCMonth(), to.getUTCDate()));
      const started = performance.now();
      const report = await seedGenerated(db, onboarding, { ...options, from, to });
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      console.log(
        `seeded ${report.customers} customers, ${report.accounts} accounts, ${report.transfers} transfers in ${seconds} s ` +
          `(customers ${report.customersSeconds.toFixed(1)} s, transfers ${report.transfersSeconds.toFixed(1)} s)`,
      );
      console.log(
        `sign in as any of them with password ${GENERATED_CUSTOMER_PASSWORD} and code 123456, e.g. ${report.sampleUsernames.join(', ')}`,
      );
      return 0;
    });
  }
  // `audit verify FILE`: checkpoints kept outside the database, found anywhere in FILE's text.
  const keptFile = args[0] === 'audit' && args[1] === 'verify' && args.length === 3 ? args[2] : undefined;
  switch (keptFile === undefined ? command : 'audit verify') {
    case 'serve':
      await serve(config, logger);
      return -1; // keep running until a signal
    case 'migrate': {
      const db = await openConfiguredDb(config);
      try {
        const applied = await migrate(db);
        console.log(applied.length ? `applied ${applied.join(', ')}` : 'nothing to apply');
      } finally {
        await db.close();
      }
      return 0;
    }
    case 'ledger verify': {
      const db = await openConfiguredDb(config);
      try {
        await migrate(db);
        return printVerification(await new Ledger({ db }).verify());
      } finally {
        await db.close();
      }
    }
    case 'audit verify': {
      const db = await openConfiguredDb(config);
      try {
        await migrate(db);
        const keys = await loadOAuthKeys(config.oauthKeysFile, config.mode);
        const kept = keptFile === undefined ? [] : (readFileSync(keptFile, 'utf8').match(COMPACT_JWS) ?? []);
        const report = await new AuditLog({ db, signingKey: keys.auditSigningKey }).verify(kept);
        console.log(
          report.ok
            ? `audit chain verified: ${report.records} records, ${report.checkpoints} signed checkpoints`
            : `audit chain BROKEN at record ${report.firstBroken?.seq}: ${report.firstBroken?.reason} (${report.records} records verified before it)`,
        );
        return report.ok ? 0 : 1;
      } finally {
        await db.close();
      }
    }
    case 'keys rotate': {
      const db = await openConfiguredDb(config);
      try {
        await migrate(db);
        const pii = await Pii.open(db, loadMasterKeys(config.piiKeysFile, config.mode));
        const report = await pii.rotate();
        console.log(
          `new encryption key ${report.newKeyId}; ${report.rewrappedKeys} data keys re-wrapped, ${report.reencryptedFields} fields re-encrypted`,
        );
        return 0;
      } finally {
        await db.close();
      }
    }
    default:
      console.error(`unknown command: ${command}\n\n${USAGE}`);
      return 2;
  }
}

function parseSeedOptions(args: readonly string[]): { customers: number; seed: number } | string {
  const options = { customers: 1000, seed: 1 };
  for (let i = 0; i < args.length; i += 2) {
    const [name, value] = [args[i], args[i + 1]];
    const number = Number(value);
    if ((name !== '--customers' && name !== '--seed') || !Number.isSafeInteger(number) || number < 0) {
      return `sandbox seed: expected --customers N and --seed S (whole numbers), got "${args.join(' ')}"`;
    }
    if (name === '--customers' && (number < 1 || number > SANDBOX_CUSTOMERS_MAX)) {
      return `sandbox seed: --customers must be 1 to ${SANDBOX_CUSTOMERS_MAX}`;
    }
    options[name === '--customers' ? 'customers' : 'seed'] = number;
  }
  return options;
}

/** Opens the configured database with the bank's services (no HTTP server), runs `work`, and closes. */
async function withServices(
  config: Config,
  work: (services: { db: Db; onboarding: Onboarding }) => Promise<number>,
): Promise<number> {
  const db = await openConfiguredDb(config);
  try {
    await migrate(db);
    const built = buildApp({
      db,
      adminToken: resolveAdminToken(config).token,
      mode: config.mode,
      oauth: { issuer: config.publicUrl, keys: await loadOAuthKeys(config.oauthKeysFile, config.mode) },
      pii: await Pii.open(db, loadMasterKeys(config.piiKeysFile, config.mode)),
      bank: config.bank,
      currencies: config.currencies,
    });
    if (!built.onboarding) throw new Error('buildApp with oauth builds onboarding');
    return await work({ db, onboarding: built.onboarding });
  } finally {
    await db.close();
  }
}

function printVerification(report: Awaited<ReturnType<Ledger['verify']>>): number {
  for (const c of report.currencies) {
    const balanced = c.debitsPosted === c.creditsPosted && c.debitsPending === c.creditsPending;
    console.log(
      `${c.currency}: ${c.accounts} accounts, posted debits ${c.debitsPosted} = credits ${c.creditsPosted}, ` +
        `pending debits ${c.debitsPending} = credits ${c.creditsPending} (minor units) ${balanced ? 'ok' : 'UNBALANCED'}`,
    );
  }
  for (const d of report.discrepancies) {
    console.log(`account ${d.accountId}: ${d.field} stored ${d.stored}, recomputed ${d.recomputed}`);
  }
  for (const id of report.unbalancedTransfers) console.log(`transfer ${id}: entries do not sum to zero`);
  const accounts = report.currencies.reduce((sum, c) => sum + c.accounts, 0);
  console.log(
    report.ok
      ? `ledger verified: ${accounts} accounts in ${report.currencies.length} currencies, balances match entries`
      : 'ledger verification FAILED',
  );
  return report.ok ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exitCode = 2;
      return;
    }
    console.error(error);
    process.exitCode = 1;
  },
);
