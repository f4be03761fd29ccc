// The master keys that wrap the data keys of personal-data encryption. They live in a file the operator
// provisions (production) or that the sandbox generates once into its data directory, never in the database,
// so a copy of the database alone decrypts nothing. Several keys may be listed; `active` wraps new data keys,
// the others still unwrap old ones until `apibank keys rotate` has re-wrapped everything.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError, type Mode } from '../config.ts';

export interface MasterKeys {
  readonly activeId: string;
  readonly keys: ReadonlyMap<string, Buffer>;
}

interface MasterKeysFile {
  readonly active: string;
  readonly keys: Record<string, string>;
}

const KEY_ID = /^[A-Za-z0-9_-]{1,40}$/;
const KEY_BYTES = 32;

/** A new file's text with one random 256-bit key. */
export function newMasterKeysFile(): string {
  const id = `m${new Date().toISOString().slice(0, 10).replaceAll('-', '')}-${randomBytes(3).toString('hex')}`;
  const file: MasterKeysFile = { active: id, keys: { [id]: randomBytes(KEY_BYTES).toString('base64') } };
  return `${JSON.stringify(file, null, 2)}\n`;
}

export function parseMasterKeys(text: string, where: string): MasterKeys {
  let file: MasterKeysFile;
  try {
    file = JSON.parse(text) as MasterKeysFile;
  } catch {
    throw new ConfigError([`${where} is not JSON`]);
  }
  const keys = new Map<string, Buffer>();
  for (const [id, encoded] of Object.entries(file?.keys ?? {})) {
    const key = Buffer.from(String(encoded), 'base64');
    if (!KEY_ID.test(id) || key.length !== KEY_BYTES) {
      throw new ConfigError([`${where}: key ${id} must have a short id and 32 bytes in base64`]);
    }
    keys.set(id, key);
  }
  // A string, not merely something that prints as one of the ids: `{"active": 1, "keys": {"1": …}}` would pass a
  // `String()` check and then find no key under the number 1 at the first use.
  if (typeof file?.active !== 'string' || !keys.has(file.active))
    throw new ConfigError([`${where}: "active" must name one of its keys`]);
  return { activeId: file.active, keys };
}

/** Reads the file; in the sandbox a missing file is created (mode 0600), in production it is an error. */
export function loadMasterKeys(path: string, mode: Mode): MasterKeys {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || mode === 'production') {
      throw new ConfigError([`cannot read the personal-data keys file ${path}: ${(error as Error).message}`]);
    }
    text = newMasterKeysFile();
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text, { mode: 0o600, flag: 'wx' });
  }
  return parseMasterKeys(text, path);
}

/** A single fixed key, for tests. */
export function testMasterKeys(): MasterKeys {
  return { activeId: 'test', keys: new Map([['test', Buffer.alloc(KEY_BYTES, 7)]]) };
}
