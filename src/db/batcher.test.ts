import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Batcher, QueueFullError } from './batcher.ts';

describe('batcher', () => {
  it('sends a lone item at once and merges what arrives while calls run', async () => {
    const calls: number[][] = [];
    let release: () => void = () => {};
    const batcher = new Batcher<number, number>({
      run: async (items) => {
        calls.push(items);
        if (calls.length === 1) await new Promise<void>((done) => (release = done));
        return items.map((n) => n * 2);
      },
      itemsPerCallMax: 3,
      callsInFlightMax: 1,
      queuedMax: 100,
    });
    const first = batcher.submit(1);
    await new Promise((done) => setImmediate(done));
    const rest = [2, 3, 4, 5].map((n) => batcher.submit(n));
    release();
    assert.deepEqual(await Promise.all([first, ...rest]), [2, 4, 6, 8, 10]);
    assert.deepEqual(calls, [[1], [2, 3, 4], [5]]);
  });

  it('fails every item of a failed call, and refuses items beyond the queue bound', async () => {
    const batcher = new Batcher<number, number>({
      run: async () => {
        throw new Error('database down');
      },
      itemsPerCallMax: 10,
      callsInFlightMax: 1,
      queuedMax: 2,
    });
    const results = await Promise.allSettled([1, 2, 3].map((n) => batcher.submit(n)));
    assert.deepEqual(
      results.map((r) => (r.status === 'rejected' ? (r.reason as Error).name : 'ok')),
      ['Error', 'Error', 'QueueFullError'],
    );
    assert.ok((results[2] as PromiseRejectedResult).reason instanceof QueueFullError);
  });
});
