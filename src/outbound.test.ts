import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { addressProblem, outboundFetch } from './outbound.ts';

describe('outbound connections', () => {
  it("tell the bank's own network from the internet", () => {
    assert.equal(addressProblem('8.8.8.8', 'production'), undefined);
    assert.match(String(addressProblem('127.0.0.1', 'production')), /loopback/);
    assert.equal(addressProblem('127.0.0.1', 'sandbox'), undefined);
    assert.match(String(addressProblem('::ffff:10.1.2.3', 'sandbox')), /private or reserved/);
    assert.match(String(addressProblem('169.254.169.254', 'sandbox')), /private or reserved/);
  });

  it('reach a loopback server in the sandbox only, by address or by a name that resolves to it', async () => {
    let reached = 0;
    const server = createServer((_request, response) => {
      reached++;
      response.end('{"keys":[]}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const sandbox = await outboundFetch('sandbox')(`http://127.0.0.1:${port}/jwks`);
      assert.deepEqual(await sandbox.json(), { keys: [] });
      for (const url of [`http://127.0.0.1:${port}/jwks`, `http://localhost:${port}/jwks`]) {
        await assert.rejects(outboundFetch('production')(url), url);
      }
      assert.equal(reached, 1, 'production never connected');
    } finally {
      server.close();
    }
  });
});
