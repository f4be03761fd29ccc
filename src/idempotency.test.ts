import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readIdempotencyKey, requestHash } from './idempotency.ts';

describe('idempotency keys', () => {
  it('hashes a request independently of key order, and tells different requests apart', () => {
    assert.equal(
      requestHash({ a: 1, b: [1, { c: 2, d: 3 }] }),
      requestHash({ b: [1, { d: 3, c: 2 }], a: 1 }),
    );
    assert.notEqual(requestHash({ a: '1' }), requestHash({ a: 1 }));
    assert.notEqual(requestHash([1, 2]), requestHash([2, 1]));
  });

  it('requires a short visible-ASCII key where asked', () => {
    assert.equal(readIdempotencyKey('order-42', true), 'order-42');
    assert.equal(readIdempotencyKey(undefined, false), undefined);
    assert.throws(() => readIdempotencyKey(undefined, true), { code: 'idempotency_key_missing' });
    for (const bad of ['', 'a b', 'é', 'k'.repeat(256)]) {
      assert.throws(() => readIdempotencyKey(bad, true), { code: 'idempotency_key_invalid' }, bad);
    }
    assert.throws(() => readIdempotencyKey(['a', 'b'], true), { code: 'idempotency_key_invalid' });
  });
});
