// Who is calling a UK Open Banking facade, in the standard's terms: every API (AIS, PIS, CBPII) manages
// its consents with the app's own token, and knows only the consents made through it.
import type { FastifyRequest } from 'fastify';
import type { Consents } from '../../consents/service.ts';
import type { ConsentType } from '../../consents/store.ts';
import type { AccessContext } from '../../oauth/resource-server.ts';
import { OB_ERROR_CODES, ObError } from './errors.ts';

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The caller's access token, once the route's gateway step admitted it. */
export function accessOf(request: FastifyRequest): AccessContext {
  if (!request.access) throw new Error('route registered without requireAccess');
  return request.access;
}

/**
 * The app's own token (client credentials) with `scope` manages an API's consents: the app's client id, or
 * 403 for a customer's token or a token without the scope. `what` names the consents in the refusal.
 */
export function managingApp(request: FastifyRequest, scope: string, what: string): string {
  const access = accessOf(request);
  if (access.subject !== access.clientId || !access.scopes.has(scope)) {
    throw ObError.of(
      403,
      OB_ERROR_CODES.narrative,
      `${what} are managed with the app token (client credentials) and scope ${scope}`,
    );
  }
  return access.clientId;
}

/**
 * The customer's token under the payment consent `consentId` they authorised, one made through the
 * resource whose consents' details hold `marker`: the app, the customer and the consent. `what` names
 * such a consent in the refusal (403 for another token, 400 for another consent).
 */
export function paymentGrantOf(request: FastifyRequest, consentId: string, marker: string, what: string) {
  const access = accessOf(request);
  const consent = access.consents.find((c) => c.type === 'payment_initiation' && marker in c.details);
  if (access.subject === access.clientId || !consent) {
    throw ObError.of(
      403,
      OB_ERROR_CODES.narrative,
      `this needs a token bound to ${what} the customer authorised`,
    );
  }
  if (consent.id !== consentId) {
    throw ObError.of(
      400,
      OB_ERROR_CODES.resourceNotFound,
      'the token was not issued under this ConsentId',
      'ConsentId',
    );
  }
  return { clientId: access.clientId, customerId: access.subject, consent };
}

/**
 * The app's consent `id` of `type`, made through this API (its details hold `marker`). Another app's, one
 * made through another API, or none at all is the same 400: it does not exist here.
 */
export async function consentMadeHere(
  consents: Consents,
  clientId: string,
  id: string,
  type: ConsentType,
  marker: string,
) {
  const consent = UUID.test(id) ? await consents.getForClient(clientId, id) : undefined;
  if (consent?.type !== type || !(marker in consent.details)) {
    throw ObError.of(400, OB_ERROR_CODES.resourceNotFound, 'no consent with this ConsentId', 'ConsentId');
  }
  return consent;
}
