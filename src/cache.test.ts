import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TtlCache } from './cache.ts';

describe('TtlCache', () => {
  it('shares one read among the calls that miss together, and keeps it for its time to live', async () => {
    const cache = new TtlCache<number>({ ttlMs: 60_000, max: 10 });
    let reads = 0;
    const load = async () => {
      reads++;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return reads;
    };
    const values = await Promise.all(Array.from({ length: 20 }, () => cache.get('a', load)));
    assert.deepEqual(new Set(values), new Set([1]));
    assert.equal(await cache.get('a', load), 1);
    assert.equal(reads, 1);
  });

  it('reads again after the time to live, after a delete, and after a failed read', async () => {
    const cache = new TtlCache<string>({ ttlMs: 0, max: 10 });
    let reads = 0;
    const load = async () => `v${++reads}`;
    assert.equal(await cache.get('a', load), 'v1');
    assert.equal(await cache.get('a', load), 'v2');

    const kept = new TtlCache<string>({ ttlMs: 60_000, max: 10 });
    assert.equal(await kept.get('a', load), 'v3');
    kept.delete('a');
    assert.equal(await kept.get('a', load), 'v4');
    await assert.rejects(
      kept.get('b', async () => {
        throw new Error('database down');
      }),
    );
    assert.equal(await kept.get('b', load), 'v5');
  });

  it('does not keep a read that was in flight when its key changed', async () => {
    const cache = new TtlCache<string>({ ttlMs: 60_000, max: 10 });
    let release: (value: string) => void = () => {};
    const stale = cache.get('a', () => new Promise((resolve) => (release = resolve)));
    cache.delete('a');
    release('old');
    assert.equal(await stale, 'old');
    assert.equal(await cache.get('a', async () => 'new'), 'new');
  });

  it('peeks only at a value read and still fresh', async () => {
    const cache = new TtlCache<string | undefined>({ ttlMs: 60_000, max: 10 });
    assert.equal(cache.peek('a'), undefined);
    const reading = cache.get('a', async () => undefined);
    assert.equal(cache.peek('a'), undefined); // not read yet
    await reading;
    assert.deepEqual(cache.peek('a'), { value: undefined }); // read: "no such thing" is an answer too
    cache.delete('a');
    assert.equal(cache.peek('a'), undefined);
    const stale = new TtlCache<string>({ ttlMs: 0, max: 10 });
    await stale.get('a', async () => 'v');
    assert.equal(stale.peek('a'), undefined);
  });

  it('holds at most `max` keys', async () => {
    const cache = new TtlCache<number>({ ttlMs: 60_000, max: 2 });
    let reads = 0;
    const load = async () => ++reads;
    await cache.get('a', load);
    await cache.get('b', load);
    await cache.get('c', load); // full: starts again with c alone
    assert.equal(await cache.get('a', load), 4);
  });
});
