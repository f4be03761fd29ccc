// UK Open Banking Read/Write v4.0, Confirmation of Funds API (`/open-banking/v4.0/cbpii`), over the bank's
// own: a funds-confirmation consent is a `funds_confirmation` consent (authorised at the same consent page
// through the same OAuth flow, the customer choosing the account, revoked the same way), and a funds
// confirmation is `Payments.fundsAvailable` on that account, a yes or no that reveals no balance. The
// contract is the official file (specs/uk-open-banking-v4.0/confirmation-funds-openapi.yaml), so these
// routes stay out of /openapi.json.
//
// JWS: unlike the Payment Initiation API, this specification declares no `x-jws-signature` on any request
// or response, so none is produced or asked for here.
import type { FastifyRequest } from 'fastify';
import { isValidIBAN } from 'ibantools';
import { Type } from 'typebox';
import { v4 as uuidv4 } from 'uuid';
import { normaliseIban } from '../../accounts/iban.ts';
import type { Accounts } from '../../accounts/service.ts';
import { CONSENT_VALIDITY_MAX_MS, type Consents } from '../../consents/service.ts';
import type { Consent } from '../../consents/store.ts';
import type { createGateway } from '../../gateway/gateway.ts';
import { type App, scoped } from '../../http/app.ts';
import { currencyExponent, parseAmount } from '../../money.ts';
import type { Payments } from '../../payments/service.ts';
import { accessOf, consentMadeHere, managingApp } from './access.ts';
import { OB_ERROR_CODES, ObError, useObConventions } from './errors.ts';

export const CBPII_PREFIX = '/open-banking/v4.0/cbpii';

const Text = (maxLength: number) => Type.String({ minLength: 1, maxLength });
// DebtorAccount's optional fields the specification allows (Name, SecondaryIdentification, Proxy) pass the
// schema and are refused by name, so a third party learns which one the bank does not take.
const NewConsent = Type.Object({
  Data: Type.Object(
    {
      ExpirationDateTime: Type.Optional(Type.String({ format: 'date-time' })),
      DebtorAccount: Type.Object(
        { SchemeName: Type.String(), Identification: Text(256) },
        { additionalProperties: true },
      ),
    },
    { additionalProperties: false },
  ),
});
const NewConfirmation = Type.Object({
  Data: Type.Object(
    {
      ConsentId: Text(128),
      Reference: Text(35),
      InstructedAmount: Type.Object(
        {
          Amount: Type.String({ pattern: '^\\d{1,13}$|^\\d{1,13}\\.\\d{1,5}$' }),
          Currency: Type.String({ pattern: '^[A-Z]{3}$' }),
        },
        { additionalProperties: false },
      ),
    },
    { additionalProperties: false },
  ),
});
const Hidden = { hide: true } as const;

/**
 * The OB terms kept in the consent's details: the debtor's IBAN only (normalised). The account's name is
 * not asked for nor kept: the bank knows it, and it is personal data the consent does not need.
 */
interface ObFundsTerms {
  obDebtorIban?: string;
}

const OB_STATUS: Readonly<Record<Consent['status'], string>> = {
  awaiting_authorisation: 'AWAU',
  authorised: 'AUTH',
  rejected: 'RJCT',
  revoked: 'CANC',
  expired: 'EXPD',
  // Funds-confirmation consents are never used up; listed for completeness of the mapping.
  consumed: 'CANC',
};

export function registerUkObCbpiiRoutes(
  app: App,
  deps: { consents: Consents; accounts: Accounts; payments: Payments; publicUrl: string },
  gateway: ReturnType<typeof createGateway>,
): void {
  const { consents, accounts, payments, publicUrl } = deps;
  const self = (path: string) => `${publicUrl}${CBPII_PREFIX}${path}`;

  scoped(app, (scope) => {
    useObConventions(scope);

    const appOf = (request: FastifyRequest) =>
      managingApp(request, 'funds_confirmation', 'funds-confirmation consents');
    const consentOf = (request: FastifyRequest, id: string) =>
      consentMadeHere(consents, appOf(request), id, 'funds_confirmation', 'obDebtorIban');

    scope.post(
      `${CBPII_PREFIX}/funds-confirmation-consents`,
      { schema: { ...Hidden, body: NewConsent }, onRequest: gateway('consents') },
      async (request, reply) => {
        const clientId = appOf(request);
        const data = request.body.Data;
        const debtor = data.DebtorAccount as Record<string, unknown> & {
          SchemeName: string;
          Identification: string;
        };
        const unsupported = Object.keys(debtor).filter(
          (name) => name !== 'SchemeName' && name !== 'Identification',
        );
        if (unsupported.length > 0) {
          throw ObError.of(
            400,
            OB_ERROR_CODES.fieldInvalid,
            `not taken by this bank: ${unsupported.map((name) => `Data.DebtorAccount.${name}`).join(', ')}`,
            `Data.DebtorAccount.${unsupported[0]}`,
          );
        }
        if (debtor.SchemeName !== 'UK.OBIE.IBAN') {
          throw ObError.of(
            400,
            OB_ERROR_CODES.fieldInvalid,
            'only UK.OBIE.IBAN debtor accounts are offered',
            'Data.DebtorAccount.SchemeName',
          );
        }
        const iban = normaliseIban(debtor.Identification);
        if (!isValidIBAN(iban)) {
          throw ObError.of(
            400,
            OB_ERROR_CODES.fieldInvalid,
            'is not a valid IBAN',
            'Data.DebtorAccount.Identification',
          );
        }
        // Open-ended in the specification's words; the bank re-authenticates every 180 days (PSD2 RTS Art. 10).
        const expiresAt = data.ExpirationDateTime
          ? new Date(data.ExpirationDateTime)
          : new Date(Date.now() + CONSENT_VALIDITY_MAX_MS - 60_000);
        const outcome = await consents.create(clientId, {
          type: 'funds_confirmation',
          details: { obDebtorIban: iban } satisfies ObFundsTerms,
          expiresAt,
        });
        if (!outcome.ok) {
          throw ObError.of(
            400,
            OB_ERROR_CODES.fieldInvalid,
            'ExpirationDateTime must be in the future and at most 180 days ahead',
            'Data.ExpirationDateTime',
          );
        }
        const path = `/funds-confirmation-consents/${outcome.consent.id}`;
        return reply.code(201).send(consentJson(outcome.consent, self(path)));
      },
    );

    const ConsentParams = { ...Hidden, params: Type.Object({ ConsentId: Type.String() }) };
    scope.get(
      `${CBPII_PREFIX}/funds-confirmation-consents/:ConsentId`,
      { schema: ConsentParams, onRequest: gateway('consents') },
      async (request) => {
        const consent = await consentOf(request, request.params.ConsentId);
        return consentJson(consent, self(`/funds-confirmation-consents/${consent.id}`));
      },
    );

    scope.delete(
      `${CBPII_PREFIX}/funds-confirmation-consents/:ConsentId`,
      { schema: ConsentParams, onRequest: gateway('consents') },
      async (request, reply) => {
        const consent = await consentOf(request, request.params.ConsentId);
        // Deleting an already ended consent changes nothing and is no error: the TPP's intent is met.
        if (consent.status === 'awaiting_authorisation' || consent.status === 'authorised') {
          await consents.revoke(consent);
        }
        return reply.code(204).send();
      },
    );

    scope.post(
      `${CBPII_PREFIX}/funds-confirmations`,
      {
        schema: { ...Hidden, body: NewConfirmation },
        onRequest: gateway('funds-confirmation', 'funds_confirmation'),
      },
      async (request, reply) => {
        const access = accessOf(request);
        const data = request.body.Data;
        const consent = access.consents.find(
          (c) => c.type === 'funds_confirmation' && 'obDebtorIban' in c.details,
        );
        if (access.subject === access.clientId || !consent) {
          throw ObError.of(
            403,
            OB_ERROR_CODES.narrative,
            'this needs a token bound to a funds-confirmation consent the customer authorised',
          );
        }
        if (consent.id !== data.ConsentId) {
          throw ObError.of(
            400,
            OB_ERROR_CODES.resourceNotFound,
            'the token was not issued under this ConsentId',
            'Data.ConsentId',
          );
        }
        const accountId = consent.accountIds?.[0];
        const account = accountId ? await accounts.findForCustomer(access.subject, accountId) : undefined;
        if (!account) {
          throw ObError.of(400, OB_ERROR_CODES.narrative, 'the consented account no longer exists');
        }
        // The consent page lets the customer tick any of their accounts: only the consent's DebtorAccount
        // answers. Any other is refused, never answered for (the app asked about that account only).
        if (normaliseIban(account.iban) !== (consent.details as ObFundsTerms).obDebtorIban) {
          throw ObError.of(
            403,
            OB_ERROR_CODES.narrative,
            "the customer authorised another account than the consent's DebtorAccount",
          );
        }
        const { Amount, Currency } = data.InstructedAmount;
        const exponent = currencyExponent(Currency);
        const amount = parseAmount(Amount);
        if (exponent === undefined || !amount || amount.scale !== exponent) {
          throw ObError.of(
            400,
            OB_ERROR_CODES.fieldInvalid,
            exponent === undefined
              ? `${Currency} is not a currency this bank holds`
              : `must be greater than zero with the ${exponent} decimals of ${Currency}`,
            exponent === undefined ? 'Data.InstructedAmount.Currency' : 'Data.InstructedAmount.Amount',
          );
        }
        // An amount in another currency than the account's can never be paid from it.
        const available =
          Currency === account.currency && (await payments.fundsAvailable(account, amount.minor));
        const id = uuidv4();
        return reply.code(201).send({
          Data: {
            FundsConfirmationId: id,
            ConsentId: consent.id,
            CreationDateTime: new Date().toISOString(),
            FundsAvailable: available,
            Reference: data.Reference,
            InstructedAmount: { Amount, Currency },
          },
          Links: { Self: self(`/funds-confirmations/${id}`) },
          Meta: {},
        });
      },
    );
  });
}

function consentJson(consent: Consent, selfUrl: string) {
  const terms = consent.details as ObFundsTerms;
  return {
    Data: {
      ConsentId: consent.id,
      CreationDateTime: consent.createdAt.toISOString(),
      Status: OB_STATUS[consent.status],
      StatusUpdateDateTime: consent.statusUpdatedAt.toISOString(),
      ExpirationDateTime: consent.expiresAt.toISOString(),
      DebtorAccount: { SchemeName: 'UK.OBIE.IBAN', Identification: terms.obDebtorIban ?? '' },
    },
    Links: { Self: selfUrl },
    Meta: {},
  };
}
