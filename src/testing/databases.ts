// Test support: every database test runs on embedded PGlite, and also on PostgreSQL when
// TEST_DATABASE_URL is set (as .ci/run does). Each test file gets its own PostgreSQL schema, so files
// running in parallel never see each other's rows.
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { type Db, openDb } from '../db/db.ts';
import { migrate } from '../db/migrate.ts';

export interface TestDatabase {
  readonly name: 'pglite' | 'postgres';
  /** A fresh, migrated database; `close` also drops what it created. */
  open(options?: { poolMax?: number; schema?: string }): Promise<TestDb>;
}

export interface TestDb extends Db {
  readonly schema: string | undefined;
}

export const POSTGRES_URL = process.env.TEST_DATABASE_URL || undefined;

export function testDatabases(): TestDatabase[] {
  const pglite: TestDatabase = {
    name: 'pglite',
    async open() {
      const db = await openDb({});
      await migrate(db);
      return Object.assign(db, { schema: undefined });
    },
  };
  return POSTGRES_URL ? [pglite, postgresDatabase(POSTGRES_URL)] : [pglite];
}

export function postgresDatabase(url: string): TestDatabase {
  return {
    name: 'postgres',
    async open(options = {}) {
      const schema = options.schema ?? `test_${randomBytes(6).toString('hex')}`;
      const db = await openDb({ url, schema, poolMax: options.poolMax ?? 8 });
      await migrate(db);
      const close = db.close;
      return Object.assign(db, {
        schema,
        async close() {
          await close();
          if (options.schema) return; // a shared schema is dropped by whoever created it
          const admin = postgres(url, { max: 1, onnotice: () => {} });
          await admin.unsafe(`drop schema if exists "${schema}" cascade`);
          await admin.end();
        },
      });
    },
  };
}
