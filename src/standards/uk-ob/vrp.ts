// UK Open Banking Read/Write v4.0, Variable Recurring Payments (`/open-banking/v4.0/pisp`, domestic VRPs) over
// the bank's mandates (src/mandates/). A domestic VRP consent IS a mandate: its ControlParameters are mapped
// onto the mandate's terms (per-payment limit, calendar day/week/month limits in UTC, expiry, one creditor at
// this bank), the customer authorises it at the bank's consent page as any mandate, and each domestic VRP is
// a mandate charge, so a real payment, fraud-screened, counted against the limits under the mandate's row
// lock. What the mandate cannot enforce exactly (a period aligned on the consent, a fortnight, a half-year, a
// year, a start date in the future, a creditor chosen per payment) is refused with a 400 naming the field, so
// a consent never promises a control the bank would not apply. The standard's own wording (ControlParameters,
// Initiation, Risk) is kept on the consent beside the bank's terms and echoed exactly; each VRP's Instruction
// is kept beside its charge (uk_ob_vrps). The contract is the official file
// (specs/uk-open-banking-v4.0/vrp-openapi.yaml), so these routes stay out of /openapi.json.
//
// Who calls: the spec file secures every operation with the app's client-credentials token (scope
// payments), as the bank's mandates are charged; the Read/Write profile's customer token, issued under this
// very consent at its authorisation, is accepted too for funds confirmation and payments.
import { isDeepStrictEqual } from 'node:util';
import type { FastifyRequest } from 'fastify';
import { isValidIBAN } from 'ibantools';
import { Type } from 'typebox';
import { v7 as uuidv7 } from 'uuid';
import { normaliseIban } from '../../accounts/iban.ts';
import type { Accounts } from '../../accounts/service.ts';
import type { Consents } from '../../consents/service.ts';
import type { Db, Sql } from '../../db/db.ts';
import type { createGateway } from '../../gateway/gateway.ts';
import { type App, scoped } from '../../http/app.ts';
import { requestHash, runIdempotent } from '../../idempotency.ts';
import type { Period } from '../../mandates/periods.ts';
import type { Charge, Mandate, Mandates, MandateTerms, Refusal } from '../../mandates/service.ts';
import { currencyExponent, parseAmount } from '../../money.ts';
import type { Payment, Payments } from '../../payments/service.ts';
import { parseTimestamp } from '../../time.ts';
import { accessOf, consentMadeHere, managingApp, UUID } from './access.ts';
import { OB_ERROR_CODES, ObError, useObConventions } from './errors.ts';
import { type MessageSigning, signedMessages } from './jws.ts';
import { idempotencyKeyOf, PISP_PREFIX, paymentStatus } from './pisp.ts';

export const VRP_PREFIX = PISP_PREFIX;

const SWEEPING = 'UK.OBIE.VRPType.Sweeping';
const VRP_TYPES = new Set([SWEEPING, 'UK.OBIE.VRPType.Other']);
// Each VRP is made while the customer is away, on the strength of the consent they authorised with SCA at
// the bank's page: the bank has no way to authenticate them again per payment.
const WITHOUT_SCA = 'UK.OBIE.SCANotRequired';
const AUTHENTICATION_METHODS = new Set(['UK.OBIE.SCA', WITHOUT_SCA]);
// The periods the mandate counts (src/mandates/periods.ts): calendar day, ISO week, calendar month, in UTC.
const CALENDAR_PERIODS: Readonly<Record<string, Period>> = { Day: 'day', Week: 'week', Month: 'month' };
// The standard's period types and arrays are small; the bounds keep a consent's terms one small read.
const PERIODIC_LIMITS_MAX = 6;
const CODES_MAX = 4;
// The reason the Read/Write VRP profile gives a payment that breaches its consent's ControlParameters
// (v3.1 named it UK.OBIE.Rules.FailsControlParameters): said in the message, with a four-letter NARR code.
const FAILS_CONTROL_PARAMETERS = 'UK.OBIE.Rules.FailsControlParameters';

const Text = (maxLength: number) => Type.String({ minLength: 1, maxLength });
const AmountPattern = '^\\d{1,13}$|^\\d{1,13}\\.\\d{1,5}$';
const Money = Type.Object(
  { Amount: Type.String({ pattern: AmountPattern }), Currency: Type.String({ pattern: '^[A-Z]{3}$' }) },
  { additionalProperties: false },
);
const Account = Type.Object(
  { SchemeName: Text(40), Identification: Text(256), Name: Text(70) },
  { additionalProperties: true },
);
const Remittance = Type.Object(
  { Unstructured: Type.Optional(Type.Array(Text(140), { maxItems: 10 })) },
  { additionalProperties: true },
);
// The fields the bank honours are typed; the specification's others pass the schema and are refused by name
// (`refuseUnknown`), so a third party learns which field, not merely that one is unknown.
const ControlParameters = Type.Object(
  {
    ValidFromDateTime: Type.Optional(Type.String()),
    ValidToDateTime: Type.Optional(Type.String()),
    MaximumIndividualAmount: Money,
    PeriodicLimits: Type.Array(
      Type.Object(
        {
          PeriodType: Type.String(),
          PeriodAlignment: Type.String(),
          Amount: Type.String({ pattern: AmountPattern }),
          Currency: Type.String({ pattern: '^[A-Z]{3}$' }),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: PERIODIC_LIMITS_MAX },
    ),
    VRPType: Type.Array(Text(40), { minItems: 1, maxItems: CODES_MAX }),
    PSUAuthenticationMethods: Type.Array(Text(40), { minItems: 1, maxItems: CODES_MAX }),
    PSUInteractionTypes: Type.Optional(
      Type.Array(Type.Union([Type.Literal('InSession'), Type.Literal('OffSession')]), { maxItems: 2 }),
    ),
  },
  { additionalProperties: true },
);
const Initiation = Type.Object(
  { CreditorAccount: Type.Optional(Account), RemittanceInformation: Type.Optional(Remittance) },
  { additionalProperties: true },
);
const Risk = Type.Record(Type.String(), Type.Unknown());
const NewConsent = Type.Object({
  Data: Type.Object(
    {
      ReadRefundAccount: Type.Optional(Type.Union([Type.Literal('Yes'), Type.Literal('No')])),
      ControlParameters,
      Initiation,
    },
    { additionalProperties: true },
  ),
  Risk,
});
const Instruction = Type.Object(
  {
    InstructionIdentification: Text(35),
    EndToEndIdentification: Text(35),
    InstructedAmount: Money,
    CreditorAccount: Account,
    RemittanceInformation: Type.Optional(Remittance),
  },
  { additionalProperties: true },
);
const NewVrp = Type.Object({
  Data: Type.Object(
    {
      ConsentId: Text(128),
      PSUAuthenticationMethod: Text(40),
      PSUInteractionType: Type.Optional(Type.Union([Type.Literal('InSession'), Type.Literal('OffSession')])),
      VRPType: Text(40),
      Initiation,
      Instruction,
    },
    { additionalProperties: true },
  ),
  Risk,
});
const FundsCheck = Type.Object({
  Data: Type.Object(
    { ConsentId: Text(128), Reference: Type.Optional(Text(35)), InstructedAmount: Money },
    { additionalProperties: false },
  ),
});
const Hidden = { hide: true } as const;
const IdempotencyHeaders = Type.Object({ 'x-idempotency-key': Type.Optional(Type.String()) });
const ConsentParams = { ...Hidden, params: Type.Object({ ConsentId: Type.String() }) };
const VrpParams = { ...Hidden, params: Type.Object({ DomesticVRPId: Type.String() }) };

type ObAccount = { SchemeName: string; Identification: string; Name: string } & Record<string, unknown>;
type ObRemittance = { Unstructured?: string[] } & Record<string, unknown>;
type ObInitiation = { CreditorAccount?: ObAccount; RemittanceInformation?: ObRemittance } & Record<
  string,
  unknown
>;
type ObControlParameters = {
  ValidFromDateTime?: string;
  ValidToDateTime?: string;
  MaximumIndividualAmount: { Amount: string; Currency: string };
  PeriodicLimits: { PeriodType: string; PeriodAlignment: string; Amount: string; Currency: string }[];
  VRPType: string[];
  PSUAuthenticationMethods: string[];
  PSUInteractionTypes?: string[];
} & Record<string, unknown>;

/** The standard's wording of the mandate's terms, kept on its consent beside the bank's own. */
interface ObVrpTerms {
  obControlParameters: ObControlParameters;
  obInitiation: ObInitiation;
  obRisk: Record<string, unknown>;
  obReadRefundAccount?: 'Yes' | 'No';
}

/** What a domestic VRP's request said beyond the charge (uk_ob_vrps.request). */
interface ObVrpRequest {
  Instruction: Record<string, unknown>;
  PSUAuthenticationMethod: string;
  PSUInteractionType?: string;
  VRPType: string;
}

// OBDomesticVRPConsentResponse's statuses: a revoked consent is cancelled, a lapsed one expired.
const CONSENT_STATUS: Readonly<Record<Mandate['status'], string>> = {
  awaiting_authorisation: 'AWAU',
  authorised: 'AUTH',
  rejected: 'RJCT',
  revoked: 'CANC',
  expired: 'EXPD',
};

export function registerUkObVrpRoutes(
  app: App,
  deps: {
    db: Db;
    consents: Consents;
    mandates: Mandates;
    payments: Payments;
    accounts: Accounts;
  } & MessageSigning,
  gateway: ReturnType<typeof createGateway>,
): void {
  const { db, consents, mandates, payments, accounts, publicUrl } = deps;
  const self = (path: string) => `${publicUrl}${VRP_PREFIX}${path}`;

  scoped(app, (scope) => {
    useObConventions(scope);
    // Every POST is signed by the app (jws.ts, as pisp.ts): refused before anything is created otherwise.
    const signed = signedMessages(scope, deps);

    const appOf = (request: FastifyRequest) => managingApp(request, 'payments', 'VRP consents');
    const consentOf = (clientId: string, id: string) =>
      consentMadeHere(consents, clientId, id, 'mandate', 'obControlParameters');
    /** The app's VRP consent as the mandate it is, with its standard's wording. */
    const vrpConsentOf = async (clientId: string, id: string) => {
      const consent = await consentOf(clientId, id);
      const mandate = await mandates.get({ clientId }, consent.id);
      if (!mandate) throw new Error(`VRP consent ${consent.id} has no mandate`);
      return { mandate, terms: consent.details as unknown as ObVrpTerms };
    };
    /**
     * The app paying under `consentId`: its own token (client credentials, scope payments), or the customer's
     * token the app redeemed at this consent's authorisation. Either way the consent must be the app's.
     */
    const payerOf = (request: FastifyRequest, consentId: string): string => {
      const access = accessOf(request);
      if (access.subject === access.clientId) return appOf(request);
      if (!access.consents.some((consent) => consent.id === consentId && consent.type === 'mandate')) {
        throw ObError.of(
          400,
          OB_ERROR_CODES.resourceNotFound,
          'the token was not issued under this ConsentId',
          'ConsentId',
        );
      }
      return access.clientId;
    };
    /** The debtor account the customer chose at authorisation, as the standard names an account. */
    const debtorAccountOf = async (accountId: string | null) => {
      const account = accountId ? await accounts.find(accountId) : undefined;
      return (
        account && {
          SchemeName: 'UK.OBIE.IBAN',
          Identification: account.iban,
          Name: account.name.slice(0, 70),
        }
      );
    };
    const consentJson = async (mandate: Mandate, terms: ObVrpTerms) => {
      const debtor = await debtorAccountOf(mandate.debtorAccountId);
      return {
        Data: {
          ConsentId: mandate.id,
          CreationDateTime: mandate.createdAt.toISOString(),
          Status: CONSENT_STATUS[mandate.status],
          StatusUpdateDateTime: mandate.statusUpdatedAt.toISOString(),
          ...(terms.obReadRefundAccount && { ReadRefundAccount: terms.obReadRefundAccount }),
          ControlParameters: terms.obControlParameters,
          Initiation: terms.obInitiation,
          ...(debtor && { DebtorAccount: debtor }),
        },
        Risk: terms.obRisk,
        Links: { Self: self(`/domestic-vrp-consents/${mandate.id}`) },
        Meta: {},
      };
    };
    const vrpJson = async (payment: Payment, mandate: Mandate, terms: ObVrpTerms, asked: ObVrpRequest) => {
      const status = paymentStatus(payment.status, payment.type);
      const updated = payment.statusHistory.at(-1)?.at ?? payment.createdAt.toISOString();
      const debtor = await debtorAccountOf(payment.debtorAccountId);
      return {
        Data: {
          DomesticVRPId: payment.id,
          ConsentId: mandate.id,
          CreationDateTime: payment.createdAt.toISOString(),
          Status: status,
          StatusUpdateDateTime: new Date(updated).toISOString(),
          ...(payment.rejectionCode && {
            StatusReason: [
              { StatusReasonCode: 'NARR', StatusReasonDescription: payment.rejectionCode.slice(0, 500) },
            ],
          }),
          // Refunds are paid back to the account charged (src/mandates/service.ts, refunds).
          ...(terms.obReadRefundAccount === 'Yes' && debtor && { Refund: debtor }),
          Initiation: terms.obInitiation,
          Instruction: asked.Instruction,
          ...(debtor && { DebtorAccount: debtor }),
        },
        Risk: terms.obRisk,
        Links: { Self: self(`/domestic-vrps/${payment.id}`) },
        Meta: {},
      };
    };

    scope.post(
      `${VRP_PREFIX}/domestic-vrp-consents`,
      {
        schema: { ...Hidden, body: NewConsent, headers: IdempotencyHeaders },
        onRequest: gateway('consents'),
        preValidation: signed,
      },
      async (request, reply) => {
        const clientId = appOf(request);
        const key = idempotencyKeyOf(request.headers['x-idempotency-key']);
        const data = request.body.Data as Record<string, unknown> & {
          ControlParameters: ObControlParameters;
          Initiation: ObInitiation;
          ReadRefundAccount?: 'Yes' | 'No';
        };
        refuseUnknown([
          ...Object.keys(data)
            .filter((name) => !['ReadRefundAccount', 'ControlParameters', 'Initiation'].includes(name))
            .map((name) => `Data.${name}`),
          ...unknownIn(data.ControlParameters, 'Data.ControlParameters', [
            'ValidFromDateTime',
            'ValidToDateTime',
            'MaximumIndividualAmount',
            'PeriodicLimits',
            'VRPType',
            'PSUAuthenticationMethods',
            'PSUInteractionTypes',
          ]),
          ...unknownInInitiation(data.Initiation, 'Data.Initiation'),
        ]);
        const checked = await mandates.check(mandateTermsOf(data.ControlParameters, data.Initiation));
        if (!checked.ok) throw termsError(checked);
        const terms: ObVrpTerms = {
          obControlParameters: data.ControlParameters,
          obInitiation: data.Initiation,
          obRisk: request.body.Risk,
          ...(data.ReadRefundAccount && { obReadRefundAccount: data.ReadRefundAccount }),
        };
        const outcome = await runIdempotent(
          db,
          { scope: `uk-ob-vrp-consent:${clientId}`, key, hash: requestHash(request.body) },
          async (tx) => {
            const made = await mandates.record(tx, clientId, checked.terms, { ...terms });
            if (!made.ok) throw termsError(made);
            // Not authorised yet, so no debtor account to read: the answer needs nothing outside `tx`.
            return { statusCode: 201, body: await consentJson(made.mandate, terms) };
          },
        );
        return reply.code(outcome.statusCode).send(outcome.body);
      },
    );

    scope.get(
      `${VRP_PREFIX}/domestic-vrp-consents/:ConsentId`,
      { schema: ConsentParams, onRequest: gateway('consents') },
      async (request) => {
        const { mandate, terms } = await vrpConsentOf(appOf(request), request.params.ConsentId);
        return consentJson(mandate, terms);
      },
    );

    // The app withdraws the consent: it is the mandate's, so the next payment is refused and every token
    // issued under it stops, as when the customer revokes it at the bank.
    scope.delete(
      `${VRP_PREFIX}/domestic-vrp-consents/:ConsentId`,
      { schema: ConsentParams, onRequest: gateway('consents') },
      async (request, reply) => {
        const consent = await consentOf(appOf(request), request.params.ConsentId);
        if (consent.status === 'awaiting_authorisation' || consent.status === 'authorised') {
          await consents.revoke(consent);
        } else if (consent.status !== 'revoked') {
          throw ObError.of(
            400,
            OB_ERROR_CODES.narrative,
            `the consent has ended already (${consent.status})`,
          );
        }
        return reply.code(204).send();
      },
    );

    scope.post(
      `${VRP_PREFIX}/domestic-vrp-consents/:ConsentId/funds-confirmation`,
      {
        schema: { ...ConsentParams, body: FundsCheck },
        onRequest: gateway('payments', 'payments'),
        preValidation: signed,
      },
      async (request, reply) => {
        const { ConsentId, InstructedAmount, Reference } = request.body.Data;
        if (ConsentId !== request.params.ConsentId) {
          throw ObError.of(
            400,
            OB_ERROR_CODES.fieldInvalid,
            'is not the ConsentId of the path',
            'Data.ConsentId',
          );
        }
        const { mandate } = await vrpConsentOf(payerOf(request, ConsentId), ConsentId);
        if (mandate.status !== 'authorised' || !mandate.debtorAccountId) {
          throw ObError.of(
            400,
            OB_ERROR_CODES.narrative,
            `the consent is not authorised (${mandate.status})`,
          );
        }
        if (InstructedAmount.Currency !== mandate.currency) {
          throw ObError.of(
            400,
            OB_ERROR_CODES.fieldInvalid,
            `the consent pays in ${mandate.currency}`,
            'Data.InstructedAmount.Currency',
          );
        }
        const amount = amountOf(InstructedAmount, 'Data.InstructedAmount.Amount');
        const account = await accounts.find(mandate.debtorAccountId);
        if (!account) throw new Error(`the account of mandate ${mandate.id} does not exist`);
        const available = await payments.fundsAvailable(account, amount);
        const now = new Date().toISOString();
        return reply.code(201).send({
          Data: {
            // Nothing is kept of a funds check (the specification offers no way to read it back).
            FundsConfirmationId: uuidv7(),
            ConsentId,
            CreationDateTime: now,
            ...(Reference !== undefined && { Reference }),
            FundsAvailableResult: {
              FundsAvailableDateTime: now,
              FundsAvailable: available ? 'Available' : 'NotAvailable',
            },
            InstructedAmount,
          },
        });
      },
    );

    scope.post(
      `${VRP_PREFIX}/domestic-vrps`,
      {
        schema: { ...Hidden, body: NewVrp, headers: IdempotencyHeaders },
        onRequest: gateway('payments', 'payments'),
        preValidation: signed,
      },
      async (request, reply) => {
        const key = idempotencyKeyOf(request.headers['x-idempotency-key']);
        const data = request.body.Data as typeof request.body.Data & { Initiation: ObInitiation };
        const clientId = payerOf(request, data.ConsentId);
        const { mandate, terms } = await vrpConsentOf(clientId, data.ConsentId);
        refuseUnknown([
          ...Object.keys(data)
            .filter(
              (name) =>
                ![
                  'ConsentId',
                  'PSUAuthenticationMethod',
                  'PSUInteractionType',
                  'VRPType',
                  'Initiation',
                  'Instruction',
                ].includes(name),
            )
            .map((name) => `Data.${name}`),
          ...unknownIn(data.Instruction, 'Data.Instruction', [
            'InstructionIdentification',
            'EndToEndIdentification',
            'InstructedAmount',
            'CreditorAccount',
            'RemittanceInformation',
          ]),
          ...unknownIn(data.Instruction.CreditorAccount, 'Data.Instruction.CreditorAccount', [
            'SchemeName',
            'Identification',
            'Name',
          ]),
          ...unknownIn(
            data.Instruction.RemittanceInformation ?? {},
            'Data.Instruction.RemittanceInformation',
            ['Unstructured'],
          ),
        ]);
        const reference = paymentMatchesConsent(request.body, terms);
        if (data.VRPType === SWEEPING) {
          // Sweeping moves money between the customer's own accounts: the creditor must be theirs.
          const creditor = await accounts.findByIban(
            normaliseIban(data.Instruction.CreditorAccount.Identification),
          );
          if (!creditor || creditor.customerId !== mandate.customerId) {
            throw ObError.of(
              400,
              OB_ERROR_CODES.narrative,
              `${FAILS_CONTROL_PARAMETERS}: a sweeping payment goes to an account of the customer's own`,
              'Data.VRPType',
            );
          }
        }
        const { Amount, Currency } = data.Instruction.InstructedAmount;
        if (Currency !== mandate.currency) {
          throw ObError.of(
            400,
            OB_ERROR_CODES.fieldInvalid,
            `the consent pays in ${mandate.currency}`,
            'Data.Instruction.InstructedAmount.Currency',
          );
        }
        amountOf(data.Instruction.InstructedAmount, 'Data.Instruction.InstructedAmount.Amount');
        const asked: ObVrpRequest = {
          Instruction: data.Instruction,
          PSUAuthenticationMethod: data.PSUAuthenticationMethod,
          ...(data.PSUInteractionType && { PSUInteractionType: data.PSUInteractionType }),
          VRPType: data.VRPType,
        };
        const outcome = await mandates.charge(
          clientId,
          mandate.id,
          key,
          { instructedAmount: { amount: Amount, currency: Currency }, reference },
          {
            fingerprint: request.body,
            record: (tx, charge) => recordVrp(tx, charge, asked),
          },
        );
        if (!outcome.ok) throw chargeError(outcome, terms.obControlParameters);
        const payment = await payments.get({ clientId }, outcome.charge.paymentId);
        if (!payment) throw new Error(`charge ${outcome.charge.id} names a missing payment`);
        const kept = await findVrp(db, clientId, payment.id);
        if (!kept) throw new Error(`VRP ${payment.id} was charged without its record`);
        return reply.code(201).send(await vrpJson(payment, mandate, terms, kept.request));
      },
    );

    /** The VRP the app made through this API, with its consent. */
    const vrpOf = async (request: FastifyRequest, id: string) => {
      const clientId = accessOf(request).clientId;
      const kept = UUID.test(id) ? await findVrp(db, clientId, id) : undefined;
      const payment = kept && (await payments.get({ clientId }, id));
      if (!kept || !payment) {
        throw ObError.of(
          400,
          OB_ERROR_CODES.resourceNotFound,
          'no domestic VRP with this DomesticVRPId',
          'DomesticVRPId',
        );
      }
      const { mandate, terms } = await vrpConsentOf(clientId, kept.consentId);
      return { payment, mandate, terms, asked: kept.request };
    };

    scope.get(
      `${VRP_PREFIX}/domestic-vrps/:DomesticVRPId`,
      { schema: VrpParams, onRequest: gateway('payments', 'payments') },
      async (request) => {
        const { payment, mandate, terms, asked } = await vrpOf(request, request.params.DomesticVRPId);
        return vrpJson(payment, mandate, terms, asked);
      },
    );

    scope.get(
      `${VRP_PREFIX}/domestic-vrps/:DomesticVRPId/payment-details`,
      { schema: VrpParams, onRequest: gateway('payments', 'payments') },
      async (request) => {
        const { payment } = await vrpOf(request, request.params.DomesticVRPId);
        // Its whole lifecycle, one entry per change (OBDomesticVRPDetails).
        return {
          Data: {
            PaymentStatus: payment.statusHistory.map((change) => {
              const status = paymentStatus(change.status, payment.type);
              return {
                PaymentTransactionId: payment.id,
                Status: status,
                StatusUpdateDateTime: new Date(change.at).toISOString(),
                StatusDetail: {
                  Status: change.status,
                  ...(change.code && { StatusReason: change.code.slice(0, 500) }),
                },
              };
            }),
          },
        };
      },
    );
  });
}

/** 400 naming the first field the bank does not offer, before anything exists. */
function refuseUnknown(unsupported: readonly string[]): void {
  if (unsupported.length > 0) {
    throw ObError.of(
      400,
      OB_ERROR_CODES.fieldInvalid,
      `not offered by this bank: ${unsupported.join(', ')}`,
      unsupported[0],
    );
  }
}

function unknownIn(object: Record<string, unknown>, path: string, honoured: readonly string[]): string[] {
  return Object.keys(object)
    .filter((name) => !honoured.includes(name))
    .map((name) => `${path}.${name}`);
}

/** An Initiation the bank can hold: one creditor account by IBAN, one line of remittance information. */
function unknownInInitiation(initiation: ObInitiation, path: string): string[] {
  return [
    ...unknownIn(initiation, path, ['CreditorAccount', 'RemittanceInformation']),
    ...unknownIn(initiation.CreditorAccount ?? {}, `${path}.CreditorAccount`, [
      'SchemeName',
      'Identification',
      'Name',
    ]),
    ...unknownIn(initiation.RemittanceInformation ?? {}, `${path}.RemittanceInformation`, ['Unstructured']),
  ];
}

const invalid = (message: string, path: string) =>
  ObError.of(400, OB_ERROR_CODES.fieldInvalid, message, path);

/** An amount in the currency's decimals, above zero: its minor units, or a 400 at `path`. */
function amountOf(money: { Amount: string; Currency: string }, path: string) {
  const exponent = currencyExponent(money.Currency);
  if (exponent === undefined) {
    throw invalid(
      `${money.Currency} is not a currency this bank pays in`,
      path.replace(/Amount$/, 'Currency'),
    );
  }
  const amount = parseAmount(money.Amount);
  if (!amount || amount.scale !== exponent) {
    throw invalid(`must be greater than zero with the ${exponent} decimals of ${money.Currency}`, path);
  }
  return amount.minor;
}

/**
 * ControlParameters and Initiation as the mandate's terms, exactly, or a 400 naming what the mandate could not
 * enforce. The bank's own rules on those terms (creditor at this bank, expiry within 180 days, no per-payment
 * maximum above a period's) are the mandate service's, answered by `termsError`.
 */
export function mandateTermsOf(control: ObControlParameters, initiation: ObInitiation): MandateTerms {
  const cp = 'Data.ControlParameters';
  const currency = control.MaximumIndividualAmount.Currency;
  amountOf(control.MaximumIndividualAmount, `${cp}.MaximumIndividualAmount.Amount`);
  const periodicLimits: { period: Period; maxAmount: string }[] = [];
  for (const [index, limit] of control.PeriodicLimits.entries()) {
    const path = `${cp}.PeriodicLimits.${index}`;
    const period = CALENDAR_PERIODS[limit.PeriodType];
    if (!period) {
      throw invalid(
        `${limit.PeriodType} limits are not offered: Day, Week (Monday to Sunday) and Month, calendar-aligned in UTC`,
        `${path}.PeriodType`,
      );
    }
    if (limit.PeriodAlignment !== 'Calendar') {
      throw invalid(
        'only Calendar alignment is offered (periods counted in UTC), not periods starting with the consent',
        `${path}.PeriodAlignment`,
      );
    }
    if (limit.Currency !== currency) {
      throw invalid(
        `every limit is in the MaximumIndividualAmount's currency, ${currency}`,
        `${path}.Currency`,
      );
    }
    amountOf(limit, `${path}.Amount`);
    if (periodicLimits.some((known) => known.period === period)) {
      throw invalid(`one limit per PeriodType`, `${path}.PeriodType`);
    }
    periodicLimits.push({ period, maxAmount: limit.Amount });
  }
  if (control.ValidFromDateTime !== undefined) {
    const from = parseTimestamp(control.ValidFromDateTime);
    if (!from) throw invalid('is not a date and time that exists', `${cp}.ValidFromDateTime`);
    // A mandate applies from its authorisation: a later start could not be enforced.
    if (from.getTime() > Date.now()) {
      throw invalid('a consent valid from a later date is not offered', `${cp}.ValidFromDateTime`);
    }
  }
  if (control.ValidToDateTime === undefined) {
    throw ObError.of(
      400,
      OB_ERROR_CODES.fieldMissing,
      'a VRP consent here ends at a ValidToDateTime at most 180 days ahead',
      `${cp}.ValidToDateTime`,
    );
  }
  const expiresAt = parseTimestamp(control.ValidToDateTime);
  if (!expiresAt) throw invalid('is not a date and time that exists', `${cp}.ValidToDateTime`);
  for (const [index, type] of control.VRPType.entries()) {
    if (!VRP_TYPES.has(type)) throw invalid(`${type} is not a VRP type`, `${cp}.VRPType.${index}`);
  }
  for (const [index, method] of control.PSUAuthenticationMethods.entries()) {
    if (!AUTHENTICATION_METHODS.has(method)) {
      throw invalid(`${method} is not an authentication method`, `${cp}.PSUAuthenticationMethods.${index}`);
    }
  }
  if (!control.PSUAuthenticationMethods.includes(WITHOUT_SCA)) {
    throw invalid(
      `each VRP is made without the customer authenticating again: ${WITHOUT_SCA} must be allowed`,
      `${cp}.PSUAuthenticationMethods`,
    );
  }
  const creditor = initiation.CreditorAccount;
  if (!creditor) {
    throw ObError.of(
      400,
      OB_ERROR_CODES.fieldMissing,
      'a VRP consent here names its creditor (one chosen per payment is not offered)',
      'Data.Initiation.CreditorAccount',
    );
  }
  if (creditor.SchemeName !== 'UK.OBIE.IBAN') {
    throw invalid(
      'only UK.OBIE.IBAN creditor accounts are offered',
      'Data.Initiation.CreditorAccount.SchemeName',
    );
  }
  if (!isValidIBAN(normaliseIban(creditor.Identification))) {
    throw invalid('is not a valid IBAN', 'Data.Initiation.CreditorAccount.Identification');
  }
  if ((initiation.RemittanceInformation?.Unstructured?.length ?? 0) > 1) {
    throw invalid(
      'one line of remittance information at most',
      'Data.Initiation.RemittanceInformation.Unstructured',
    );
  }
  return {
    currency,
    maxPerCharge: control.MaximumIndividualAmount.Amount,
    periodicLimits,
    creditor: { name: creditor.Name, iban: creditor.Identification },
    expiresAt,
  };
}

/** The mandate service's refusal of the terms, at the field of the request it comes from. */
function termsError(refusal: Refusal): ObError {
  const cp = 'Data.ControlParameters';
  const detail = refusal.detail ?? refusal.code;
  switch (refusal.code) {
    case 'unsupported_currency':
      return invalid(detail, `${cp}.MaximumIndividualAmount.Currency`);
    case 'validation_failed':
      return invalid(
        refusal.field === '/body/maxPerCharge'
          ? 'must not exceed any periodic limit: no payment that large could ever be made'
          : detail,
        refusal.field === '/body/maxPerCharge' ? `${cp}.MaximumIndividualAmount.Amount` : cp,
      );
    case 'invalid_creditor_iban':
      return invalid('is not a valid IBAN', 'Data.Initiation.CreditorAccount.Identification');
    case 'creditor_not_at_this_bank':
      return invalid(
        `VRPs are paid to an active account at this bank, in the consent's currency: ${detail}`,
        'Data.Initiation.CreditorAccount.Identification',
      );
    case 'invalid_expiry':
      return invalid('must be in the future and at most 180 days ahead', `${cp}.ValidToDateTime`);
    default:
      return ObError.of(400, OB_ERROR_CODES.narrative, detail);
  }
}

/**
 * The payment is the one the consent allows (the Read/Write VRP profile: Initiation and Risk as in the
 * consent, the creditor the consent's, the VRP type, authentication and interaction among the consent's):
 * the reference it carries, or a 400 naming the field. The amounts are the mandate's to check.
 */
function paymentMatchesConsent(
  body: { Data: Record<string, unknown>; Risk: Record<string, unknown> },
  terms: ObVrpTerms,
): string | undefined {
  const data = body.Data as {
    Initiation: unknown;
    Instruction: { CreditorAccount: ObAccount; RemittanceInformation?: ObRemittance };
    VRPType: string;
    PSUAuthenticationMethod: string;
    PSUInteractionType?: string;
  };
  const control = terms.obControlParameters;
  const fails = (what: string, path: string) =>
    ObError.of(400, OB_ERROR_CODES.narrative, `${FAILS_CONTROL_PARAMETERS}: ${what}`, path);
  if (!isDeepStrictEqual(data.Initiation, terms.obInitiation)) {
    throw invalid(
      'the Initiation differs from the one in the consent the customer authorised',
      'Data.Initiation',
    );
  }
  if (!isDeepStrictEqual(body.Risk, terms.obRisk)) {
    throw invalid('the Risk differs from the one in the consent', 'Risk');
  }
  if (!isDeepStrictEqual(data.Instruction.CreditorAccount, terms.obInitiation.CreditorAccount)) {
    throw fails('the creditor is not the consent’s', 'Data.Instruction.CreditorAccount');
  }
  if (!control.VRPType.includes(data.VRPType)) {
    throw fails(`the consent allows ${control.VRPType.join(', ')}`, 'Data.VRPType');
  }
  if (!control.PSUAuthenticationMethods.includes(data.PSUAuthenticationMethod)) {
    throw fails(
      `the consent allows ${control.PSUAuthenticationMethods.join(', ')}`,
      'Data.PSUAuthenticationMethod',
    );
  }
  if (data.PSUAuthenticationMethod !== WITHOUT_SCA) {
    throw invalid(
      `a VRP here is made without authenticating the customer again: ${WITHOUT_SCA}`,
      'Data.PSUAuthenticationMethod',
    );
  }
  const interactions = control.PSUInteractionTypes;
  if (data.PSUInteractionType && interactions && !interactions.includes(data.PSUInteractionType)) {
    throw fails(`the consent allows ${interactions.join(', ')}`, 'Data.PSUInteractionType');
  }
  const consentLines = terms.obInitiation.RemittanceInformation;
  const lines = data.Instruction.RemittanceInformation;
  // A consent that fixes the remittance information fixes it for every payment.
  if (consentLines && !isDeepStrictEqual(lines, consentLines)) {
    throw invalid('must be the consent’s', 'Data.Instruction.RemittanceInformation');
  }
  const unstructured = lines?.Unstructured ?? [];
  if (unstructured.length > 1) {
    throw invalid(
      'one line of remittance information at most',
      'Data.Instruction.RemittanceInformation.Unstructured',
    );
  }
  return unstructured[0];
}

/** The mandate's refusal of a charge in the statuses CreateDomesticVRP declares; nothing moved. */
function chargeError(refusal: Refusal, control: ObControlParameters): ObError {
  const detail = refusal.detail ?? refusal.code;
  switch (refusal.code) {
    case 'mandate_limit_exceeded': {
      const index = control.PeriodicLimits.findIndex(
        (limit) => CALENDAR_PERIODS[limit.PeriodType] === refusal.limit,
      );
      const path =
        refusal.limit === 'charge' || index < 0
          ? 'Data.ControlParameters.MaximumIndividualAmount'
          : `Data.ControlParameters.PeriodicLimits.${index}`;
      return ObError.of(400, OB_ERROR_CODES.narrative, `${FAILS_CONTROL_PARAMETERS}: ${detail}`, path);
    }
    case 'mandate_not_active':
      return new ObError(409, [
        { ErrorCode: OB_ERROR_CODES.narrative, Message: `the consent is not authorised: ${detail}` },
      ]);
    case 'idempotency_key_reused':
      return new ObError(409, [
        {
          ErrorCode: OB_ERROR_CODES.headerInvalid,
          Message: 'this x-idempotency-key was used for another request',
        },
      ]);
    case 'consent_mismatch':
      return invalid(detail, 'Data.Instruction.InstructedAmount.Currency');
    case 'validation_failed':
    case 'amount_scale_mismatch':
      return invalid(detail, 'Data.Instruction.InstructedAmount.Amount');
    case 'not_found':
      return ObError.of(400, OB_ERROR_CODES.resourceNotFound, 'no consent with this ConsentId', 'ConsentId');
    default:
      return ObError.of(400, OB_ERROR_CODES.narrative, detail);
  }
}

// ---- the VRPs' own record (uk_ob_vrps) ---------------------------------------------------------------------

async function recordVrp(tx: Sql, charge: Charge, request: ObVrpRequest): Promise<void> {
  await tx.query(
    `insert into uk_ob_vrps (payment_id, charge_id, consent_id, client_id, request, created_at)
     values ($1, $2, $3, $4, $5::text::jsonb, $6)`,
    [
      charge.paymentId,
      charge.id,
      charge.mandateId,
      charge.clientId,
      JSON.stringify(request),
      charge.createdAt,
    ],
  );
}

async function findVrp(
  sql: Sql,
  clientId: string,
  paymentId: string,
): Promise<{ consentId: string; request: ObVrpRequest } | undefined> {
  const [row] = await sql.query<{ consent_id: string; request: ObVrpRequest }>(
    'select consent_id, request from uk_ob_vrps where payment_id = $1 and client_id = $2',
    [paymentId, clientId],
  );
  return row && { consentId: row.consent_id, request: row.request };
}
