import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { POSTGRES_URL, testDatabases } from '../testing/databases.ts';
import { openDb } from './db.ts';
import { listMigrations, MigrationError, migrate } from './migrate.ts';

for (const database of testDatabases()) {
  describe(`migrations on ${database.name}`, () => {
    it('applies each migration once and refuses one changed after it was applied', async () => {
      const db = await database.open();
      try {
        assert.deepEqual(await migrate(db), []);
        const recorded = await db.query<{ version: string }>(
          'select version from schema_migrations order by version',
        );
        assert.deepEqual(
          recorded.map((r) => r.version),
          listMigrations().map((m) => m.version),
        );
        await db.query(`update schema_migrations set checksum = 'edited' where version = $1`, [
          recorded[0]?.version,
        ]);
        await assert.rejects(migrate(db), MigrationError);
      } finally {
        await db.close();
      }
    });
  });
}

describe('concurrent migration on postgres', {
  skip: POSTGRES_URL ? false : 'TEST_DATABASE_URL is not set',
}, () => {
  it('lets one of two processes apply the migrations and the other find nothing to do', async () => {
    const url = POSTGRES_URL as string;
    // Two pools on one fresh schema, as two server processes starting at the same moment.
    const schema = `migrate_${process.pid}_${Date.now()}`;
    const a = await openDb({ url, schema, poolMax: 2 });
    const b = await openDb({ url, schema, poolMax: 2 });
    try {
      const [fromA, fromB] = await Promise.all([migrate(a), migrate(b)]);
      assert.deepEqual(
        [...fromA, ...fromB].sort(),
        listMigrations()
          .map((m) => m.version)
          .sort(),
      );
      assert.ok(fromA.length === 0 || fromB.length === 0);
    } finally {
      await a.query(`drop schema "${schema}" cascade`);
      await a.close();
      await b.close();
    }
  });
});
