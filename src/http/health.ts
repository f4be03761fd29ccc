import { Type } from 'typebox';
import type { Db } from '../db/db.ts';
import { isMigrated } from '../db/migrate.ts';
import type { App } from './app.ts';
import { Problem } from './problems.ts';
import { StringEnum } from './schemas.ts';

const Healthy = Type.Object({ status: StringEnum(['ok']) }, { description: 'The check passed' });
const options = { logLevel: 'warn', schema: { response: { 200: Healthy } } } as const;

/** Liveness (the process answers) and readiness (the database answers and carries this code's schema). */
export function registerHealth(app: App, db: Db): void {
  app.get('/health/live', options, async () => ({ status: 'ok' as const }));
  app.get('/health/ready', options, async () => {
    const migrated = await isMigrated(db).catch(() => false);
    if (!migrated) throw new Problem('service_unavailable', 'the database is unreachable or not migrated');
    return { status: 'ok' as const };
  });
}
