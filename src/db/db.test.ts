import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { corkingConnector } from './db.ts';

describe('the PostgreSQL connection (corkingConnector)', () => {
  let received = 0;
  const server = createServer((socket) => socket.on('data', (chunk) => (received += chunk.length)));
  let client: Socket;
  let sends = 0;
  before(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    client = corkingConnector()({ host: ['127.0.0.1'], port: [port] });
    await once(client, 'connect');
    // Each call hands the kernel one write (several chunks go as one writev).
    for (const method of ['_write', '_writev'] as const) {
      const send = client[method] as (...args: unknown[]) => void;
      client[method] = (...args: unknown[]) => {
        sends++;
        send.apply(client, args);
      };
    }
  });
  after(() => {
    client.destroy();
    server.close();
  });

  const arrived = async (bytes: number) => {
    while (received < bytes) await nextTurn();
  };

  it('sends what is written in one turn of the event loop in one write, however large each piece', async () => {
    // postgres.js writes at once any statement past 1 KiB: five of them were five writes.
    for (let i = 0; i < 5; i++) client.write(Buffer.alloc(2048, i));
    await nextTurn();
    assert.equal(sends, 1);
    await arrived(5 * 2048);
  });

  it('sends a later write on its own turn: nothing stays corked', async () => {
    client.write(Buffer.alloc(10));
    await nextTurn();
    assert.equal(sends, 2);
    await arrived(5 * 2048 + 10);
  });
});

for (const database of testDatabases()) {
  describe(`statements sent together (${database.name})`, () => {
    let db: TestDb;
    before(async () => {
      db = await database.open();
    });
    after(() => db.close());

    it('answers each of many large statements issued at once, in one transaction and outside one', async () => {
      const big = (i: number) => `${i}:${'x'.repeat(4096)}`;
      const echo = (sql: { query: TestDb['query'] }, i: number) =>
        sql.query<{ v: string }>('select $1::text as v', [big(i)]).then((rows) => rows[0]?.v);
      const expected = Array.from({ length: 20 }, (_, i) => big(i));
      assert.deepEqual(await Promise.all(expected.map((_, i) => echo(db, i))), expected);
      assert.deepEqual(
        await db.transaction((tx) => Promise.all(expected.map((_, i) => echo(tx, i)))),
        expected,
      );
    });
  });
}
