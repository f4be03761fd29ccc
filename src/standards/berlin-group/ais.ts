// Berlin Group NextGenPSD2 1.3.9, Account Information Service (`/berlin-group/v1`), over the bank's own
// consents and accounts, as the UK Open Banking facade does (src/standards/uk-ob/aisp.ts): a consent is an
// `account_information` consent (the same id, authorised at the same consent page through the same OAuth
// flow, revoked the same way), and the accounts are src/accounts/'s in the specification's shapes. The
// contract is the official file (specs/berlin-group-nextgenpsd2-1.3.9/psd2-api-1.3.9.yaml), so these routes
// stay out of /openapi.json.
//
// Only the bank-offered consent is taken (access lists given empty): the customer picks the accounts at the
// bank's consent page, so the third party never needs to know an IBAN beforehand, and the redirect SCA
// approach is the only one (the consent page is where the customer authenticates strongly).
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Accounts, Transaction } from '../../accounts/service.ts';
import type { BankAccount } from '../../accounts/store.ts';
import { CONSENT_VALIDITY_MAX_MS, type Consents } from '../../consents/service.ts';
import type { Consent } from '../../consents/store.ts';
import type { Db } from '../../db/db.ts';
import type { createGateway } from '../../gateway/gateway.ts';
import { type App, scoped } from '../../http/app.ts';
import { currencyExponent, formatAmount } from '../../money.ts';
import { explicitStartPreferred, registerAuthorisationRoutes, startAuthorisation } from './authorisations.ts';
import { BG_CODES, BgError, type RegisteredApps, useBgConventions } from './errors.ts';

export const BG_PREFIX = '/berlin-group';
const V1 = `${BG_PREFIX}/v1`;
// One page of transactions; the next is linked from transactions._links.next.
const TRANSACTIONS_PAGE = 200;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// validUntil "9999-12-31" asks for the longest validity the bank allows (Implementation Guidelines §6.3.1.1).
const LONGEST = '9999-12-31';
const DAY_MS = 86_400_000;

// What the bank honours of `access`: accounts, balances, transactions. The lists are accountReferences
// (iban, bban, …) the TPP may name; only empty ones (bank-offered consent) are taken.
const AccessList = Type.Array(Type.Object({}, { additionalProperties: true }));
const ACCESS_KINDS = ['accounts', 'balances', 'transactions'] as const;
type AccessKind = (typeof ACCESS_KINDS)[number];
const NewConsent = Type.Object({
  access: Type.Object(
    {
      accounts: Type.Optional(AccessList),
      balances: Type.Optional(AccessList),
      transactions: Type.Optional(AccessList),
    },
    { additionalProperties: true },
  ),
  recurringIndicator: Type.Boolean(),
  validUntil: Type.String({ format: 'date' }),
  // At most 4 unless agreed otherwise between TPP and ASPSP (Implementation Guidelines; PSD2 RTS Art. 36).
  frequencyPerDay: Type.Integer({ minimum: 1, maximum: 4 }),
  combinedServiceIndicator: Type.Boolean(),
});
const Hidden = { hide: true } as const;
const ConsentParams = { ...Hidden, params: Type.Object({ consentId: Type.String() }) };

/** The Berlin Group terms kept with the consent, beside the bank's own `permissions`. */
interface BgTerms {
  bgAccess?: AccessKind[];
  recurringIndicator?: boolean;
  frequencyPerDay?: number;
}

const BG_STATUS: Readonly<Record<Consent['status'], string>> = {
  awaiting_authorisation: 'received',
  authorised: 'valid',
  rejected: 'rejected',
  // DELETE is how this API revokes; a revocation by the customer at /me/consents reads the same.
  revoked: 'terminatedByTpp',
  expired: 'expired',
  // Account-information consents are never used up; listed for completeness of the mapping.
  consumed: 'expired',
};

export function registerBerlinGroupAisRoutes(
  app: App,
  deps: { db: Db; consents: Consents; accounts: Accounts; apps: RegisteredApps; publicUrl: string },
  gateway: ReturnType<typeof createGateway>,
): void {
  const { db, consents, accounts, publicUrl } = deps;
  const href = (path: string) => ({ href: `${publicUrl}${V1}${path}` });

  scoped(app, (scope) => {
    useBgConventions(scope, deps.apps);

    /** The app's own token (client credentials) with the `accounts` scope manages consents. */
    const appOf = (request: FastifyRequest) => {
      const access = request.access;
      if (!access) throw new Error('route registered without requireAccess');
      if (access.subject !== access.clientId || !access.scopes.has('accounts')) {
        throw BgError.of(
          403,
          BG_CODES.serviceBlocked,
          'consents are managed with the app token (client credentials) and scope accounts',
        );
      }
      return access.clientId;
    };
    const consentOf = async (request: FastifyRequest, id: string) => {
      const consent = UUID.test(id) ? await consents.getForClient(appOf(request), id) : undefined;
      // Another app's consent, or one of ours made through another API, does not exist here.
      if (consent?.type !== 'account_information' || !('bgAccess' in consent.details)) {
        throw BgError.of(403, BG_CODES.consentUnknown, 'no consent with this consentId', 'consentId');
      }
      return consent;
    };

    scope.post(
      `${V1}/consents`,
      { schema: { ...Hidden, body: NewConsent }, onRequest: gateway('consents') },
      async (request, reply) => {
        const clientId = appOf(request);
        const body = request.body;
        const kinds = ACCESS_KINDS.filter((kind) => body.access[kind] !== undefined);
        const offered = new Set<string>(ACCESS_KINDS);
        const other = Object.keys(body.access).filter((key) => !offered.has(key));
        if (other.length > 0) {
          throw BgError.of(
            400,
            BG_CODES.serviceInvalid,
            `not offered by this bank: ${other.join(', ')}`,
            'access',
          );
        }
        if (kinds.length === 0) {
          throw BgError.of(
            400,
            BG_CODES.formatError,
            'access names none of accounts, balances, transactions',
            'access',
          );
        }
        if (kinds.some((kind) => (body.access[kind]?.length ?? 0) > 0)) {
          throw BgError.of(
            400,
            BG_CODES.parameterNotSupported,
            'only the bank-offered consent is supported: give the access lists empty, the customer picks the accounts at the bank',
            'access',
          );
        }
        if (body.combinedServiceIndicator) {
          throw BgError.of(
            400,
            BG_CODES.parameterNotSupported,
            'combined AIS and PIS sessions are not offered',
            'combinedServiceIndicator',
          );
        }
        const expiresAt =
          body.validUntil === LONGEST
            ? new Date(Date.now() + CONSENT_VALIDITY_MAX_MS - 60_000)
            : endOfDay(body.validUntil);
        const terms: BgTerms = {
          bgAccess: kinds,
          recurringIndicator: body.recurringIndicator,
          frequencyPerDay: body.frequencyPerDay,
        };
        // Balances and transactions of an account come with the account itself (§6.3.1.1).
        const ours = [
          'details',
          ...(kinds.includes('balances') ? ['balances'] : []),
          ...(kinds.includes('transactions') ? ['transactions'] : []),
        ];
        const explicit = explicitStartPreferred(request);
        // The consent and its implicitly started authorisation commit together.
        const created = expiresAt
          ? await db.transaction(async (tx) => {
              const outcome = await consents.create(
                clientId,
                { type: 'account_information', details: { permissions: ours, ...terms }, expiresAt },
                tx,
              );
              if (!outcome.ok) return undefined;
              const authorisationId = explicit ? undefined : await startAuthorisation(tx, outcome.consent.id);
              return { consent: outcome.consent, authorisationId };
            })
          : undefined;
        if (!created) {
          throw BgError.of(
            400,
            BG_CODES.formatError,
            `validUntil must be today or later and at most 180 days ahead, or ${LONGEST}`,
            'validUntil',
          );
        }
        const { consent, authorisationId } = created;
        const self = `/consents/${consent.id}`;
        // No Location header: the spec's is optional and typed `format: url`, whose validator refuses hosts
        // without a public domain (127.0.0.1, localhost); _links.self carries the same address.
        reply.header('aspsp-sca-approach', 'REDIRECT');
        return reply.code(201).send({
          consentStatus: BG_STATUS[consent.status],
          consentId: consent.id,
          _links: {
            ...(authorisationId
              ? {
                  // The consent page is reached through the bank's OAuth flow: the TPP adds its PKCE challenge
                  // and state (and pushes the request first where PAR is required), with this consent in
                  // authorization_details; the metadata names every endpoint.
                  scaRedirect: {
                    href: authorizeUrl(publicUrl, clientId, consent.id, request.headers['tpp-redirect-uri']),
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
      `${V1}/consents/:consentId`,
      { schema: ConsentParams, onRequest: gateway('consents') },
      async (request) => {
        const consent = await consentOf(request, request.params.consentId);
        const terms = consent.details as BgTerms;
        return {
          access: Object.fromEntries((terms.bgAccess ?? []).map((kind) => [kind, []])),
          recurringIndicator: terms.recurringIndicator ?? false,
          validUntil: consent.expiresAt.toISOString().slice(0, 10),
          frequencyPerDay: terms.frequencyPerDay ?? 1,
          lastActionDate: consent.statusUpdatedAt.toISOString().slice(0, 10),
          consentStatus: BG_STATUS[consent.status],
          ...(consent.status === 'authorised' && { _links: { account: href('/accounts') } }),
        };
      },
    );

    scope.get(
      `${V1}/consents/:consentId/status`,
      { schema: ConsentParams, onRequest: gateway('consents') },
      async (request) => {
        const consent = await consentOf(request, request.params.consentId);
        return { consentStatus: BG_STATUS[consent.status] };
      },
    );

    scope.delete(
      `${V1}/consents/:consentId`,
      { schema: ConsentParams, onRequest: gateway('consents') },
      async (request, reply) => {
        const consent = await consentOf(request, request.params.consentId);
        // Deleting an already ended consent changes nothing and is no error: the TPP's intent is met.
        if (consent.status === 'awaiting_authorisation' || consent.status === 'authorised') {
          await consents.revoke(consent);
        }
        return reply.code(204).send();
      },
    );

    registerAuthorisationRoutes(
      scope,
      { db, publicUrl },
      {
        route: `${V1}/consents/:consentId`,
        params: ['consentId'],
        consentOf: (request) => consentOf(request, (request.params as { consentId: string }).consentId),
        hrefOf: (consent) => href(`/consents/${consent.id}`).href,
        scaRedirectOf: (request, consent) =>
          authorizeUrl(publicUrl, consent.clientId, consent.id, request.headers['tpp-redirect-uri']),
        onRequest: gateway('consents'),
      },
    );

    /**
     * The consent named by the mandatory `Consent-ID` header, among those the customer's token carries: a
     * token reads only under a consent it was issued for, and only a Berlin Group one.
     */
    const grantOf = (request: FastifyRequest) => {
      const access = request.access;
      if (!access) throw new Error('route registered without requireAccess');
      const id = request.headers['consent-id'];
      const consent =
        access.subject === access.clientId
          ? undefined
          : access.consents.find(
              (c) => c.id === id && c.type === 'account_information' && 'bgAccess' in c.details,
            );
      if (!consent) {
        throw BgError.of(
          403,
          BG_CODES.consentUnknown,
          'Consent-ID must name a consent the customer authorised for this token',
          'Consent-ID',
        );
      }
      return {
        customerId: access.subject,
        accountIds: new Set(consent.accountIds ?? []),
        access: new Set((consent.details as BgTerms).bgAccess ?? []),
      };
    };
    type Grant = ReturnType<typeof grantOf>;
    const needs = (grant: Grant, kind: AccessKind) => {
      if (!grant.access.has(kind)) {
        throw BgError.of(401, BG_CODES.consentInvalid, `the consent does not grant access to ${kind}`);
      }
    };
    // An account that does not exist, is another customer's or is not under the consent: the same 404.
    const accountOf = async (grant: Grant, id: string) => {
      const account = UUID.test(id) ? await accounts.findForCustomer(grant.customerId, id) : undefined;
      if (!account || !grant.accountIds.has(account.id)) {
        throw BgError.of(
          404,
          BG_CODES.resourceUnknown,
          'no account with this account-id under the consent',
          'account-id',
        );
      }
      return account;
    };
    const AccountParams = { ...Hidden, params: Type.Object({ accountId: Type.String() }) };
    // Query strings are not coerced (src/http/app.ts): a boolean arrives as its text.
    const Flag = Type.Union([Type.Literal('true'), Type.Literal('false')]);
    const WithBalance = Type.Object({ withBalance: Type.Optional(Flag) });

    const details = async (grant: Grant, account: BankAccount, withBalance: string | undefined) => ({
      resourceId: account.id,
      iban: account.iban,
      currency: account.currency,
      name: account.name.slice(0, 70),
      product: account.product.slice(0, 35),
      cashAccountType: account.product === 'savings' ? 'SVGS' : 'CACC',
      status: ACCOUNT_STATUS[account.status],
      usage: 'PRIV',
      // withBalance is honoured only where the consent grants balances; otherwise it is ignored (§6.5.1.1).
      ...(withBalance === 'true' && grant.access.has('balances') && { balances: await balanceList(account) }),
      _links: {
        ...(grant.access.has('balances') && { balances: href(`/accounts/${account.id}/balances`) }),
        ...(grant.access.has('transactions') && {
          transactions: href(`/accounts/${account.id}/transactions`),
        }),
      },
    });
    const balanceList = async (account: BankAccount) => {
      const balances = await accounts.balances(account);
      const exponent = currencyExponent(account.currency) ?? 2;
      const now = new Date().toISOString();
      // interimBooked: posted money now; interimAvailable: less holds, what may leave.
      const balance = (balanceType: 'interimBooked' | 'interimAvailable', minor: bigint) => ({
        balanceAmount: { currency: account.currency, amount: signed(minor, exponent) },
        balanceType,
        lastChangeDateTime: now,
      });
      return [balance('interimBooked', balances.posted), balance('interimAvailable', balances.available)];
    };

    scope.get(
      `${V1}/accounts`,
      { schema: { ...Hidden, querystring: WithBalance }, onRequest: gateway('accounts') },
      async (request) => {
        const grant = grantOf(request);
        // A consent covers the accounts the customer ticked: a handful, well under one page.
        const list = await accounts.list(
          grant.customerId,
          [...grant.accountIds],
          undefined,
          grant.accountIds.size,
        );
        return {
          accounts: await Promise.all(
            list.map((account) => details(grant, account, request.query.withBalance)),
          ),
        };
      },
    );

    scope.get(
      `${V1}/accounts/:accountId`,
      { schema: { ...AccountParams, querystring: WithBalance }, onRequest: gateway('accounts') },
      async (request) => {
        const grant = grantOf(request);
        const account = await accountOf(grant, request.params.accountId);
        return { account: await details(grant, account, request.query.withBalance) };
      },
    );

    scope.get(
      `${V1}/accounts/:accountId/balances`,
      { schema: AccountParams, onRequest: gateway('accounts') },
      async (request) => {
        const grant = grantOf(request);
        needs(grant, 'balances');
        const account = await accountOf(grant, request.params.accountId);
        return {
          account: { iban: account.iban, currency: account.currency },
          balances: await balanceList(account),
        };
      },
    );

    scope.get(
      `${V1}/accounts/:accountId/transactions`,
      {
        schema: {
          ...AccountParams,
          querystring: Type.Object({
            bookingStatus: Type.Union(
              ['information', 'booked', 'pending', 'both', 'all'].map((s) => Type.Literal(s)),
            ),
            dateFrom: Type.Optional(Type.String({ format: 'date' })),
            dateTo: Type.Optional(Type.String({ format: 'date' })),
            withBalance: Type.Optional(Flag),
            // Our own paging position, only ever taken from _links.next.
            cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,19}$' })),
          }),
        },
        onRequest: gateway('accounts'),
      },
      async (request) => {
        const grant = grantOf(request);
        needs(grant, 'transactions');
        const account = await accountOf(grant, request.params.accountId);
        const query = request.query;
        // "information" lists standing orders, which the bank does not report here.
        if (query.bookingStatus === 'information') {
          throw BgError.of(
            400,
            BG_CODES.parameterNotSupported,
            'bookingStatus information is not offered',
            'bookingStatus',
          );
        }
        const from = query.dateFrom ? startOfDay(query.dateFrom) : undefined;
        const to = query.dateTo ? endOfDay(query.dateTo) : undefined;
        if (query.dateFrom && !from)
          throw BgError.of(400, BG_CODES.formatError, 'is not a date that exists', 'dateFrom');
        if (query.dateTo && !to)
          throw BgError.of(400, BG_CODES.formatError, 'is not a date that exists', 'dateTo');
        // Holds are not reported yet: only booked entries, so "pending" is an empty list.
        const page =
          query.bookingStatus === 'pending'
            ? []
            : await accounts.transactions(
                account,
                { ...(from && { from }), ...(to && { to: new Date(to.getTime() + 1) }) },
                query.cursor ? BigInt(query.cursor) : undefined,
                TRANSACTIONS_PAGE + 1,
              );
        const exponent = currencyExponent(account.currency) ?? 2;
        const shown = page.slice(0, TRANSACTIONS_PAGE);
        const base = `/accounts/${account.id}/transactions`;
        const next = new URLSearchParams({
          bookingStatus: query.bookingStatus,
          ...(query.dateFrom && { dateFrom: query.dateFrom }),
          ...(query.dateTo && { dateTo: query.dateTo }),
          cursor: String(shown.at(-1)?.seq ?? 0n),
        });
        return {
          account: { iban: account.iban, currency: account.currency },
          transactions: {
            booked: shown.map((transaction) => ({
              ...transactionJson(account, transaction, exponent),
              _links: { transactionDetails: href(`${base}/${transactionIdOf(transaction)}`) },
            })),
            ...(query.bookingStatus !== 'booked' && { pending: [] }),
            _links: {
              account: href(`/accounts/${account.id}`),
              ...(page.length > TRANSACTIONS_PAGE && { next: href(`${base}?${next}`) }),
            },
          },
          ...(query.withBalance === 'true' &&
            grant.access.has('balances') && { balances: await balanceList(account) }),
        };
      },
    );

    scope.get(
      `${V1}/accounts/:accountId/transactions/:transactionId`,
      {
        schema: {
          ...Hidden,
          params: Type.Object({ accountId: Type.String(), transactionId: Type.String() }),
        },
        onRequest: gateway('accounts'),
      },
      async (request) => {
        const grant = grantOf(request);
        needs(grant, 'transactions');
        const account = await accountOf(grant, request.params.accountId);
        // The id is the list's: the transfer and the account's entry sequence number, read back by the
        // sequence number and checked against the transfer.
        const id = TRANSACTION_ID.exec(request.params.transactionId);
        const seq = id?.[2] === undefined ? undefined : BigInt(id[2]);
        const [found] = seq === undefined ? [] : await accounts.transactions(account, {}, seq + 1n, 1);
        if (!found || found.seq !== seq || found.transferId !== id?.[1]) {
          throw BgError.of(
            404,
            BG_CODES.resourceUnknown,
            'no transaction with this transactionId on the account',
            'transactionId',
          );
        }
        return {
          transactionsDetails: transactionJson(account, found, currencyExponent(account.currency) ?? 2),
        };
      },
    );
  });
}

/** The authorization request that leads to the bank's consent page for this consent. */
function authorizeUrl(publicUrl: string, clientId: string, consentId: string, redirectUri: unknown): string {
  const params = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    scope: 'openid accounts',
    authorization_details: JSON.stringify([{ type: 'account_information', consentId }]),
    ...(typeof redirectUri === 'string' && { redirect_uri: redirectUri }),
  });
  return `${publicUrl}/oauth/authorize?${params}`;
}

const ACCOUNT_STATUS: Readonly<Record<BankAccount['status'], string>> = {
  active: 'enabled',
  frozen: 'blocked',
  closed: 'deleted',
};

/** amountValue: a signed decimal, debits negative (the guidelines' convention for transactionAmount). */
const signed = (minor: bigint, exponent: number) =>
  minor < 0n ? `-${formatAmount(-minor, exponent)}` : formatAmount(minor, exponent);

const TRANSACTION_ID = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}):([0-9]{1,18})$/;
const transactionIdOf = (transaction: Transaction) => `${transaction.transferId}:${transaction.seq}`;

function transactionJson(account: BankAccount, transaction: Transaction, exponent: number) {
  const credit = transaction.direction === 'credit';
  const magnitude = transaction.amount < 0n ? -transaction.amount : transaction.amount;
  const counterparty = transaction.counterparty;
  const day = transaction.bookedAt.toISOString().slice(0, 10);
  return {
    transactionId: transactionIdOf(transaction),
    bookingDate: day,
    valueDate: day,
    transactionAmount: {
      currency: account.currency,
      amount: signed(credit ? magnitude : -magnitude, exponent),
    },
    ...(counterparty.name && { [credit ? 'debtorName' : 'creditorName']: counterparty.name.slice(0, 70) }),
    ...(counterparty.iban &&
      !counterparty.iban.includes('*') && {
        [credit ? 'debtorAccount' : 'creditorAccount']: { iban: counterparty.iban },
      }),
    ...(transaction.reference && { remittanceInformationUnstructured: transaction.reference.slice(0, 140) }),
    balanceAfterTransaction: {
      balanceAmount: { currency: account.currency, amount: signed(transaction.balanceAfter, exponent) },
      balanceType: 'interimBooked',
    },
  };
}

/** A calendar date (format: date) as its first instant in UTC, or undefined if no such day exists. */
function startOfDay(date: string): Date | undefined {
  const at = new Date(`${date}T00:00:00.000Z`);
  return Number.isNaN(at.getTime()) || at.toISOString().slice(0, 10) !== date ? undefined : at;
}

function endOfDay(date: string): Date | undefined {
  const start = startOfDay(date);
  return start && new Date(start.getTime() + DAY_MS - 1);
}
