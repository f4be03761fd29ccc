import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { Db } from './db.ts';

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);
// Arbitrary but fixed: every apibank process contends for this one advisory lock while migrating.
const MIGRATION_LOCK_KEY = 7_140_417_001;

export interface Migration {
  readonly version: string;
  readonly sql: string;
  readonly checksum: string;
}

export function listMigrations(): Migration[] {
  return readdirSync(MIGRATIONS_DIR)
    .filter((name) => /^\d{4}_[a-z0-9_]+\.sql$/.test(name))
    .sort()
    .map((name) => {
      const sql = readFileSync(new URL(name, MIGRATIONS_DIR), 'utf8');
      return {
        version: name.replace(/\.sql$/, ''),
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    });
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/**
 * Applies pending migrations in order, each once and inside its own transaction. A session-level
 * advisory lock makes a second process that starts at the same moment wait, then find nothing to do.
 * An applied migration whose file has since changed is refused: history is append-only.
 */
export async function migrate(db: Db): Promise<string[]> {
  const migrations = listMigrations();
  return db.session(async (session) => {
    await session.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await session.query(`create table if not exists schema_migrations (
        version text primary key,
        checksum text not null,
        applied_at timestamptz not null default now()
      )`);
      const applied = new Map(
        (
          await session.query<{ version: string; checksum: string }>(
            'select version, checksum from schema_migrations',
          )
        ).map((row) => [row.version, row.checksum]),
      );
      const done: string[] = [];
      for (const migration of migrations) {
        const checksum = applied.get(migration.version);
        if (checksum !== undefined) {
          if (checksum !== migration.checksum) {
            throw new MigrationError(`migration ${migration.version} was changed after it was applied`);
          }
          continue;
        }
        await session.query('begin');
        try {
          await session.script(migration.sql);
          await session.query('insert into schema_migrations (version, checksum) values ($1, $2)', [
            migration.version,
            migration.checksum,
          ]);
          await session.query('commit');
        } catch (error) {
          await session.query('rollback');
          throw error;
        }
        done.push(migration.version);
      }
      return done;
    } finally {
      await session.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  });
}

/** True when every migration this code knows has been applied (readiness). */
export async function isMigrated(db: Db): Promise<boolean> {
  const rows = await db
    .query<{ version: string }>(`select version from schema_migrations where version = $1`, [
      listMigrations().at(-1)?.version ?? '',
    ])
    .catch(() => []);
  return rows.length === 1;
}
