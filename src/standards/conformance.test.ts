// The conformance table's reading of the official files, its counting of exchanges per operation, and the
// document being the one the test files' records compose.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  conformanceDocument,
  operationStatus,
  readDocument,
  readRecords,
  recordOf,
  SPECS,
  specOperations,
} from './conformance.ts';

describe('conformance table', () => {
  it('reads every operation of the Berlin Group file line by line', () => {
    const operations = specOperations(SPECS['berlin-group'].file);
    // 39 operationIds in the file (grep -c operationId), each under its path and method.
    assert.equal(operations.length, 39);
    assert.equal(new Set(operations.map((o) => o.operationId)).size, 39);
    assert.deepEqual(
      operations.find((o) => o.operationId === 'getConsentStatus'),
      { method: 'GET', path: '/v1/consents/{consentId}/status', operationId: 'getConsentStatus' },
    );
  });

  it('counts a call for the most specific operation its path matches', () => {
    const record = recordOf('berlin-group', 't', [
      { method: 'GET', path: '/v1/consents/abc/status', status: 403 },
      { method: 'GET', path: '/v1/consents/abc/status', status: 200 },
      { method: 'GET', path: '/v1/consents/abc/status', status: 200 },
    ]);
    // /v1/consents/abc/status is also an instance of /v1/{payment-service}/{payment-product}/{paymentId}.
    assert.deepEqual(record.seen, { getConsentStatus: [200, 403] });
  });

  it('refuses an exchange or a gap that is no operation of the spec', () => {
    assert.throws(() => recordOf('uk-ob-cbpii', 't', [{ method: 'GET', path: '/nowhere', status: 200 }]));
    assert.throws(() => recordOf('uk-ob-cbpii', 't', [], { NoSuchOperation: 'gap' }));
  });

  it('says conforms only for a success and an error without a known gap', () => {
    assert.equal(operationStatus([], undefined), 'not implemented');
    assert.equal(operationStatus([200], undefined), 'partly');
    assert.equal(operationStatus([400], undefined), 'partly');
    assert.equal(operationStatus([201, 400], undefined), 'conforms');
    assert.equal(operationStatus([201, 400], 'no X'), 'partly');
  });

  it('merges the records of several test files of one spec', () => {
    const document = conformanceDocument([
      recordOf('uk-ob-cbpii', 'a', [{ method: 'POST', path: '/funds-confirmations', status: 201 }]),
      recordOf('uk-ob-cbpii', 'b', [{ method: 'POST', path: '/funds-confirmations', status: 400 }]),
    ]);
    assert.match(
      document,
      /\| CreateFundsConfirmations \| `POST \/funds-confirmations` \| conforms \| 201, 400 \|/,
    );
    // Every spec has its table, tested or not.
    for (const spec of Object.values(SPECS)) assert.ok(document.includes(`## ${spec.title}\n`));
  });

  it('is the document the records compose (APIBANK_WRITE_CONFORMANCE=1 writes both)', () => {
    assert.equal(readDocument(), conformanceDocument(readRecords()));
  });
});
