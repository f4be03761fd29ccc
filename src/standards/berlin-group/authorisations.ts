// Berlin Group NextGenPSD2 1.3.9 authorisation sub-resources, of consents (`/v1/consents/{consentId}/
// authorisations`) and of payment initiations (`/v1/{payment-service}/{payment-product}/{paymentId}/
// authorisations`), over the bank's one SCA: the customer signing in and approving at its consent page, which
// `_links.scaRedirect` leads to (the redirect approach, which subsumes the OAuth one: the spec's
// ASPSP-SCA-Approach). The bank keeps only the sub-resource's id (0023_bg_authorisations.sql); its status is
// the consent's, read each time:
//
//   consent awaiting the customer          → started   (the one method, the bank's page, is chosen implicitly
//                                                       and its link is in the response that creates the
//                                                       authorisation; the spec's scaStatus says an implicit
//                                                       method skips "received". The bank does not follow the
//                                                       customer through its pages, so no finer step shows.)
//   authorised, or since used up            → finalised
//   rejected at the page                    → failed
//   revoked or expired                      → finalised if the customer had approved it first, else failed
//
// The authorisation is started implicitly with the consent or payment (its 201 carries scaRedirect and the
// authorisation's scaStatus link), unless the TPP sends `TPP-Explicit-Authorisation-Preferred: true`; then
// the 201 carries `startAuthorisation` and the TPP starts it here. One per consent: no multilevel SCA.
// Nothing about the PSU is taken over the API (no PSU-ID, password, method selection or OTP): a start with
// PSU data is refused, and updating PSU data (PUT) is not a method these resources support.
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { v7 as uuidv7 } from 'uuid';
import type { Consent } from '../../consents/store.ts';
import type { Db, Sql } from '../../db/db.ts';
import type { createGateway } from '../../gateway/gateway.ts';
import type { App } from '../../http/app.ts';
import { BG_CODES, BgError } from './errors.ts';

export type ScaStatus = 'started' | 'finalised' | 'failed';

/** The SCA status of a consent's authorisation: what the customer did at the bank's page, if anything. */
export function scaStatusOf(consent: Consent): ScaStatus {
  switch (consent.status) {
    case 'awaiting_authorisation':
      return 'started';
    case 'authorised':
    case 'consumed':
      return 'finalised';
    case 'rejected':
      return 'failed';
    case 'revoked':
    case 'expired':
      // The grant is made only when the customer approves: its presence says the SCA had succeeded.
      return consent.grantId ? 'finalised' : 'failed';
  }
}

/** Whether the TPP asked to start the authorisation itself (header TPP-Explicit-Authorisation-Preferred). */
export function explicitStartPreferred(request: FastifyRequest): boolean {
  return request.headers['tpp-explicit-authorisation-preferred'] === 'true';
}

/**
 * Creates the consent's authorisation, in `sql`'s transaction where it starts with the consent (implicitly);
 * undefined when it already has one.
 */
export async function startAuthorisation(sql: Sql, consentId: string): Promise<string | undefined> {
  const [row] = await sql.query<{ id: string }>(
    `insert into bg_authorisations (id, consent_id, created_at) values ($1, $2, $3)
     on conflict (consent_id) do nothing returning id`,
    [uuidv7(), consentId, new Date()],
  );
  return row?.id;
}

async function authorisationOf(db: Db, consentId: string): Promise<string | undefined> {
  const [row] = await db.query<{ id: string }>('select id from bg_authorisations where consent_id = $1', [
    consentId,
  ]);
  return row?.id;
}

export interface AuthorisedResource {
  /** The resource's route, e.g. `/berlin-group/v1/consents/:consentId`. */
  readonly route: string;
  /** The route's own path parameters. */
  readonly params: readonly string[];
  /**
   * The request's consent, as the calling app may see it; throws the standard's refusal otherwise (AIS: 403
   * CONSENT_UNKNOWN; PIS: 404 RESOURCE_UNKNOWN).
   */
  consentOf(request: FastifyRequest): Promise<Consent>;
  /** The resource's address, for links. */
  hrefOf(consent: Consent): string;
  /** The authorization request that leads the customer to the bank's page for this consent. */
  scaRedirectOf(request: FastifyRequest, consent: Consent): string;
  /** The gateway's hooks of the resource's product. */
  readonly onRequest: ReturnType<ReturnType<typeof createGateway>>;
}

/** The four operations of `{resource}/authorisations[/{authorisationId}]`, in the caller's Berlin Group scope. */
export function registerAuthorisationRoutes(
  scope: App,
  deps: { db: Db; publicUrl: string },
  resource: AuthorisedResource,
): void {
  const { db, publicUrl } = deps;
  const strings = (names: readonly string[]) =>
    Type.Object(Object.fromEntries(names.map((name) => [name, Type.String()])));
  const base = { hide: true, params: strings(resource.params) } as const;
  const one = { hide: true, params: strings([...resource.params, 'authorisationId']) } as const;
  const list = `${resource.route}/authorisations`;
  const scaStatusHref = (consent: Consent, id: string) => ({
    href: `${resource.hrefOf(consent)}/authorisations/${id}`,
  });
  /** The consent and its authorisation named in the path: an id of another consent's does not exist here. */
  const authorisationIn = async (request: FastifyRequest) => {
    const consent = await resource.consentOf(request);
    const given = (request.params as { authorisationId: string }).authorisationId;
    const id = await authorisationOf(db, consent.id);
    if (!id || given !== id) {
      throw BgError.of(
        404,
        BG_CODES.resourceUnknown,
        'no authorisation with this authorisationId',
        'authorisationId',
      );
    }
    return { consent, id };
  };

  scope.post(list, { schema: base, onRequest: resource.onRequest }, async (request, reply) => {
    const consent = await resource.consentOf(request);
    // The redirect approach takes nothing about the PSU: the customer authenticates at the bank's page.
    const body = request.body;
    if (body !== undefined && body !== null && (typeof body !== 'object' || Object.keys(body).length > 0)) {
      throw BgError.of(
        400,
        BG_CODES.serviceInvalid,
        'PSU data is not taken here: the customer authenticates at the bank, following scaRedirect',
      );
    }
    if (consent.status !== 'awaiting_authorisation') {
      throw BgError.of(
        409,
        BG_CODES.statusInvalid,
        'only a resource awaiting the customer can be authorised; this one is no longer',
      );
    }
    const id = await startAuthorisation(db, consent.id);
    if (!id) {
      const existing = await authorisationOf(db, consent.id);
      throw BgError.of(
        409,
        BG_CODES.statusInvalid,
        'the authorisation is already started (one per resource: no multilevel SCA); follow its scaStatus',
        undefined,
        existing ? { scaStatus: scaStatusHref(consent, existing) } : undefined,
      );
    }
    reply.header('aspsp-sca-approach', 'REDIRECT');
    return reply.code(201).send({
      scaStatus: scaStatusOf(consent),
      authorisationId: id,
      _links: {
        scaRedirect: { href: resource.scaRedirectOf(request, consent) },
        scaOAuth: { href: `${publicUrl}/.well-known/openid-configuration` },
        scaStatus: scaStatusHref(consent, id),
      },
    });
  });

  scope.get(list, { schema: base, onRequest: resource.onRequest }, async (request) => {
    const consent = await resource.consentOf(request);
    const id = await authorisationOf(db, consent.id);
    return { authorisationIds: id ? [id] : [] };
  });

  scope.get(`${list}/:authorisationId`, { schema: one, onRequest: resource.onRequest }, async (request) => {
    const { consent } = await authorisationIn(request);
    return { scaStatus: scaStatusOf(consent) };
  });

  scope.put(`${list}/:authorisationId`, { schema: one, onRequest: resource.onRequest }, async (request) => {
    await authorisationIn(request);
    // Implementation Guidelines §14.11: SERVICE_INVALID with 405 when the HTTP method is what is not valid.
    throw BgError.of(
      405,
      BG_CODES.serviceInvalid,
      'no PSU data is updated here: the redirect approach needs no PSU identification, method selection, ' +
        'authentication or confirmation code over the API; the customer authorises at the bank',
    );
  });
}
