// Field encryption for tests: a fixed master key, data keys in the test's database.
import type { Db } from '../db/db.ts';
import { testMasterKeys } from '../pii/master-keys.ts';
import { Pii } from '../pii/pii.ts';

export function testPii(db: Db): Promise<Pii> {
  return Pii.open(db, testMasterKeys());
}
