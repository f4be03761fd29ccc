import { Type } from 'typebox';
import type { App } from '../http/app.ts';
import { scoped } from '../http/app.ts';
import { requireBearerToken } from '../http/auth.ts';
import type { AuditLog } from './service.ts';

// AuditVerification (service.ts), as `verify` builds it.
const VerificationView = Type.Object(
  {
    ok: Type.Boolean(),
    records: Type.Integer(),
    checkpoints: Type.Integer(),
    firstBroken: Type.Optional(Type.Object({ seq: Type.Integer(), reason: Type.String() })),
  },
  { description: 'Whether the chain and its signed checkpoints hold' },
);

/** Operators check the whole chain: `{ ok, records, checkpoints, firstBroken? }`. */
export function registerAuditRoutes(app: App, audit: AuditLog, adminToken: string): void {
  scoped(app, (operator) => {
    operator.addHook('onRequest', requireBearerToken(adminToken));
    operator.get('/v1/audit/verify', { schema: { response: { 200: VerificationView } } }, async () => {
      // Include this process's buffered records, so the answer covers every call made before this one.
      await audit.flush();
      return audit.verify();
    });
  });
}
