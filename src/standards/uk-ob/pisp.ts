// UK Open Banking Read/Write v4.0, Payment Initiation API (`/open-banking/v4.0/pisp`), first slice: domestic
// payment consents and domestic payments over the bank's own. A domestic payment consent is a
// `payment_initiation` consent (authorised at the same consent page through the same OAuth flow); its
// amount, currency, creditor and reference are the terms the bank's dynamic linking checks, and the OB
// Initiation is kept beside them so it is echoed, and compared, exactly. A domestic payment is a payment of
// src/payments/ initiated by the app under that consent. The contract is the official file
// (specs/uk-open-banking-v4.0/payment-initiation-openapi.yaml), so these routes stay out of /openapi.json.
//
// JWS: the specification requires a detached `x-jws-signature` on requests and responses (Read/Write API
// profile, "Message Signing"). Responses are signed with the bank's published token-signing key; a request
// with a body is refused (400 U015 to U019) before anything is created unless it is signed by a key of the
// calling app's registered JWKS with the profile's claims (jws.ts, requestSignatureCheck).
import { isDeepStrictEqual } from 'node:util';
import type { FastifyRequest } from 'fastify';
import { isValidIBAN } from 'ibantools';
import { Type } from 'typebox';
import { normaliseIban } from '../../accounts/iban.ts';
import type { Accounts } from '../../accounts/service.ts';
import type { Consents } from '../../consents/service.ts';
import type { Consent } from '../../consents/store.ts';
import type { Db } from '../../db/db.ts';
import type { createGateway } from '../../gateway/gateway.ts';
import { type App, scoped } from '../../http/app.ts';
import { type IdempotentResponse, requestHash, runIdempotent } from '../../idempotency.ts';
import { currencyExponent, type Minor, parseAmount } from '../../money.ts';
import type { Payment, PaymentProblem, Payments } from '../../payments/service.ts';
import type { PaymentStatus } from '../../payments/store.ts';
import { accessOf, consentMadeHere, managingApp, paymentGrantOf, UUID } from './access.ts';
import { OB_ERROR_CODES, ObError, useObConventions } from './errors.ts';
import { type MessageSigning, signedMessages } from './jws.ts';

export const PISP_PREFIX = '/open-banking/v4.0/pisp';
// An unauthorised domestic payment consent lapses after a day: the customer authorises it at once or not.
export const PAYMENT_CONSENT_VALIDITY_MS = 24 * 60 * 60 * 1000;
// x-idempotency-key (Payment Initiation API, parameters): at most 40 characters, no space at either end.
const IDEMPOTENCY_KEY = /^(?!\s)(.*)(\S)$/;
const IDEMPOTENCY_KEY_MAX = 40;
// The bank's own payment consents take creditor names of at most 140 characters (src/consents/routes.ts).
const CREDITOR_NAME_MAX = 140;

const Text = (maxLength: number) => Type.String({ minLength: 1, maxLength });
// The Initiation's fields the bank honours are typed; the specification's others pass the schema and are
// refused by name (`unsupportedIn`), so a third party learns which field, not merely that one is unknown.
export const Initiation = Type.Object(
  {
    InstructionIdentification: Text(35),
    EndToEndIdentification: Text(35),
    InstructedAmount: Type.Object(
      {
        Amount: Type.String({ pattern: '^\\d{1,13}$|^\\d{1,13}\\.\\d{1,5}$' }),
        Currency: Type.String({ pattern: '^[A-Z]{3}$' }),
      },
      { additionalProperties: false },
    ),
    CreditorAccount: Type.Object(
      { SchemeName: Type.String(), Identification: Text(256), Name: Text(350) },
      { additionalProperties: true },
    ),
    RemittanceInformation: Type.Optional(
      Type.Object({ Unstructured: Type.Optional(Type.Array(Text(140))) }, { additionalProperties: true }),
    ),
  },
  { additionalProperties: true },
);
const Risk = Type.Record(Type.String(), Type.Unknown());
const NewConsent = Type.Object({
  Data: Type.Object({ Initiation }, { additionalProperties: true }),
  Risk,
});
const NewPayment = Type.Object({
  Data: Type.Object({ ConsentId: Text(128), Initiation }, { additionalProperties: false }),
  Risk,
});
const Hidden = { hide: true } as const;
const IdempotencyHeaders = Type.Object({ 'x-idempotency-key': Type.Optional(Type.String()) });
export type ObInitiation = Record<string, unknown> & {
  InstructedAmount: { Amount: string; Currency: string };
  CreditorAccount: { SchemeName: string; Identification: string; Name: string };
  RemittanceInformation?: { Unstructured?: string[] };
};

/** The OB terms kept with the bank's own (instructedAmount, creditor, reference) in the consent's details. */
interface ObPaymentTerms {
  obInitiation?: ObInitiation;
  obRisk?: Record<string, unknown>;
}

// OBWriteDomesticConsentResponse5 has four statuses: a revoked or lapsed consent can no longer be used,
// which the specification calls rejected.
export const CONSENT_STATUS: Readonly<Record<Consent['status'], string>> = {
  awaiting_authorisation: 'AWAU',
  authorised: 'AUTH',
  consumed: 'COND',
  rejected: 'RJCT',
  revoked: 'RJCT',
  expired: 'RJCT',
};

// The ISO 20022 payment statuses of OBWriteDomesticResponse5. An internal payment is settled when the
// creditor's account here is credited (ACCC); a domestic one when it left the debtor's (ACSC). A return
// undoes a settled payment, which the enum has no word for: it is reported rejected, with the reason.
/**
 * A payment's whole lifecycle as payment-details lists it, one entry per change with its reason. RCVD is not
 * among that list's statuses: a payment just received is pending.
 */
export function paymentLifecycle(payment: Payment) {
  return payment.statusHistory.map((change) => {
    const status = paymentStatus(change.status, payment.type);
    const shown = status === 'RCVD' ? 'PDNG' : status;
    return {
      PaymentTransactionId: payment.id,
      Status: shown,
      StatusUpdateDateTime: new Date(change.at).toISOString(),
      ...statusDetail(shown, change.code),
    };
  });
}

/** A payment-details entry's reason: the bank's code, in the specification's free-text field. */
export const statusDetail = (status: string, reason: string | null | undefined) =>
  reason ? { StatusDetail: { Status: status, StatusReasonDescription: reason.slice(0, 256) } } : {};

export function paymentStatus(status: PaymentStatus, type: Payment['type']): string {
  switch (status) {
    case 'received':
      return 'RCVD';
    case 'awaiting_sca':
      return 'PDNG';
    case 'accepted':
    case 'settling':
      return 'ACSP';
    case 'settled':
      return type === 'internal' ? 'ACCC' : 'ACSC';
    case 'rejected':
    case 'returning':
    case 'returned':
      return 'RJCT';
  }
}

export function registerUkObPispRoutes(
  app: App,
  deps: {
    db: Db;
    consents: Consents;
    payments: Payments;
    accounts: Accounts;
  } & MessageSigning,
  gateway: ReturnType<typeof createGateway>,
): void {
  const { db, consents, payments, publicUrl } = deps;
  const self = (path: string) => `${publicUrl}${PISP_PREFIX}${path}`;

  scoped(app, (scope) => {
    useObConventions(scope);
    const signed = signedMessages(scope, deps);

    const appOf = (request: FastifyRequest) => managingApp(request, 'payments', 'payment consents');
    const { grantOf } = paymentConsentReads(scope, gateway, {
      ...deps,
      resource: '/domestic-payment-consents',
      marker: 'obInitiation',
      what: 'a domestic payment consent',
      self,
      consentJson,
      debitOf: (consent) => {
        const { Amount, Currency } = (consent.details as ObPaymentTerms).obInitiation?.InstructedAmount ?? {};
        const amount = parseAmount(String(Amount));
        return amount && Currency !== undefined ? { currency: Currency, minor: amount.minor } : undefined;
      },
    });

    scope.post(
      `${PISP_PREFIX}/domestic-payment-consents`,
      {
        schema: { ...Hidden, body: NewConsent, headers: IdempotencyHeaders },
        onRequest: gateway('consents'),
        preValidation: signed,
      },
      async (request, reply) => {
        const clientId = appOf(request);
        const key = idempotencyKeyOf(request.headers['x-idempotency-key']);
        const data = request.body.Data as Record<string, unknown> & { Initiation: ObInitiation };
        const unsupported = [
          ...Object.keys(data)
            .filter((name) => name !== 'Initiation')
            .map((name) => `Data.${name}`),
          ...unsupportedIn(data.Initiation),
        ];
        if (unsupported.length > 0) {
          throw ObError.of(
            400,
            OB_ERROR_CODES.fieldInvalid,
            `not offered by this bank: ${unsupported.join(', ')}`,
            unsupported[0],
          );
        }
        const terms = bankTerms(data.Initiation);
        const outcome = await recordPaymentConsent(
          db,
          consents,
          { scope: 'uk-ob-pisp-consent', clientId, key, body: request.body },
          {
            ...terms,
            obInitiation: data.Initiation,
            obRisk: request.body.Risk,
          } satisfies ObPaymentTerms & Record<string, unknown>,
          (consent) => consentJson(consent, self(`/domestic-payment-consents/${consent.id}`)),
        );
        return reply.code(outcome.statusCode).send(outcome.body);
      },
    );

    scope.post(
      `${PISP_PREFIX}/domestic-payments`,
      {
        schema: { ...Hidden, body: NewPayment, headers: IdempotencyHeaders },
        onRequest: gateway('payments', 'payments'),
        preValidation: signed,
      },
      async (request, reply) => {
        const key = idempotencyKeyOf(request.headers['x-idempotency-key']);
        const data = request.body.Data;
        const { clientId, customerId, consent } = grantOf(request, data.ConsentId);
        const authorised = (consent.details as ObPaymentTerms).obInitiation;
        // Dynamic linking, the specification's way: the Initiation is the consent's, field for field.
        if (!isDeepStrictEqual(data.Initiation, authorised)) {
          throw ObError.of(
            400,
            OB_ERROR_CODES.fieldInvalid,
            'the Initiation differs from the one in the consent the customer authorised',
            'Data.Initiation',
          );
        }
        const terms = bankTerms(data.Initiation as ObInitiation);
        const outcome = await payments.initiate(
          { kind: 'app', clientId, customerId, consent },
          key,
          terms,
          payerContext(request),
        );
        if (!outcome.ok) throw paymentError(outcome.code, outcome.detail);
        return reply.code(201).send(paymentJson(outcome.payment, consent, self));
      },
    );

    paymentReads(scope, gateway, {
      ...deps,
      resource: '/domestic-payments',
      idParam: 'DomesticPaymentId',
      marker: 'obInitiation',
      what: 'domestic payment',
      self,
      paymentJson,
    });
  });
}

/** The specification's fields in an Initiation (or in its CreditorAccount, its remittance) not honoured. */
function unsupportedIn(initiation: ObInitiation): string[] {
  const refused: string[] = [];
  const honoured = new Set([
    'InstructionIdentification',
    'EndToEndIdentification',
    'InstructedAmount',
    'CreditorAccount',
    'RemittanceInformation',
  ]);
  for (const name of Object.keys(initiation)) {
    if (!honoured.has(name)) refused.push(`Data.Initiation.${name}`);
  }
  for (const name of Object.keys(initiation.CreditorAccount)) {
    if (!['SchemeName', 'Identification', 'Name'].includes(name)) {
      refused.push(`Data.Initiation.CreditorAccount.${name}`);
    }
  }
  for (const name of Object.keys(initiation.RemittanceInformation ?? {})) {
    if (name !== 'Unstructured') refused.push(`Data.Initiation.RemittanceInformation.${name}`);
  }
  return refused;
}

/**
 * A payment consent recorded as every payment-consent resource records one: the bank's payment_initiation
 * consent holding `details`, open for a day to be authorised, answered 201 with `answer(consent)`; once per
 * x-idempotency-key in `scope` (per app), so a retry with the same key and body is answered as the first was.
 */
export function recordPaymentConsent(
  db: Db,
  consents: Consents,
  call: { readonly scope: string; readonly clientId: string; readonly key: string; readonly body: unknown },
  details: Record<string, unknown>,
  answer: (consent: Consent) => unknown,
): Promise<IdempotentResponse> {
  const { scope, clientId, key, body } = call;
  return runIdempotent(db, { scope: `${scope}:${clientId}`, key, hash: requestHash(body) }, async (tx) => {
    const created = await consents.create(
      clientId,
      {
        type: 'payment_initiation',
        details,
        expiresAt: new Date(Date.now() + PAYMENT_CONSENT_VALIDITY_MS),
      },
      tx,
    );
    if (!created.ok) throw new Error(`a payment consent within its validity was refused: ${created.code}`);
    return { statusCode: 201, body: answer(created.consent) };
  });
}

/**
 * What every payment-consent resource of the specification (domestic, international) has alike: the
 * consent read back by the app that made it, the customer's funds check under it, and the customer's
 * grant behind a payment. `marker` is the key the resource's Initiation is kept under in a consent's
 * details, which tells its consents from the others'; `debitOf` is what a payment under a consent debits.
 */
export function paymentConsentReads(
  scope: App,
  gateway: ReturnType<typeof createGateway>,
  options: {
    consents: Consents;
    accounts: Accounts;
    payments: Payments;
    resource: string;
    marker: string;
    what: string;
    self: (path: string) => string;
    consentJson: (consent: Consent, selfUrl: string) => unknown;
    debitOf: (consent: Consent) => { currency: string; minor: Minor } | undefined;
  },
) {
  const { consents, accounts, payments, resource, marker, self } = options;
  const consentOf = (clientId: string, id: string) =>
    consentMadeHere(consents, clientId, id, 'payment_initiation', marker);
  /** The customer's token under the consent `consentId` the customer authorised. */
  const grantOf = (request: FastifyRequest, consentId: string) =>
    paymentGrantOf(request, consentId, marker, options.what);

  const ConsentParams = { ...Hidden, params: Type.Object({ ConsentId: Type.String() }) };
  scope.get(
    `${PISP_PREFIX}${resource}/:ConsentId`,
    { schema: ConsentParams, onRequest: gateway('consents') },
    async (request) => {
      const consent = await consentOf(accessOf(request).clientId, request.params.ConsentId);
      return options.consentJson(consent, self(`${resource}/${consent.id}`));
    },
  );

  scope.get(
    `${PISP_PREFIX}${resource}/:ConsentId/funds-confirmation`,
    { schema: ConsentParams, onRequest: gateway('payments', 'payments') },
    async (request) => {
      const { customerId, consent } = grantOf(request, request.params.ConsentId);
      if (consent.status !== 'authorised') {
        throw ObError.of(400, OB_ERROR_CODES.narrative, 'the consent was already used for its payment');
      }
      const accountId = consent.accountIds?.[0];
      const account = accountId ? await accounts.findForCustomer(customerId, accountId) : undefined;
      if (!account) throw ObError.of(400, OB_ERROR_CODES.narrative, 'the consented account no longer exists');
      // A consent in another currency than the account's can never be paid from it.
      const debit = options.debitOf(consent);
      const available =
        debit !== undefined &&
        debit.currency === account.currency &&
        (await payments.fundsAvailable(account, debit.minor));
      return {
        Data: {
          FundsAvailableResult: {
            FundsAvailableDateTime: new Date().toISOString(),
            FundsAvailable: available,
          },
        },
        Links: { Self: self(`${resource}/${consent.id}/funds-confirmation`) },
        Meta: {},
      };
    },
  );
  return { grantOf };
}

/**
 * What every payment resource of the specification (domestic, international) has alike: a payment the app
 * made through it, and its lifecycle (payment-details). A payment of another resource, of another app or
 * of the bank's own API does not exist here: its consent's details hold no `marker`.
 */
export function paymentReads(
  scope: App,
  gateway: ReturnType<typeof createGateway>,
  options: {
    consents: Consents;
    payments: Payments;
    resource: string;
    idParam: string;
    marker: string;
    what: string;
    self: (path: string) => string;
    paymentJson: (payment: Payment, consent: Consent, self: (path: string) => string) => unknown;
  },
): void {
  const { consents, payments, resource, idParam, self } = options;
  const paymentOf = async (request: FastifyRequest) => {
    const id = (request.params as Record<string, string>)[idParam] ?? '';
    const clientId = accessOf(request).clientId;
    const payment = UUID.test(id) ? await payments.get({ clientId }, id) : undefined;
    const consent = payment?.consentId ? await consents.getForClient(clientId, payment.consentId) : undefined;
    if (!payment || !consent || !(options.marker in consent.details)) {
      throw ObError.of(
        400,
        OB_ERROR_CODES.resourceNotFound,
        `no ${options.what} with this ${idParam}`,
        idParam,
      );
    }
    return { payment, consent };
  };
  const PaymentParams = { ...Hidden, params: Type.Object({ [idParam]: Type.String() }) };

  scope.get(
    `${PISP_PREFIX}${resource}/:${idParam}`,
    { schema: PaymentParams, onRequest: gateway('payments', 'payments') },
    async (request) => {
      const { payment, consent } = await paymentOf(request);
      return options.paymentJson(payment, consent, self);
    },
  );

  scope.get(
    `${PISP_PREFIX}${resource}/:${idParam}/payment-details`,
    { schema: PaymentParams, onRequest: gateway('payments', 'payments') },
    async (request) => {
      const { payment } = await paymentOf(request);
      return {
        Data: { PaymentStatus: paymentLifecycle(payment) },
        Links: { Self: self(`${resource}/${payment.id}/payment-details`) },
        Meta: {},
      };
    },
  );
}

/** The Initiation in the bank's own terms, refusing what the bank cannot pay: a 400 before anything exists. */
export function bankTerms(initiation: ObInitiation) {
  const { Amount, Currency } = initiation.InstructedAmount;
  const exponent = currencyExponent(Currency);
  if (exponent === undefined) {
    throw ObError.of(
      400,
      OB_ERROR_CODES.fieldInvalid,
      `${Currency} is not a currency this bank pays in`,
      'Data.Initiation.InstructedAmount.Currency',
    );
  }
  const amount = parseAmount(Amount);
  if (!amount || amount.scale !== exponent) {
    throw ObError.of(
      400,
      OB_ERROR_CODES.fieldInvalid,
      `must be greater than zero with the ${exponent} decimals of ${Currency}`,
      'Data.Initiation.InstructedAmount.Amount',
    );
  }
  const creditor = initiation.CreditorAccount;
  if (creditor.SchemeName !== 'UK.OBIE.IBAN') {
    throw ObError.of(
      400,
      OB_ERROR_CODES.fieldInvalid,
      'only UK.OBIE.IBAN creditor accounts are offered',
      'Data.Initiation.CreditorAccount.SchemeName',
    );
  }
  const iban = normaliseIban(creditor.Identification);
  if (!isValidIBAN(iban)) {
    throw ObError.of(
      400,
      OB_ERROR_CODES.fieldInvalid,
      'is not a valid IBAN',
      'Data.Initiation.CreditorAccount.Identification',
    );
  }
  if (creditor.Name.length > CREDITOR_NAME_MAX) {
    throw ObError.of(
      400,
      OB_ERROR_CODES.fieldInvalid,
      `at most ${CREDITOR_NAME_MAX} characters here`,
      'Data.Initiation.CreditorAccount.Name',
    );
  }
  const lines = initiation.RemittanceInformation?.Unstructured ?? [];
  if (lines.length > 1) {
    throw ObError.of(
      400,
      OB_ERROR_CODES.fieldInvalid,
      'one line of remittance information at most',
      'Data.Initiation.RemittanceInformation.Unstructured',
    );
  }
  return {
    instructedAmount: { amount: Amount, currency: Currency },
    creditor: { name: creditor.Name, iban: creditor.Identification },
    ...(lines[0] !== undefined && { reference: lines[0] }),
  };
}

/** x-idempotency-key is required on every POST of this API (Payment Initiation API, parameters). */
export function idempotencyKeyOf(header: string | string[] | undefined): string {
  if (typeof header !== 'string' || header.length > IDEMPOTENCY_KEY_MAX || !IDEMPOTENCY_KEY.test(header)) {
    throw ObError.of(
      400,
      OB_ERROR_CODES.headerInvalid,
      `x-idempotency-key is required: up to ${IDEMPOTENCY_KEY_MAX} characters, no space at either end`,
    );
  }
  return header;
}

// The payer's context for fraud screening, as src/payments/routes.ts reads it from an app's request.
export function payerContext(request: FastifyRequest) {
  const header = (name: string) => {
    const value = request.headers[name];
    return typeof value === 'string' && value.length <= 512 ? value : undefined;
  };
  const ip = header('x-fapi-customer-ip-address');
  const userAgent = header('x-customer-user-agent');
  return { ...(ip && { ip }), ...(userAgent && { userAgent }) };
}

/** The payment service's refusals in the statuses CreateDomesticPayments declares. */
export function paymentError(code: PaymentProblem, detail: string | undefined): ObError {
  const message = detail ? `${code}: ${detail}` : code;
  switch (code) {
    case 'consent_not_active':
      return new ObError(409, [
        {
          ErrorCode: OB_ERROR_CODES.narrative,
          Message: 'the consent was already used, revoked or has lapsed',
        },
      ]);
    case 'idempotency_key_reused':
      return new ObError(409, [
        {
          ErrorCode: OB_ERROR_CODES.headerInvalid,
          Message: 'this x-idempotency-key was used for another request',
        },
      ]);
    case 'consent_mismatch':
      return ObError.of(400, OB_ERROR_CODES.fieldInvalid, message, 'Data.Initiation');
    case 'invalid_creditor_iban':
      return ObError.of(400, OB_ERROR_CODES.fieldInvalid, message, 'Data.Initiation.CreditorAccount');
    default:
      return ObError.of(400, OB_ERROR_CODES.narrative, message);
  }
}

function consentJson(consent: Consent, selfUrl: string) {
  const terms = consent.details as ObPaymentTerms;
  return {
    Data: {
      ConsentId: consent.id,
      CreationDateTime: consent.createdAt.toISOString(),
      Status: CONSENT_STATUS[consent.status],
      StatusUpdateDateTime: consent.statusUpdatedAt.toISOString(),
      Initiation: terms.obInitiation,
    },
    Risk: terms.obRisk ?? {},
    Links: { Self: selfUrl },
    Meta: {},
  };
}

function paymentJson(payment: Payment, consent: Consent, self: (path: string) => string) {
  const status = paymentStatus(payment.status, payment.type);
  const updated = payment.statusHistory.at(-1)?.at ?? payment.createdAt.toISOString();
  return {
    Data: {
      DomesticPaymentId: payment.id,
      ConsentId: consent.id,
      CreationDateTime: payment.createdAt.toISOString(),
      Status: status,
      StatusUpdateDateTime: new Date(updated).toISOString(),
      ...(payment.rejectionCode && {
        StatusReason: [
          { StatusReasonCode: 'NARR', StatusReasonDescription: payment.rejectionCode.slice(0, 500) },
        ],
      }),
      Initiation: (consent.details as ObPaymentTerms).obInitiation,
    },
    Links: { Self: self(`/domestic-payments/${payment.id}`) },
    Meta: {},
  };
}
