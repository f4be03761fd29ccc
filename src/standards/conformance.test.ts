// The conformance table's reading of the official files and its counting of exchanges per operation.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { operationStatus, type SpecOperation, specOperations } from './conformance.ts';

const BERLIN_GROUP = fileURLToPath(
  new URL('../../specs/berlin-group-nextgenpsd2-1.3.9/psd2-api-1.3.9.yaml', import.meta.url),
);

describe('conformance table', () => {
  it('reads every operation of the Berlin Group file line by line', () => {
    const operations = specOperations(BERLIN_GROUP);
    // 39 operationIds in the file (grep -c operationId), each under its path and method.
    assert.equal(operations.length, 39);
    assert.equal(new Set(operations.map((o) => o.operationId)).size, 39);
    assert.deepEqual(
      operations.find((o) => o.operationId === 'getConsentStatus'),
      { method: 'GET', path: '/v1/consents/{consentId}/status', operationId: 'getConsentStatus' },
    );
  });

  it('counts a call for the most specific operation its path matches', () => {
    const operations = specOperations(BERLIN_GROUP);
    const byId = (id: string) => operations.find((o) => o.operationId === id) as SpecOperation;
    const report = {
      title: 't',
      file: BERLIN_GROUP,
      basePath: '/berlin-group',
      exchanges: [
        { method: 'GET', path: '/v1/consents/abc/status', status: 200 },
        { method: 'GET', path: '/v1/consents/abc/status', status: 403 },
      ],
    };
    assert.equal(operationStatus(byId('getConsentStatus'), report, operations).status, 'conforms');
    // /v1/consents/abc/status is also an instance of /v1/{payment-service}/{payment-product}/{paymentId}.
    assert.equal(
      operationStatus(byId('getPaymentInformation'), report, operations).status,
      'not implemented',
    );
  });
});
