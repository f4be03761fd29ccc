import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { QueueFullError } from './batcher.ts';
import type { Sql } from './db.ts';
import { GroupCommit, GroupRead, type Jointly } from './group-commit.ts';

const txid = async (tx: Sql) =>
  String((await tx.query<{ id: string }>('select txid_current()::text as id'))[0]?.id);

for (const database of testDatabases()) {
  describe(`group commit (${database.name})`, () => {
    let db: TestDb;
    before(async () => {
      db = await database.open();
      await db.script(`create table group_rows (name text primary key, at_commit int,
                         constraint once_at_commit unique (at_commit) deferrable initially deferred)`);
    });
    after(() => db.close());

    const insert =
      (name: string, atCommit: number | null = null) =>
      async (tx: Sql) => {
        await tx.query('insert into group_rows (name, at_commit) values ($1, $2)', [name, atCommit]);
        return txid(tx);
      };
    const names = async (prefix: string) =>
      (
        await db.query<{ name: string }>('select name from group_rows where name like $1 order by name', [
          `${prefix}%`,
        ])
      ).map((row) => row.name);

    it('runs the works queued together in one transaction, and commits them all', async () => {
      const group = new GroupCommit(db);
      const ids = await Promise.all(['a1', 'a2', 'a3', 'a4'].map((name) => group.run(name, insert(name))));
      assert.equal(new Set(ids).size, 1, 'one transaction');
      assert.deepEqual(await names('a'), ['a1', 'a2', 'a3', 'a4']);
    });

    it('a work that fails fails alone: the others run again in their own transactions and commit', async () => {
      const group = new GroupCommit(db);
      const attempts = new Map<string, number>();
      const counted = (name: string, work: (tx: Sql) => Promise<string>) => (tx: Sql) => {
        attempts.set(name, (attempts.get(name) ?? 0) + 1);
        return work(tx);
      };
      const refused = new Error('refused by a rule');
      const outcomes = await Promise.allSettled([
        group.run('b1', counted('b1', insert('b1'))),
        group.run(
          'b2',
          counted('b2', async (tx) => {
            await insert('b2')(tx);
            throw refused;
          }),
        ),
        group.run('b3', counted('b3', insert('b3'))),
        // A statement that fails in the database aborts the shared transaction: its own failure all the same.
        group.run('b4', counted('b4', insert('a1'))),
      ]);
      assert.deepEqual(
        outcomes.map((outcome) => outcome.status),
        ['fulfilled', 'rejected', 'fulfilled', 'rejected'],
      );
      assert.equal((outcomes[1] as PromiseRejectedResult).reason, refused);
      assert.equal(((outcomes[3] as PromiseRejectedResult).reason as { code?: string }).code, '23505');
      const [first, , third] = outcomes as PromiseFulfilledResult<string>[];
      assert.notEqual(first?.value, third?.value, 'each in its own transaction');
      assert.deepEqual(await names('b'), ['b1', 'b3'], 'the refused work left nothing');
      assert.deepEqual(Object.fromEntries(attempts), { b1: 2, b2: 2, b3: 2, b4: 2 });
    });

    it('never runs two works with one key at once', async () => {
      const group = new GroupCommit(db);
      let running = 0;
      let overlapped = false;
      const work = (name: string) => async (tx: Sql) => {
        running++;
        if (running > 1) overlapped = true;
        try {
          return await insert(name)(tx);
        } finally {
          running--;
        }
      };
      const ids = await Promise.all(['c1', 'c2', 'c3'].map((name) => group.run('one customer', work(name))));
      assert.equal(new Set(ids).size, 3, 'three transactions');
      assert.equal(overlapped, false);
      assert.deepEqual(await names('c'), ['c1', 'c2', 'c3']);
    });

    it('a failed commit fails every work of the group, and none runs again', async () => {
      const group = new GroupCommit(db);
      let attempts = 0;
      const work = (name: string) => (tx: Sql) => {
        attempts++;
        return insert(name, 7)(tx); // both rows claim at_commit 7: checked only when the group commits
      };
      const outcomes = await Promise.allSettled([group.run('d1', work('d1')), group.run('d2', work('d2'))]);
      assert.deepEqual(
        outcomes.map((outcome) => outcome.status),
        ['rejected', 'rejected'],
      );
      assert.equal(attempts, 2, 'run once each: a commit that failed unseen might have gone through');
      assert.deepEqual(await names('d'), []);
    });

    describe('joint calls', () => {
      // A call that answers each item with its tenfold, in the transaction it is given, and records what it got.
      const recording = () => {
        const calls: { items: number[]; txid: string }[] = [];
        const call = async (tx: Sql, items: number[]) => {
          calls.push({ items: [...items], txid: await txid(tx) });
          return items.map((item) => item * 10);
        };
        return { calls, call };
      };

      it("go as one call once every running work waits on one, or has ended; each gets its item's result", async () => {
        const group = new GroupCommit(db);
        const { calls, call } = recording();
        const later = new Promise((done) => setTimeout(done, 30));
        const results = await Promise.all([
          group.run('f1', (_tx, jointly) => jointly(call, 1)),
          group.run('f2', async (tx, jointly) => {
            await insert('f2')(tx);
            return jointly(call, 2);
          }),
          group.run('f3', insert('f3')), // asks nothing: the call does not wait for it
          group.run('f4', async (_tx, jointly) => {
            await later; // still running when the others ask: the call waits for it
            return jointly(call, 4);
          }),
        ]);
        assert.deepEqual(
          calls.map((c) => c.items),
          [[1, 2, 4]],
        );
        const f3txid = results[2];
        assert.equal(calls[0]?.txid, f3txid, "in the group's transaction");
        assert.deepEqual([results[0], results[1], results[3]], [10, 20, 40]);
      });

      it('each call takes its own items', async () => {
        const group = new GroupCommit(db);
        const tens = recording();
        const others = recording();
        const results = await Promise.all([
          group.run('g1', (_tx, jointly) => jointly(tens.call, 1)),
          group.run('g2', (_tx, jointly) => jointly(others.call, 2)),
          group.run('g3', (_tx, jointly) => jointly(tens.call, 3)),
        ]);
        assert.deepEqual(results, [10, 20, 30]);
        assert.deepEqual(
          tens.calls.map((c) => c.items),
          [[1, 3]],
        );
        assert.deepEqual(
          others.calls.map((c) => c.items),
          [[2]],
        );
      });

      it('a work that skips a call waits for the others at the next, so each call is made once', async () => {
        // Payments: an app's consumes its consent first, a customer's has none; both then move money in one
        // ledger call, which must not split (two ledger calls in one transaction can deadlock another's).
        const group = new GroupCommit(db);
        const first = recording();
        const second = recording();
        const later = new Promise((done) => setTimeout(done, 30));
        const both = (item: number) => async (jointly: Jointly) => [
          await jointly(first.call, item),
          await jointly(second.call, item),
        ];
        const results = await Promise.all([
          group.run('j1', (_tx, jointly) => both(1)(jointly)),
          group.run('j2', async (tx, jointly) => {
            await insert('j2')(tx);
            return [await jointly(second.call, 2)]; // skips the first call
          }),
          group.run('j3', async (_tx, jointly) => {
            await later; // the first call waits for it; the skipping work waits at the second
            return both(3)(jointly);
          }),
        ]);
        assert.deepEqual(results, [[10, 10], [20], [30, 30]]);
        assert.deepEqual(
          first.calls.map((c) => c.items),
          [[1, 3]],
        );
        assert.deepEqual(
          second.calls.map((c) => c.items),
          [[2, 1, 3]],
        );
      });

      it('a work may wait on two calls at once', { timeout: 10_000 }, async () => {
        // A payment consumes its consent while it screens, and records the screening: two calls at once.
        const group = new GroupCommit(db);
        const first = recording();
        const second = recording();
        const results = await Promise.all([
          group.run('k1', (_tx, jointly) => Promise.all([jointly(first.call, 1), jointly(second.call, 1)])),
          group.run('k2', async (tx, jointly) => {
            await insert('k2')(tx);
            return [await jointly(second.call, 2)];
          }),
        ]);
        assert.deepEqual(results, [[10, 10], [20]]);
        assert.deepEqual(
          [first.calls.map((c) => c.items), second.calls.map((c) => c.items)],
          [[[1]], [[1, 2]]],
        );
      });

      it('a work may go on past a call it asked, to statements of its own and the next call: each made once, whole', async () => {
        // A payment's screening answers before its record is written, and the payment goes on to its ledger
        // call: neither the group's records nor its ledger call may be split.
        const group = new GroupCommit(db);
        const events: string[] = [];
        const logged = (name: string) => async (tx: Sql, items: number[]) => {
          events.push(`${name} ${items.join(',')} made`);
          await txid(tx);
          events.push(`${name} answered`);
          return items.map((item) => item * 10);
        };
        const [first, second] = [logged('first'), logged('second')];
        const later = new Promise((done) => setTimeout(done, 30));
        const work = (item: number) => async (tx: Sql, jointly: Jointly) => {
          const early = jointly(first, item);
          if (item === 2) await insert('m2')(tx); // its own statement while its first call is unmade
          if (item === 3) await later;
          const late = await jointly(second, item);
          return [await early, late];
        };
        const results = await Promise.all([1, 2, 3].map((item) => group.run(`m${item}`, work(item))));
        assert.deepEqual(results, [
          [10, 10],
          [20, 20],
          [30, 30],
        ]);
        assert.deepEqual(events, [
          'first 1,2,3 made',
          'first answered',
          'second 1,2,3 made',
          'second answered',
        ]);
      });

      it('a lone work calls with its one item', async () => {
        const group = new GroupCommit(db);
        const { calls, call } = recording();
        assert.equal(await group.run('h1', (_tx, jointly) => jointly(call, 7)), 70);
        assert.deepEqual(
          calls.map((c) => c.items),
          [[7]],
        );
      });

      it('a failed call fails the works that asked; they run again alone, and the group commits nothing', async () => {
        const group = new GroupCommit(db);
        const items: number[][] = [];
        const call = async (_tx: Sql, asked: number[]) => {
          items.push([...asked]);
          if (asked.length > 1) throw new Error('refused together');
          return asked.map((item) => item * 10);
        };
        const work = (name: string, item: number) => async (tx: Sql, jointly: Jointly) => {
          await insert(name)(tx);
          return jointly(call, item);
        };
        const results = await Promise.all([group.run('i1', work('i1', 1)), group.run('i2', work('i2', 2))]);
        assert.deepEqual(results, [10, 20]);
        assert.deepEqual(items[0], [1, 2], 'together first');
        assert.deepEqual(
          items
            .slice(1)
            .map(([item]) => item)
            .sort(),
          [1, 2],
          'then each alone',
        );
        assert.deepEqual(await names('i'), ['i1', 'i2'], 'each once, from its own transaction');
      });
    });

    it('runs concurrent reads on one connection, outside a transaction, each failing alone', async () => {
      const reads = new GroupRead(db);
      const read = (value: string) => async (sql: Sql) =>
        (
          await sql.query<{ pid: number; value: number }>(
            'select pg_backend_pid() as pid, $1::int as value',
            [value],
          )
        )[0];
      const outcomes = await Promise.allSettled(
        ['1', '2', 'three', '4'].map((value) => reads.run(read(value))),
      );
      assert.deepEqual(
        outcomes.map((outcome) => outcome.status),
        ['fulfilled', 'fulfilled', 'rejected', 'fulfilled'],
      );
      const answers = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
      assert.deepEqual(
        answers.map((answer) => answer?.value),
        [1, 2, 4],
      );
      assert.equal(new Set(answers.map((answer) => answer?.pid)).size, 1, 'one connection');
      // In a transaction, the read after the failed one would have failed with it (25P02).
    });

    it('refuses works beyond its queue bound', async () => {
      const group = new GroupCommit(db, { queuedMax: 2 });
      const outcomes = await Promise.allSettled(
        ['e1', 'e2', 'e3'].map((name) => group.run(name, insert(name))),
      );
      assert.deepEqual(
        outcomes.map((outcome) => outcome.status),
        ['fulfilled', 'fulfilled', 'rejected'],
      );
      assert.ok((outcomes[2] as PromiseRejectedResult).reason instanceof QueueFullError);
      assert.deepEqual(await names('e'), ['e1', 'e2']);
    });
  });
}
