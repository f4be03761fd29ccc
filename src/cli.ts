// `apibank <command>`: the one entry point for operators. bin/apibank.js starts this on Node 24.
import { writeFileSync } from 'node:fs';
import { AuditLog } from './audit/service.ts';
import { ConfigError, loadConfig } from './config.ts';
import { migrate } from './db/migrate.ts';
import { Ledger } from './ledger/service.ts';
import { createLogger, openConfiguredDb, serve } from './main.ts';
import { generateOAuthKeys, loadOAuthKeys } from './oauth/keys.ts';

const USAGE = `usage: apibank <command>

commands:
  serve           start the HTTP server (migrates first)
  migrate         apply pending database migrations and exit
  ledger verify   recompute every balance from the entries and every currency's totals;
                  exits 1 on any difference
  audit verify    recompute the audit hash chain and check its signed checkpoints;
                  exits 1 naming the first broken record
  oauth generate-keys FILE
                  write new authorization-server signing and cookie keys to FILE (mode 0600),
                  for APIBANK_OAUTH_KEYS_FILE

configuration comes from the environment; see README.md.`;

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
  const config = loadConfig(process.env);
  const logger = createLogger(config);
  switch (command) {
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
        const report = await new AuditLog({ db, signingKey: keys.auditSigningKey }).verify();
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
    default:
      console.error(`unknown command: ${command}\n\n${USAGE}`);
      return 2;
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
