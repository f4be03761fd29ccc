import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { POSTGRES_URL } from '../testing/databases.ts';
import { openDb } from './db.ts';

describe('transactions on postgres', { skip: POSTGRES_URL ? false : 'TEST_DATABASE_URL is not set' }, () => {
  it('runs a transaction that lost a deadlock again, to its end, and each counts once', async () => {
    const schema = `deadlock_${process.pid}_${Date.now()}`;
    const db = await openDb({ url: POSTGRES_URL as string, schema, poolMax: 4 });
    try {
      await db.script(
        'create table counters (id int primary key, n int not null); insert into counters values (1, 0), (2, 0)',
      );
      // Two transactions take the same two row locks in opposite orders, each holding its first until the
      // other has its own: PostgreSQL ends one of them with a deadlock (40P01), which must be run again.
      const attempts = { up: 0, down: 0 };
      const holding = new Set<string>();
      let bothHold!: () => void;
      const bothHolding = new Promise<void>((resolve) => {
        bothHold = resolve;
      });
      const count = (name: 'up' | 'down', first: number, second: number) =>
        db.transaction(async (tx) => {
          attempts[name]++;
          await tx.query('update counters set n = n + 1 where id = $1', [first]);
          if (attempts[name] === 1) {
            holding.add(name);
            if (holding.size === 2) bothHold();
            await bothHolding;
          }
          await tx.query('update counters set n = n + 1 where id = $1', [second]);
        });
      await Promise.all([count('up', 1, 2), count('down', 2, 1)]);
      assert.equal(attempts.up + attempts.down, 3, 'one of the two ran again');
      assert.deepEqual(
        (await db.query<{ n: number }>('select n from counters order by id')).map((row) => row.n),
        [2, 2],
      );
    } finally {
      await db.query(`drop schema "${schema}" cascade`);
      await db.close();
    }
  });
});
