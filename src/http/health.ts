import type { Db } from '../db/db.ts';
import { isMigrated } from '../db/migrate.ts';
import type { App } from './app.ts';
import { Problem } from './problems.ts';

/** Liveness (the process answers) and readiness (the database answers and carries this code's schema). */
export function registerHealth(app: App, db: Db): void {
  app.get('/health/live', { logLevel: 'warn' }, async () => ({ status: 'ok' }));
  app.get('/health/ready', { logLevel: 'warn' }, async () => {
    const migrated = await isMigrated(db).catch(() => false);
    if (!migrated) throw new Problem('service_unavailable', 'the database is unreachable or not migrated');
    return { status: 'ok' };
  });
}
