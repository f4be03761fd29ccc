// Sandbox seeding benchmark: `node bench/sandbox.ts` (BENCH_CUSTOMERS=1000 by default).
//
// Runs `apibank sandbox seed --customers N` as an operator would, on PostgreSQL when one answers (the
// target: 1,000 customers with a year of history in under a minute) and on the embedded PGlite with a
// tenth of the customers, then `apibank ledger verify` on what it wrote.
import { machine, onPglite, onPostgres, printTable, spawnCli } from './support.ts';

const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 1000);
const TARGET_SECONDS = 60;

async function cli(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; lines: string[] }> {
  const { child, lines } = spawnCli(args, { ...process.env, LOG_LEVEL: 'warn', ...env });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, lines };
}

async function seedAndVerify(env: Readonly<Record<string, string>>, customers: number): Promise<string[]> {
  const seeded = await cli(['sandbox', 'seed', '--customers', String(customers), '--seed', '1'], env);
  const summary = seeded.lines.find((line) => line.startsWith('seeded')) ?? seeded.lines.join(' | ');
  const seconds = Number(/ in ([\d.]+) s/.exec(summary)?.[1] ?? Number.NaN);
  const verify = await cli(['ledger', 'verify'], env);
  if (seeded.code !== 0 || verify.code !== 0) process.exitCode = 1;
  return [
    String(customers),
    summary.replace(/^seeded /, ''),
    Number.isNaN(seconds) ? 'failed' : `${seconds.toFixed(1)} s`,
    verify.code === 0 ? 'passes' : `FAILED: ${verify.lines.at(-1)}`,
  ];
}

console.log(`sandbox seeding: ${await machine()}`);
const rows: string[][] = [];
const postgres = await onPostgres('bench_sandbox', 'apibank-bench-sandbox-', (database) =>
  seedAndVerify(database.env, CUSTOMERS),
);
if (postgres) rows.push(['PostgreSQL', ...postgres]);
rows.push([
  'PGlite',
  ...(await onPglite('apibank-bench-sandbox-', (database) =>
    seedAndVerify(database.env, Math.max(1, Math.round(CUSTOMERS / 10))),
  )),
]);
printTable(['database', 'customers', 'what', 'time', 'ledger verify'], rows);
console.log(
  `target: ${CUSTOMERS} customers with a year of history in under ${TARGET_SECONDS} s on PostgreSQL`,
);
