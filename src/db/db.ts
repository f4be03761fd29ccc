import { mkdirSync } from 'node:fs';
import { PGlite, types } from '@electric-sql/pglite';
import postgres from 'postgres';

/**
 * What stores see: parameterised SQL, `int8` as `bigint`, `jsonb` parsed, `timestamptz` as `Date`. JSON goes in
 * as a string cast with `$n::text::jsonb`: the two drivers serialise a JS value for a json parameter differently.
 */
export interface Sql {
  query<Row = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Several statements without parameters (migration files). */
  script(text: string): Promise<void>;
}

export interface PoolStats {
  readonly max: number;
  readonly busy: number;
  readonly waiting: number;
}

export interface Db extends Sql {
  readonly kind: 'pglite' | 'postgres';
  // `query` on the Db itself runs one autocommit statement, retried (bounded) on deadlock or serialisation
  // failure: a statement that failed that way changed nothing, so running it again is safe.
  /** Runs `work` in one transaction, retried (bounded) on deadlock or serialisation failure. */
  transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T>;
  /** A dedicated session for session-level state such as advisory locks. */
  session<T>(work: (session: Sql) => Promise<T>): Promise<T>;
  poolStats(): PoolStats;
  close(): Promise<void>;
}

export interface DbOptions {
  /** postgres:// URL; unset = embedded PGlite. */
  readonly url?: string;
  /** PGlite data directory; unset = in memory. */
  readonly dataDir?: string;
  readonly poolMax?: number;
  /** Schema to work in (tests give each file its own on a shared server). */
  readonly schema?: string;
}

// SQLSTATEs that mean "the same transaction may succeed if run again" (PostgreSQL Appendix A).
const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']);
const TRANSACTION_ATTEMPTS_MAX = 8;

export function isRetryable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && RETRYABLE_SQLSTATES.has(code);
}

async function withRetries<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      if (!isRetryable(error) || attempt >= TRANSACTION_ATTEMPTS_MAX) throw error;
      // Jittered backoff so two colliding transactions do not collide again in lockstep.
      await new Promise((done) => setTimeout(done, Math.random() * 2 ** attempt));
    }
  }
}

export async function openDb(options: DbOptions): Promise<Db> {
  return options.url ? openPostgres(options.url, options) : openPglite(options);
}

async function openPglite(options: DbOptions): Promise<Db> {
  if (options.dataDir) mkdirSync(options.dataDir, { recursive: true });
  const pg = await PGlite.create({
    dataDir: options.dataDir,
    // Same types as the postgres driver gives: int8 as bigint (money), numeric as an exact string.
    parsers: { [types.INT8]: (value: string) => BigInt(value), [types.NUMERIC]: (value: string) => value },
  });
  if (options.schema) {
    await pg.exec(
      `create schema if not exists ${quoteIdent(options.schema)}; set search_path to ${quoteIdent(options.schema)}`,
    );
  }
  // PGlite is one in-process connection: everything else queues behind the one running.
  const track = activityCounter();
  const sql: Sql = {
    async query<Row>(text: string, params: readonly unknown[] = []) {
      return (await pg.query<Row>(text, params as unknown[])).rows;
    },
    async script(text: string) {
      await pg.exec(text);
    },
  };
  return {
    kind: 'pglite',
    query: (text, params) => track(() => withRetries(() => sql.query(text, params))),
    script: (text) => track(() => sql.script(text)),
    transaction: (work) =>
      track(() =>
        withRetries(() =>
          pg.transaction((tx) =>
            work({
              query: async (text, params = []) => (await tx.query(text, params as unknown[])).rows as never,
              script: async (text) => void (await tx.exec(text)),
            }),
          ),
        ),
      ),
    session: (work) => track(() => work(sql)),
    poolStats: () => track.stats(1),
    close: () => pg.close(),
  };
}

async function openPostgres(url: string, options: DbOptions): Promise<Db> {
  const max = options.poolMax ?? 10;
  const client = postgres(url, {
    max,
    types: { bigint: postgres.BigInt },
    // numeric stays a string: exact, and never a float.
    connection: {
      application_name: 'apibank',
      ...(options.schema ? { search_path: options.schema } : {}),
    },
    onnotice: () => {},
  });
  if (options.schema) await client.unsafe(`create schema if not exists ${quoteIdent(options.schema)}`);
  const track = activityCounter();
  const wrap = (handle: { unsafe: postgres.Sql['unsafe'] }): Sql => ({
    async query<Row>(text: string, params: readonly unknown[] = []) {
      // Prepared: parsed and planned once per connection; every query text here is a constant.
      return (await handle.unsafe(text, params as postgres.ParameterOrJSON<never>[], {
        prepare: true,
      })) as unknown as Row[];
    },
    async script(text: string) {
      // Without parameters postgres.js uses the simple query protocol, which accepts several statements.
      await handle.unsafe(text);
    },
  });
  const sql = wrap(client);
  return {
    kind: 'postgres',
    query: (text, params) => track(() => withRetries(() => sql.query(text, params))),
    script: (text) => track(() => sql.script(text)),
    transaction: (work) =>
      track(() =>
        withRetries(async () => {
          // BEGIN is not awaited on its own: postgres.js writes the queries issued in one turn of the event
          // loop together, so BEGIN leaves with the transaction's first statements, one round trip fewer.
          // One connection runs them in order, and a failed BEGIN fails the statements behind it.
          const reserved = await client.reserve();
          try {
            const begun = reserved.unsafe('begin').execute();
            let result: Awaited<ReturnType<typeof work>>;
            try {
              result = await work(wrap(reserved));
              await begun;
            } catch (error) {
              await begun.catch(() => {});
              // A connection too broken to roll back is closed by postgres.js; the first error is the one to tell.
              await reserved.unsafe('rollback').catch(() => {});
              throw error;
            }
            await reserved.unsafe('commit');
            return result;
          } finally {
            reserved.release();
          }
        }),
      ),
    session: (work) =>
      track(async () => {
        const reserved = await client.reserve();
        try {
          return await work(wrap(reserved));
        } finally {
          reserved.release();
        }
      }),
    poolStats: () => track.stats(max),
    close: () => client.end({ timeout: 5 }),
  };
}

/** Counts operations in progress; those beyond the pool's size are waiting for a connection. */
function activityCounter() {
  let active = 0;
  const track = async <T>(work: () => Promise<T>): Promise<T> => {
    active++;
    try {
      return await work();
    } finally {
      active--;
    }
  };
  return Object.assign(track, {
    stats: (max: number): PoolStats => ({
      max,
      busy: Math.min(active, max),
      waiting: Math.max(0, active - max),
    }),
  });
}

/**
 * The least and the greatest UUID, for a page's cursor that may be absent: `id > coalesce($n, UUID_MIN)` is
 * an index condition in the plan a prepared statement keeps, where `($n is null or id > $n)` is not, and
 * every page would read all the rows before it.
 */
export const UUID_MIN = '00000000-0000-0000-0000-000000000000';
export const UUID_MAX = 'ffffffff-ffff-ffff-ffff-ffffffffffff';

export function quoteIdent(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain SQL identifier: ${name}`);
  return `"${name}"`;
}

/** A PostgreSQL array literal; sent as text and cast, which both drivers pass through unchanged. */
export function arrayLiteral(values: readonly (string | number | bigint | boolean | null)[]): string {
  const element = (value: string | number | bigint | boolean | null) =>
    value === null
      ? 'NULL'
      : typeof value === 'string'
        ? `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`
        : String(value);
  return `{${values.map(element).join(',')}}`;
}
