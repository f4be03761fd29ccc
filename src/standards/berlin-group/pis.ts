// Berlin Group NextGenPSD2 1.3.9, Payment Initiation Service and confirmation of funds (`/berlin-group/v1`),
// over the bank's own consents and payments. A payment initiation is the bank's `payment_initiation` consent
// (its id is the paymentId): the customer authorises it at the consent page through the OAuth flow its
// `_links.scaRedirect` starts, as the AIS consents are authorised, and src/payments/ then executes it as an
// app's payment under that consent (dynamic linking: the amount, creditor and reference are the consent's).
//
// When it executes: on the third party's next call about the payment once it is authorised (its get,
// status or cancel), under an idempotency key derived from the paymentId, so however many calls race, the
// money moves once, and every later call replays the same payment to read its status. The bank has no hook
// of its own at the moment of authorisation, and the redirect approach has the third party poll right after
// the customer comes back, so this is when it would execute anyway. Until then the payment can be cancelled,
// at once and without the customer's authorisation (no cancellation-authorisations): nothing has moved, and
// what is withdrawn is only the customer's own approval. The authorisation sub-resources are
// authorisations.ts's.
import type { FastifyRequest } from 'fastify';
import { isValidIBAN } from 'ibantools';
import { type Static, Type } from 'typebox';
import { normaliseIban } from '../../accounts/iban.ts';
import type { Accounts } from '../../accounts/service.ts';
import type { Consents } from '../../consents/service.ts';
import type { Consent } from '../../consents/store.ts';
import type { Db } from '../../db/db.ts';
import type { createGateway } from '../../gateway/gateway.ts';
import { type App, scoped } from '../../http/app.ts';
import { currencyExponent, parseAmount } from '../../money.ts';
import type { Payment, Payments } from '../../payments/service.ts';
import { BG_PREFIX } from './ais.ts';
import { explicitStartPreferred, registerAuthorisationRoutes, startAuthorisation } from './authorisations.ts';
import { BG_CODES, BgError, type RegisteredApps, useBgConventions } from './errors.ts';

const V1 = `${BG_PREFIX}/v1`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// How long the customer has to authorise a payment at the bank before it lapses (RJCT).
export const PAYMENT_AUTHORISATION_WINDOW_MS = 60 * 60_000;
const PRODUCTS = ['sepa-credit-transfers', 'instant-sepa-credit-transfers'] as const;
type Product = (typeof PRODUCTS)[number];
const Hidden = { hide: true } as const;

const Iban = Type.String({ minLength: 15, maxLength: 34 });
const PaymentBody = Type.Object(
  {
    debtorAccount: Type.Object({ iban: Iban, currency: Type.Optional(Type.String()) }),
    instructedAmount: Type.Object({
      currency: Type.String({ pattern: '^[A-Z]{3}$' }),
      amount: Type.String({ pattern: '^-?[0-9]{1,14}(\\.[0-9]{1,3})?$' }),
    }),
    creditorAccount: Type.Object({ iban: Iban, currency: Type.Optional(Type.String()) }),
    creditorName: Type.String({ minLength: 1, maxLength: 70 }),
    // Taken and ignored: the creditor's bank follows from the IBAN, and end-to-end ids are not carried.
    creditorAgent: Type.Optional(Type.String()),
    endToEndIdentification: Type.Optional(Type.String({ maxLength: 35 })),
    remittanceInformationUnstructured: Type.Optional(Type.String({ minLength: 1, maxLength: 140 })),
  },
  { additionalProperties: false },
);
const ProductParams = Type.Object({ product: Type.String() });
const PaymentParams = Type.Object({ product: Type.String(), paymentId: Type.String() });

/** The Berlin Group terms kept with the consent, beside the bank's own instructedAmount and creditor. */
interface BgPaymentTerms {
  instructedAmount: { amount: string; currency: string };
  creditor: { name: string; iban: string };
  reference?: string;
  bgProduct: Product;
  bgDebtorIban: string;
  /** Where the PSU was when the TPP initiated the payment: the fraud screening's context at execution. */
  bgPsuIpAddress?: string;
}

/** ISO 20022 status of an executed payment, by the bank's payment status. */
const EXECUTED_STATUS: Readonly<Record<Payment['status'], string>> = {
  received: 'ACTC',
  awaiting_sca: 'PDNG',
  accepted: 'ACSP',
  settling: 'ACSP',
  settled: 'ACSC',
  // The debtor's side settled; the creditor's bank is sending it back.
  returning: 'ACSC',
  rejected: 'RJCT',
  returned: 'RJCT',
};

export function registerBerlinGroupPisRoutes(
  app: App,
  deps: {
    db: Db;
    consents: Consents;
    payments: Payments;
    accounts: Accounts;
    apps: RegisteredApps;
    publicUrl: string;
  },
  gateway: ReturnType<typeof createGateway>,
): void {
  const { db, consents, payments, accounts, publicUrl } = deps;
  const href = (path: string) => ({ href: `${publicUrl}${V1}${path}` });

  scoped(app, (scope) => {
    useBgConventions(scope, deps.apps);

    const clientOf = (request: FastifyRequest) => {
      if (!request.access) throw new Error('route registered without requireAccess');
      return request.access.clientId;
    };
    const productOf = (product: string): Product => {
      const offered = PRODUCTS.find((p) => p === product);
      if (!offered) {
        throw BgError.of(
          404,
          BG_CODES.productUnknown,
          `payment product ${product.slice(0, 60)} is not offered; JSON ${PRODUCTS.join(' and ')} are`,
          'payment-product',
        );
      }
      return offered;
    };
    // Another app's payment, one under another product, or a consent of another kind: not here.
    const paymentConsentOf = async (request: FastifyRequest, product: string, id: string) => {
      const offered = productOf(product);
      const consent = UUID.test(id) ? await consents.getForClient(clientOf(request), id) : undefined;
      if (consent?.type !== 'payment_initiation' || consent.details.bgProduct !== offered) {
        throw BgError.of(404, BG_CODES.resourceUnknown, 'no payment with this paymentId', 'paymentId');
      }
      return consent;
    };

    /**
     * The payment behind an authorised (or already used) consent: executed on the first call, replayed on
     * every later one (the same key and instruction). Undefined while the consent is not authorised, and
     * when the bank refuses to execute it (the customer paid from another account than debtorAccount).
     */
    const executed = async (consent: Consent): Promise<Payment | undefined> => {
      if (consent.status !== 'authorised' && consent.status !== 'consumed') return undefined;
      if (!consent.customerId) return undefined;
      const terms = consent.details as unknown as BgPaymentTerms;
      const debtor = await accounts.findByIban(terms.bgDebtorIban);
      const outcome = await payments.initiate(
        { kind: 'app', clientId: consent.clientId, customerId: consent.customerId, consent },
        `berlin-group:${consent.id}`,
        {
          instructedAmount: terms.instructedAmount,
          creditor: terms.creditor,
          ...(terms.reference !== undefined && { reference: terms.reference }),
          // The account named at initiation; the customer's pick at the bank must be the same one.
          debtorAccountId: debtor?.customerId === consent.customerId ? debtor.id : UNKNOWN_ACCOUNT,
        },
        terms.bgPsuIpAddress === undefined ? {} : { ip: terms.bgPsuIpAddress },
      );
      return outcome.ok ? outcome.payment : undefined;
    };
    const statusOf = (consent: Consent, payment: Payment | undefined) => {
      if (payment) {
        return payment.status === 'settled' && payment.type === 'internal'
          ? 'ACCC'
          : EXECUTED_STATUS[payment.status];
      }
      if (consent.status === 'awaiting_authorisation') return 'RCVD';
      if (consent.status === 'revoked') return 'CANC';
      // Rejected by the customer, lapsed unauthorised, or authorised but refused at execution.
      return 'RJCT';
    };
    const current = async (request: FastifyRequest, product: string, id: string) => {
      const consent = await paymentConsentOf(request, product, id);
      const payment = await executed(consent);
      // A race lost to a cancellation or an expiry: the consent's state now is the answer.
      const now = payment ? consent : ((await consents.find(consent.id)) ?? consent);
      return { consent: now, payment, status: statusOf(now, payment) };
    };

    scope.post(
      `${V1}/payments/:product`,
      {
        schema: { ...Hidden, params: ProductParams, body: PaymentBody },
        onRequest: gateway('payments', 'payments'),
      },
      async (request, reply) => {
        const clientId = clientOf(request);
        if (request.access?.subject !== clientId) {
          throw BgError.of(
            403,
            BG_CODES.serviceBlocked,
            'payments are initiated with the app token (client credentials) and scope payments',
          );
        }
        const product = productOf(request.params.product);
        // Mandatory on initiation (its form is checked for every request of the facade).
        const psuIp = request.headers['psu-ip-address'];
        if (typeof psuIp !== 'string') {
          throw BgError.of(
            400,
            BG_CODES.formatError,
            'PSU-IP-Address is required to initiate a payment',
            'PSU-IP-Address',
          );
        }
        const terms = { ...(await termsOf(request.body, product, accounts)), bgPsuIpAddress: psuIp };
        const explicit = explicitStartPreferred(request);
        // The payment's consent and its implicitly started authorisation commit together.
        const { id, authorisationId } = await db.transaction(async (tx) => {
          const outcome = await consents.create(
            clientId,
            {
              type: 'payment_initiation',
              details: { ...terms },
              expiresAt: new Date(Date.now() + PAYMENT_AUTHORISATION_WINDOW_MS),
            },
            tx,
          );
          if (!outcome.ok) throw new Error(`payment consent not created: ${outcome.code}`);
          const consentId = outcome.consent.id;
          return {
            id: consentId,
            authorisationId: explicit ? undefined : await startAuthorisation(tx, consentId),
          };
        });
        const self = `/payments/${product}/${id}`;
        reply.header('aspsp-sca-approach', 'REDIRECT');
        return reply.code(201).send({
          transactionStatus: 'RCVD',
          paymentId: id,
          _links: {
            ...(authorisationId
              ? {
                  scaRedirect: {
                    href: authorizeUrl(publicUrl, clientId, id, request.headers['tpp-redirect-uri']),
                  },
                  scaOAuth: { href: `${publicUrl}/.well-known/openid-configuration` },
                  scaStatus: href(`${self}/authorisations/${authorisationId}`),
                }
              : { startAuthorisation: href(`${self}/authorisations`) }),
            self: href(self),
            status: href(`${self}/status`),
          },
        });
      },
    );

    scope.get(
      `${V1}/payments/:product/:paymentId`,
      { schema: { ...Hidden, params: PaymentParams }, onRequest: gateway('payments', 'payments') },
      async (request) => {
        const { consent, status } = await current(request, request.params.product, request.params.paymentId);
        const terms = consent.details as unknown as BgPaymentTerms;
        return {
          debtorAccount: { iban: terms.bgDebtorIban },
          instructedAmount: terms.instructedAmount,
          creditorAccount: { iban: terms.creditor.iban },
          creditorName: terms.creditor.name,
          ...(terms.reference !== undefined && { remittanceInformationUnstructured: terms.reference }),
          transactionStatus: status,
        };
      },
    );

    scope.get(
      `${V1}/payments/:product/:paymentId/status`,
      { schema: { ...Hidden, params: PaymentParams }, onRequest: gateway('payments', 'payments') },
      async (request) => {
        const { status } = await current(request, request.params.product, request.params.paymentId);
        return { transactionStatus: status };
      },
    );

    scope.delete(
      `${V1}/payments/:product/:paymentId`,
      { schema: { ...Hidden, params: PaymentParams }, onRequest: gateway('payments', 'payments') },
      async (request, reply) => {
        const consent = await paymentConsentOf(request, request.params.product, request.params.paymentId);
        // Not executed yet (awaiting the customer, or authorised and not yet called for): the bank can stop
        // it. The revocation and an execution race on the consent's one status change; one of them wins.
        const cancelled =
          consent.status === 'revoked' ||
          ((consent.status === 'awaiting_authorisation' || consent.status === 'authorised') &&
            (await consents.revoke(consent)) !== undefined);
        if (cancelled) return reply.code(204).send();
        throw BgError.of(
          405,
          BG_CODES.cancellationInvalid,
          'the payment has executed or ended and can no longer be cancelled',
        );
      },
    );

    registerAuthorisationRoutes(
      scope,
      { db, publicUrl },
      {
        route: `${V1}/payments/:product/:paymentId`,
        params: ['product', 'paymentId'],
        consentOf: (request) => {
          const params = request.params as { product: string; paymentId: string };
          return paymentConsentOf(request, params.product, params.paymentId);
        },
        hrefOf: (consent) => href(`/payments/${String(consent.details.bgProduct)}/${consent.id}`).href,
        scaRedirectOf: (request, consent) =>
          authorizeUrl(publicUrl, consent.clientId, consent.id, request.headers['tpp-redirect-uri']),
        onRequest: gateway('payments', 'payments'),
      },
    );

    scope.post(
      `${V1}/funds-confirmations`,
      {
        schema: {
          ...Hidden,
          body: Type.Object({
            account: Type.Object({ iban: Iban }, { additionalProperties: true }),
            instructedAmount: Type.Object({
              currency: Type.String({ pattern: '^[A-Z]{3}$' }),
              amount: Type.String({ pattern: '^-?[0-9]{1,14}(\\.[0-9]{1,3})?$' }),
            }),
            cardNumber: Type.Optional(Type.String({ maxLength: 35 })),
            payee: Type.Optional(Type.String({ maxLength: 70 })),
          }),
        },
        onRequest: gateway('funds-confirmation', 'funds_confirmation'),
      },
      async (request) => {
        const access = request.access;
        if (!access) throw new Error('route registered without requireAccess');
        // As src/payments/routes.ts: the customer's token, carrying their funds_confirmation consent.
        const accountId =
          access.subject === access.clientId
            ? undefined
            : access.consents.find((c) => c.type === 'funds_confirmation')?.accountIds?.[0];
        if (!accountId) {
          throw BgError.of(
            403,
            BG_CODES.consentUnknown,
            "funds confirmation needs a token carrying the customer's funds_confirmation consent",
          );
        }
        const account = await accounts.findForCustomer(access.subject, accountId);
        if (!account || account.iban !== normaliseIban(request.body.account.iban)) {
          throw BgError.of(
            404,
            BG_CODES.resourceUnknown,
            'no account with this IBAN under the consent',
            'account.iban',
          );
        }
        const { amount, currency } = request.body.instructedAmount;
        if (currency !== account.currency) {
          throw BgError.of(
            400,
            BG_CODES.formatError,
            `the account is in ${account.currency}`,
            'instructedAmount.currency',
          );
        }
        const parsed = positive(amount, currency);
        return { fundsAvailable: await payments.fundsAvailable(account, parsed) };
      },
    );
  });
}

// An id no account has: makes the execution refuse a debtorAccount that is not the customer's.
const UNKNOWN_ACCOUNT = '00000000-0000-0000-0000-000000000000';

/** A positive amount with exactly the currency's decimals, in minor units. */
function positive(amount: string, currency: string) {
  const parsed = parseAmount(amount);
  const exponent = currencyExponent(currency);
  if (!parsed || exponent === undefined || parsed.scale !== exponent) {
    throw BgError.of(
      400,
      BG_CODES.formatError,
      `must be greater than zero, with the decimals of ${currency}`,
      'instructedAmount.amount',
    );
  }
  return parsed.minor;
}

/** What the bank keeps of an initiation, after every check that needs no customer. */
async function termsOf(
  body: Static<typeof PaymentBody>,
  product: Product,
  accounts: Accounts,
): Promise<BgPaymentTerms> {
  const { currency, amount } = body.instructedAmount;
  if (currency !== 'EUR') {
    throw BgError.of(
      400,
      BG_CODES.formatError,
      'SEPA credit transfers are in EUR',
      'instructedAmount.currency',
    );
  }
  positive(amount, currency);
  const debtorIban = normaliseIban(body.debtorAccount.iban);
  const creditorIban = normaliseIban(body.creditorAccount.iban);
  if (!isValidIBAN(debtorIban)) {
    throw BgError.of(400, BG_CODES.formatError, 'is not a valid IBAN', 'debtorAccount.iban');
  }
  if (!isValidIBAN(creditorIban)) {
    throw BgError.of(400, BG_CODES.formatError, 'is not a valid IBAN', 'creditorAccount.iban');
  }
  if (creditorIban === debtorIban) {
    throw BgError.of(
      400,
      BG_CODES.formatError,
      'the creditor account is the debtor account',
      'creditorAccount.iban',
    );
  }
  // The bank settles with other banks in cycles, so only a transfer to an account here is instant.
  if (product === 'instant-sepa-credit-transfers' && !(await accounts.findByIban(creditorIban))) {
    throw BgError.of(
      403,
      BG_CODES.productInvalid,
      'instant credit transfers reach accounts at this bank only; use sepa-credit-transfers',
      'creditorAccount.iban',
    );
  }
  return {
    instructedAmount: { amount, currency },
    creditor: { name: body.creditorName, iban: creditorIban },
    ...(body.remittanceInformationUnstructured !== undefined && {
      reference: body.remittanceInformationUnstructured,
    }),
    bgProduct: product,
    bgDebtorIban: debtorIban,
  };
}

/** The authorization request that leads to the bank's consent page for this payment. */
function authorizeUrl(publicUrl: string, clientId: string, paymentId: string, redirectUri: unknown): string {
  const params = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    scope: 'openid payments',
    authorization_details: JSON.stringify([{ type: 'payment_initiation', consentId: paymentId }]),
    ...(typeof redirectUri === 'string' && { redirect_uri: redirectUri }),
  });
  return `${publicUrl}/oauth/authorize?${params}`;
}
