import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { createGateway } from '../gateway/gateway.ts';
import type { App } from '../http/app.ts';
import { Problem } from '../http/problems.ts';
import { CurrencyCode, DateTime, Decimal, NoContent, StringEnum, Uuid } from '../http/schemas.ts';
import { AMOUNT_PATTERN, currencyExponent, parseAmount } from '../money.ts';
import { parseTimestamp, TIMESTAMP_PATTERN } from '../time.ts';
import { type Consents, SCOPE_OF } from './service.ts';
import type { Consent, ConsentType } from './store.ts';

const Id = Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' });
const ExpiresAt = Type.String({ pattern: TIMESTAMP_PATTERN });
export const ACCOUNT_PERMISSIONS = ['details', 'balances', 'transactions', 'beneficiaries'] as const;

const NewConsentBody = Type.Union([
  Type.Object(
    {
      type: Type.Literal('account_information'),
      permissions: Type.Array(Type.Union(ACCOUNT_PERMISSIONS.map((p) => Type.Literal(p))), {
        minItems: 1,
        uniqueItems: true,
      }),
      expiresAt: ExpiresAt,
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      type: Type.Literal('payment_initiation'),
      instructedAmount: Type.Object(
        {
          amount: Type.String({ pattern: AMOUNT_PATTERN }),
          currency: Type.String({ pattern: '^[A-Z]{3}$' }),
        },
        { additionalProperties: false },
      ),
      creditor: Type.Object(
        {
          name: Type.String({ minLength: 1, maxLength: 140 }),
          iban: Type.String({ pattern: '^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$' }),
        },
        { additionalProperties: false },
      ),
      reference: Type.Optional(Type.String({ minLength: 1, maxLength: 140 })),
      expiresAt: ExpiresAt,
    },
    { additionalProperties: false },
  ),
  Type.Object(
    { type: Type.Literal('funds_confirmation'), expiresAt: ExpiresAt },
    { additionalProperties: false },
  ),
]);

// The terms a consent was created with are spread into it, and each type has its own: the known ones are
// listed, and a type added later (a mandate's terms) passes through rather than being dropped.
export const ConsentView = Type.Object(
  {
    id: Uuid,
    clientId: Uuid,
    type: StringEnum(['account_information', 'payment_initiation', 'funds_confirmation', 'mandate']),
    status: StringEnum([
      'awaiting_authorisation',
      'authorised',
      'rejected',
      'revoked',
      'expired',
      'consumed',
    ]),
    permissions: Type.Optional(
      Type.Array(StringEnum(ACCOUNT_PERMISSIONS), { description: 'account_information consents' }),
    ),
    instructedAmount: Type.Optional(
      Type.Object(
        { amount: Decimal, currency: CurrencyCode },
        { description: 'payment_initiation consents' },
      ),
    ),
    creditor: Type.Optional(
      Type.Object(
        { name: Type.String(), iban: Type.String() },
        { description: 'payment_initiation consents' },
      ),
    ),
    reference: Type.Optional(Type.String({ description: 'payment_initiation consents, when given' })),
    expiresAt: DateTime,
    createdAt: DateTime,
    statusUpdatedAt: DateTime,
  },
  { additionalProperties: true, description: 'A consent' },
);

export function consentJson(consent: Consent) {
  return {
    id: consent.id,
    clientId: consent.clientId,
    type: consent.type,
    status: consent.status,
    ...consent.details,
    expiresAt: consent.expiresAt.toISOString(),
    createdAt: consent.createdAt.toISOString(),
    statusUpdatedAt: consent.statusUpdatedAt.toISOString(),
  };
}

function accessOf(request: FastifyRequest) {
  if (!request.access) throw new Error('route registered without requireAccess');
  return request.access;
}

/** Apps create consents before sending the customer to authorise them, read their status, and revoke them. */
export function registerConsentRoutes(
  app: App,
  consents: Consents,
  gateway: ReturnType<typeof createGateway>,
): void {
  app.post(
    '/v1/consents',
    {
      schema: { body: NewConsentBody, response: { 201: ConsentView } },
      onRequest: gateway('consents'),
      config: { idempotent: true },
    },
    async (request, reply) => {
      const access = accessOf(request);
      const { type, expiresAt: expiresText, ...details } = request.body;
      if (!access.scopes.has(SCOPE_OF[type as ConsentType])) {
        throw new Problem(
          'insufficient_scope',
          `a ${type} consent needs scope ${SCOPE_OF[type as ConsentType]}`,
        );
      }
      if ('instructedAmount' in details) {
        const { amount, currency } = details.instructedAmount;
        const exponent = currencyExponent(currency);
        if (exponent === undefined) throw new Problem('unsupported_currency', `${currency} is not supported`);
        if (parseAmount(amount)?.scale !== exponent) {
          throw new Problem('amount_scale_mismatch', `${currency} amounts have ${exponent} decimals`);
        }
      }
      const expiresAt = parseTimestamp(expiresText);
      if (!expiresAt)
        throw new Problem('validation_failed', '/body/expiresAt is not a date and time that exists');
      const outcome = await consents.create(access.clientId, {
        type: type as ConsentType,
        details,
        expiresAt,
      });
      if (!outcome.ok) throw new Problem(outcome.code);
      return reply.code(201).send(consentJson(outcome.consent));
    },
  );

  app.get(
    '/v1/consents/:id',
    {
      schema: { params: Type.Object({ id: Id }), response: { 200: ConsentView } },
      onRequest: gateway('consents'),
    },
    async (request) => {
      const consent = await consents.getForClient(accessOf(request).clientId, request.params.id);
      if (!consent) throw new Problem('not_found', 'no consent with this id');
      return consentJson(consent);
    },
  );

  app.delete(
    '/v1/consents/:id',
    {
      schema: { params: Type.Object({ id: Id }), response: { 204: NoContent } },
      onRequest: gateway('consents'),
    },
    async (request, reply) => {
      const consent = await consents.getForClient(accessOf(request).clientId, request.params.id);
      if (!consent) throw new Problem('not_found', 'no consent with this id');
      if (consent.status !== 'revoked' && !(await consents.revoke(consent)))
        throw new Problem('consent_not_active');
      return reply.code(204).send();
    },
  );
}
