import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, resolveAdminToken } from './config.ts';
import { loadOAuthKeys } from './oauth/keys.ts';

describe('configuration', () => {
  it('defaults to a local sandbox on the embedded database', () => {
    const config = loadConfig({});
    assert.equal(config.mode, 'sandbox');
    assert.equal(config.port, 8080);
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.databaseUrl, undefined);
    assert.match(config.dataDir, /\/data$/);
  });

  it('lists every wrong setting at once, without echoing the database URL', () => {
    try {
      loadConfig({
        PORT: '80a',
        HOST: 'my host',
        DATABASE_URL: 'mysql://user:hunter2@x/db',
        APIBANK_ADMIN_TOKEN: 'short',
        APIBANK_METRICS_TOKEN: 'short',
      });
      assert.fail('expected a ConfigError');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.problems.length, 5);
      assert.doesNotMatch(error.message, /hunter2/);
    }
  });

  it('refuses production without an operator token, a metrics token, a database server, TLS, OAuth keys, personal-data keys and real screening lists', () => {
    assert.throws(
      () => loadConfig({ APIBANK_MODE: 'production' }),
      (error: ConfigError) =>
        [
          'APIBANK_ADMIN_TOKEN',
          'APIBANK_METRICS_TOKEN',
          'DATABASE_URL',
          'APIBANK_PUBLIC_URL',
          'APIBANK_OAUTH_KEYS_FILE',
          'APIBANK_PII_KEYS_FILE',
          'APIBANK_SCREENING_LISTS',
        ].every((name) => error.problems.some((problem) => problem.startsWith(name))) &&
        error.problems.length === 7,
    );
  });

  it('takes trusted proxies as addresses or CIDR ranges, and names any other entry', () => {
    assert.deepEqual(
      loadConfig({ APIBANK_TRUSTED_PROXIES: ' 10.0.0.0/8, ::1,192.168.1.7/32' }).trustedProxies,
      ['10.0.0.0/8', '::1', '192.168.1.7/32'],
    );
    assert.deepEqual(loadConfig({}).trustedProxies, []);
    assert.throws(
      () => loadConfig({ APIBANK_TRUSTED_PROXIES: '10.0.0.0/33,lb.internal,fe80::/129,1.2.3.4/8/1' }),
      (error: ConfigError) =>
        error.problems.length === 4 && error.problems.every((p) => p.startsWith('APIBANK_TRUSTED_PROXIES')),
    );
  });

  it('generates the operator token once, readable by its owner only', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'apibank-config-'));
    const config = loadConfig({ APIBANK_DATA_DIR: dataDir });
    const first = resolveAdminToken(config);
    assert.ok(first.file);
    assert.equal(statSync(first.file).mode & 0o777, 0o600);
    assert.equal(resolveAdminToken(config).token, first.token);
    chmodSync(first.file, 0o644);
    assert.throws(() => resolveAdminToken(config), ConfigError);
  });

  it('generates the sandbox OAuth keys file even when the data directory does not exist yet', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'apibank-keys-')), 'not-yet');
    const config = loadConfig({ APIBANK_DATA_DIR: dataDir, APIBANK_ADMIN_TOKEN: 'x'.repeat(40) });
    const keys = await loadOAuthKeys(config.oauthKeysFile, 'sandbox');
    assert.equal(statSync(config.oauthKeysFile).mode & 0o777, 0o600);
    assert.deepEqual(
      await loadOAuthKeys(config.oauthKeysFile, 'sandbox'),
      keys,
      'and reads the same keys back',
    );
    await assert.rejects(loadOAuthKeys(join(dataDir, 'missing.json'), 'production'), ConfigError);
  });
});
