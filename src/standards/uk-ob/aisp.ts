// UK Open Banking Read/Write v4.0, Account and Transaction API (`/open-banking/v4.0/aisp`), over the bank's
// own consents and accounts: an account-access consent is an `account_information` consent (the same id,
// authorised at the same consent page through the same OAuth flow, revoked the same way), and the accounts
// are src/accounts/'s, in the specification's shapes: their standing orders and scheduled payments are
// src/payments/orders.ts's, their party the customer (src/customers/). The contract is the official file
// (specs/uk-open-banking-v4.0/account-info-openapi.yaml), so these routes stay out of /openapi.json.
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Accounts, Transaction } from '../../accounts/service.ts';
import type { BankAccount } from '../../accounts/store.ts';
import { CONSENT_VALIDITY_MAX_MS, type Consents } from '../../consents/service.ts';
import type { Consent } from '../../consents/store.ts';
import type { Customers } from '../../customers/service.ts';
import type { createGateway } from '../../gateway/gateway.ts';
import { type App, scoped } from '../../http/app.ts';
import { currencyExponent, formatAmount } from '../../money.ts';
import { ORDERS_PAGE_MAX, type PaymentOrder, type PaymentOrders } from '../../payments/orders.ts';
import { consentMadeHere, managingApp, UUID } from './access.ts';
import { OB_ERROR_CODES, ObError, useObConventions } from './errors.ts';
import { mapPermissions, OB_PERMISSIONS, type ObPermission } from './permissions.ts';

export const AISP_PREFIX = '/open-banking/v4.0/aisp';
// One page of transactions; the next is linked from Links.Next.
const TRANSACTIONS_PAGE = 200;
// The orders read for one answer: a customer's standing orders and scheduled payments are a few dozen;
// past this many the answer would be cut short, so it is refused rather than silently incomplete.
const ORDERS_READ_MAX = 10 * ORDERS_PAGE_MAX;

const DateTimeText = Type.String({ format: 'date-time' });
const NewConsent = Type.Object({
  Data: Type.Object({
    Permissions: Type.Array(Type.Union(OB_PERMISSIONS.map((p) => Type.Literal(p))), { minItems: 1 }),
    ExpirationDateTime: Type.Optional(DateTimeText),
    TransactionFromDateTime: Type.Optional(DateTimeText),
    TransactionToDateTime: Type.Optional(DateTimeText),
  }),
  Risk: Type.Object({}, { additionalProperties: false }),
});
const Hidden = { hide: true } as const;

/** The OB terms kept with the consent, beside the bank's own `permissions`. */
interface ObTerms {
  obPermissions?: ObPermission[];
  transactionFromDateTime?: string;
  transactionToDateTime?: string;
}

const OB_STATUS: Readonly<Record<Consent['status'], string>> = {
  awaiting_authorisation: 'AWAU',
  authorised: 'AUTH',
  rejected: 'RJCT',
  revoked: 'CANC',
  expired: 'EXPD',
  // Account-access consents are never used up; listed for completeness of the mapping.
  consumed: 'CANC',
};

export function registerUkObAispRoutes(
  app: App,
  deps: {
    consents: Consents;
    accounts: Accounts;
    orders: PaymentOrders;
    customers: Customers;
    publicUrl: string;
  },
  gateway: ReturnType<typeof createGateway>,
): void {
  const { consents, accounts, orders, customers, publicUrl } = deps;
  const self = (path: string) => `${publicUrl}${AISP_PREFIX}${path}`;

  scoped(app, (scope) => {
    useObConventions(scope);

    const appOf = (request: FastifyRequest) => managingApp(request, 'accounts', 'consents');
    const consentOf = (request: FastifyRequest, id: string) =>
      consentMadeHere(consents, appOf(request), id, 'account_information', 'obPermissions');

    scope.post(
      `${AISP_PREFIX}/account-access-consents`,
      { schema: { ...Hidden, body: NewConsent }, onRequest: gateway('consents') },
      async (request, reply) => {
        const clientId = appOf(request);
        const data = request.body.Data;
        const mapped = mapPermissions(data.Permissions);
        if (!mapped.ok)
          throw ObError.of(400, OB_ERROR_CODES.fieldInvalid, mapped.message, 'Data.Permissions');
        const from = timestamp(data.TransactionFromDateTime, 'Data.TransactionFromDateTime');
        const to = timestamp(data.TransactionToDateTime, 'Data.TransactionToDateTime');
        if (from && to && from > to) {
          throw ObError.of(
            400,
            OB_ERROR_CODES.fieldInvalid,
            'TransactionFromDateTime is after TransactionToDateTime',
            'Data.TransactionFromDateTime',
          );
        }
        // Without an expiry the consent lasts as long as the bank allows: re-authentication every 180 days.
        const expiresAt =
          timestamp(data.ExpirationDateTime, 'Data.ExpirationDateTime') ??
          new Date(Date.now() + CONSENT_VALIDITY_MAX_MS - 60_000);
        const terms: ObTerms = {
          obPermissions: mapped.permissions,
          ...(from && { transactionFromDateTime: from.toISOString() }),
          ...(to && { transactionToDateTime: to.toISOString() }),
        };
        const outcome = await consents.create(clientId, {
          type: 'account_information',
          details: { permissions: mapped.ours, ...terms },
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
        const path = `/account-access-consents/${outcome.consent.id}`;
        return reply.code(201).send(consentJson(outcome.consent, self(path)));
      },
    );

    scope.get(
      `${AISP_PREFIX}/account-access-consents/:ConsentId`,
      {
        schema: { ...Hidden, params: Type.Object({ ConsentId: Type.String() }) },
        onRequest: gateway('consents'),
      },
      async (request) => {
        const consent = await consentOf(request, request.params.ConsentId);
        return consentJson(consent, self(`/account-access-consents/${consent.id}`));
      },
    );

    scope.delete(
      `${AISP_PREFIX}/account-access-consents/:ConsentId`,
      {
        schema: { ...Hidden, params: Type.Object({ ConsentId: Type.String() }) },
        onRequest: gateway('consents'),
      },
      async (request, reply) => {
        const consent = await consentOf(request, request.params.ConsentId);
        // Deleting an already ended consent changes nothing and is no error: the TPP's intent is met.
        if (consent.status === 'awaiting_authorisation' || consent.status === 'authorised') {
          await consents.revoke(consent);
        }
        return reply.code(204).send();
      },
    );

    /** What the customer's token allows under its OB account-access consents. */
    const grantOf = (request: FastifyRequest) => {
      const access = request.access;
      if (!access) throw new Error('route registered without requireAccess');
      const granted = access.consents.filter(
        (consent) => consent.type === 'account_information' && 'obPermissions' in consent.details,
      );
      if (access.subject === access.clientId || granted.length === 0) {
        throw ObError.of(
          403,
          OB_ERROR_CODES.narrative,
          'reading accounts needs a token bound to an account-access consent the customer authorised',
        );
      }
      const permissions = new Set(
        granted.flatMap((consent) => (consent.details as ObTerms).obPermissions ?? []),
      );
      const terms = granted.map((consent) => consent.details as ObTerms);
      return {
        customerId: access.subject,
        accountIds: new Set(granted.flatMap((consent) => consent.accountIds ?? [])),
        permissions,
        // The consents' transaction windows; the widest one applies when a token carries several.
        from: earliest(terms.map((t) => t.transactionFromDateTime)),
        to: latest(terms.map((t) => t.transactionToDateTime)),
      };
    };
    type Grant = ReturnType<typeof grantOf>;
    const needs = (grant: Grant, ...any: ObPermission[]) => {
      if (!any.some((permission) => grant.permissions.has(permission))) {
        throw ObError.of(403, OB_ERROR_CODES.narrative, `the consent does not grant ${any.join(' or ')}`);
      }
    };
    // An account that does not exist, is another customer's or is not under the consent: the same 403,
    // which the specification declares for these operations (it declares no 404), so none is told apart.
    const accountOf = async (grant: Grant, id: string) => {
      const account = UUID.test(id) ? await accounts.findForCustomer(grant.customerId, id) : undefined;
      if (!account || !grant.accountIds.has(account.id)) {
        throw ObError.of(
          403,
          OB_ERROR_CODES.resourceNotFound,
          'no account with this AccountId under the consent',
        );
      }
      return account;
    };
    const AccountParams = { ...Hidden, params: Type.Object({ AccountId: Type.String() }) };
    // ITBD (interim booked): posted money now; ITAV (interim available): less holds, what may leave.
    const balancesJson = async (account: BankAccount) => {
      const balances = await accounts.balances(account);
      const exponent = currencyExponent(account.currency) ?? 2;
      const now = new Date().toISOString();
      const balance = (type: 'ITBD' | 'ITAV', minor: bigint) => ({
        AccountId: account.id,
        CreditDebitIndicator: minor < 0n ? 'Debit' : 'Credit',
        Type: type,
        DateTime: now,
        Amount: { Amount: formatAmount(minor < 0n ? -minor : minor, exponent), Currency: account.currency },
      });
      return [balance('ITBD', balances.posted), balance('ITAV', balances.available)];
    };
    /** The consent's accounts the customer still holds: a handful, well under one page. */
    const consentAccounts = (grant: Grant) =>
      accounts.list(grant.customerId, [...grant.accountIds], undefined, grant.accountIds.size);
    /** The customer's orders of one kind paid from `accountIds`, in the order they were set up. */
    const ordersFrom = async (grant: Grant, accountIds: ReadonlySet<string>, kind: PaymentOrder['kind']) => {
      const found: PaymentOrder[] = [];
      let after: string | undefined;
      for (let read = 0; ; ) {
        const page = await orders.list(grant.customerId, after, ORDERS_PAGE_MAX);
        read += page.length;
        found.push(...page.filter((o) => o.kind === kind && accountIds.has(o.debtorAccountId)));
        if (page.length < ORDERS_PAGE_MAX) return found;
        if (read >= ORDERS_READ_MAX) {
          throw ObError.of(403, OB_ERROR_CODES.narrative, 'too many payment orders to list them here');
        }
        after = page.at(-1)?.id;
      }
    };
    /** Standing orders (all of them, ended ones with their status) or scheduled payments still to be paid. */
    const ordersJson = async (grant: Grant, accountIds: ReadonlySet<string>, kind: PaymentOrder['kind']) => {
      const detail = grant.permissions.has(
        kind === 'standing' ? 'ReadStandingOrdersDetail' : 'ReadScheduledPaymentsDetail',
      );
      const found = await ordersFrom(grant, accountIds, kind);
      return kind === 'standing'
        ? found.map((order) => standingOrderJson(order, detail))
        : found
            .filter((order) => order.status === 'active')
            .map((order) => scheduledPaymentJson(order, detail));
    };
    const partyJson = async (grant: Grant) => {
      // Decrypted for this response only; nothing but the name leaves, and nothing is logged.
      const name = (await customers.holderName(grant.customerId))?.slice(0, 350);
      return {
        PartyId: grant.customerId,
        ...(name && { Name: name, FullLegalName: name }),
      };
    };

    scope.get(
      `${AISP_PREFIX}/accounts`,
      { schema: Hidden, onRequest: gateway('accounts') },
      async (request) => {
        const grant = grantOf(request);
        needs(grant, 'ReadAccountsBasic', 'ReadAccountsDetail');
        // A consent covers the accounts the customer ticked: a handful, well under one page.
        const list = await accounts.list(
          grant.customerId,
          [...grant.accountIds],
          undefined,
          grant.accountIds.size,
        );
        return {
          Data: { Account: list.map((account) => accountJson(account, grant.permissions)) },
          Links: { Self: self('/accounts') },
          Meta: {},
        };
      },
    );

    scope.get(
      `${AISP_PREFIX}/accounts/:AccountId`,
      { schema: AccountParams, onRequest: gateway('accounts') },
      async (request) => {
        const grant = grantOf(request);
        needs(grant, 'ReadAccountsBasic', 'ReadAccountsDetail');
        const account = await accountOf(grant, request.params.AccountId);
        return {
          Data: { Account: [accountJson(account, grant.permissions)] },
          Links: { Self: self(`/accounts/${account.id}`) },
          Meta: {},
        };
      },
    );

    scope.get(
      `${AISP_PREFIX}/accounts/:AccountId/balances`,
      { schema: AccountParams, onRequest: gateway('accounts') },
      async (request) => {
        const grant = grantOf(request);
        needs(grant, 'ReadBalances');
        const account = await accountOf(grant, request.params.AccountId);
        return {
          Data: { Balance: await balancesJson(account) },
          Links: { Self: self(`/accounts/${account.id}/balances`) },
          Meta: {},
        };
      },
    );

    scope.get(
      `${AISP_PREFIX}/accounts/:AccountId/transactions`,
      {
        schema: {
          ...AccountParams,
          querystring: Type.Object({
            fromBookingDateTime: Type.Optional(DateTimeText),
            toBookingDateTime: Type.Optional(DateTimeText),
            // Our own paging position, only ever taken from Links.Next.
            cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,19}$' })),
          }),
        },
        onRequest: gateway('accounts'),
      },
      async (request) => {
        const grant = grantOf(request);
        needs(grant, 'ReadTransactionsBasic', 'ReadTransactionsDetail');
        const account = await accountOf(grant, request.params.AccountId);
        const query = request.query;
        const credits = grant.permissions.has('ReadTransactionsCredits');
        const debits = grant.permissions.has('ReadTransactionsDebits');
        const detail = grant.permissions.has('ReadTransactionsDetail');
        // The window asked for, within the window the consent allows (inclusive both ends).
        const from = latestDate(
          timestamp(query.fromBookingDateTime, 'fromBookingDateTime'),
          grant.from ? new Date(grant.from) : undefined,
        );
        const to = earliestDate(
          timestamp(query.toBookingDateTime, 'toBookingDateTime'),
          grant.to ? new Date(grant.to) : undefined,
        );
        const page = await accounts.transactions(
          account,
          {
            ...(from && { from }),
            ...(to && { to: new Date(to.getTime() + 1) }),
            ...(credits !== debits && { side: credits ? 'credit' : 'debit' }),
          },
          query.cursor ? BigInt(query.cursor) : undefined,
          TRANSACTIONS_PAGE + 1,
        );
        const exponent = currencyExponent(account.currency) ?? 2;
        const shown = page.slice(0, TRANSACTIONS_PAGE);
        const base = `/accounts/${account.id}/transactions`;
        const next = new URLSearchParams({
          ...(query.fromBookingDateTime && { fromBookingDateTime: query.fromBookingDateTime }),
          ...(query.toBookingDateTime && { toBookingDateTime: query.toBookingDateTime }),
          cursor: String(shown.at(-1)?.seq ?? 0n),
        });
        return {
          Data: {
            Transaction: shown.map((transaction) => transactionJson(account, transaction, exponent, detail)),
          },
          Links: {
            Self: self(
              `${base}${request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : ''}`,
            ),
            ...(page.length > TRANSACTIONS_PAGE && { Next: self(`${base}?${next}`) }),
          },
          Meta: {},
        };
      },
    );

    for (const [path, kind, key] of [
      ['standing-orders', 'standing', 'StandingOrder'],
      ['scheduled-payments', 'scheduled', 'ScheduledPayment'],
    ] as const) {
      const basic = kind === 'standing' ? 'ReadStandingOrdersBasic' : 'ReadScheduledPaymentsBasic';
      const detail = kind === 'standing' ? 'ReadStandingOrdersDetail' : 'ReadScheduledPaymentsDetail';
      scope.get(
        `${AISP_PREFIX}/accounts/:AccountId/${path}`,
        { schema: AccountParams, onRequest: gateway('accounts') },
        async (request) => {
          const grant = grantOf(request);
          needs(grant, basic, detail);
          const account = await accountOf(grant, request.params.AccountId);
          return {
            Data: { [key]: await ordersJson(grant, new Set([account.id]), kind) },
            Links: { Self: self(`/accounts/${account.id}/${path}`) },
            Meta: {},
          };
        },
      );
      scope.get(
        `${AISP_PREFIX}/${path}`,
        { schema: Hidden, onRequest: gateway('accounts') },
        async (request) => {
          const grant = grantOf(request);
          needs(grant, basic, detail);
          // Only accounts the customer still holds: one closed since the consent shows nothing.
          const held = new Set((await consentAccounts(grant)).map((account) => account.id));
          return {
            Data: { [key]: await ordersJson(grant, held, kind) },
            Links: { Self: self(`/${path}`) },
            Meta: {},
          };
        },
      );
    }

    scope.get(
      `${AISP_PREFIX}/accounts/:AccountId/product`,
      { schema: AccountParams, onRequest: gateway('accounts') },
      async (request) => {
        const grant = grantOf(request);
        needs(grant, 'ReadProducts');
        const account = await accountOf(grant, request.params.AccountId);
        const business = (await customers.kind(grant.customerId)) === 'business';
        return {
          Data: { Product: [productJson(account, business)] },
          Links: { Self: self(`/accounts/${account.id}/product`) },
          Meta: {},
        };
      },
    );

    scope.get(
      `${AISP_PREFIX}/products`,
      { schema: Hidden, onRequest: gateway('accounts') },
      async (request) => {
        const grant = grantOf(request);
        needs(grant, 'ReadProducts');
        const business = (await customers.kind(grant.customerId)) === 'business';
        const held = await consentAccounts(grant);
        return {
          Data: { Product: held.map((account) => productJson(account, business)) },
          Links: { Self: self('/products') },
          Meta: {},
        };
      },
    );

    scope.get(
      `${AISP_PREFIX}/accounts/:AccountId/party`,
      { schema: AccountParams, onRequest: gateway('accounts') },
      async (request) => {
        const grant = grantOf(request);
        needs(grant, 'ReadParty');
        const account = await accountOf(grant, request.params.AccountId);
        // Accounts have one holder here: the customer owns it alone.
        return {
          Data: { Party: { ...(await partyJson(grant)), PartyType: 'Sole', AccountRole: 'UK.OBIE.Owner' } },
          Links: { Self: self(`/accounts/${account.id}/party`) },
          Meta: {},
        };
      },
    );

    scope.get(`${AISP_PREFIX}/party`, { schema: Hidden, onRequest: gateway('accounts') }, async (request) => {
      const grant = grantOf(request);
      needs(grant, 'ReadPartyPSU');
      return { Data: { Party: await partyJson(grant) }, Links: { Self: self('/party') }, Meta: {} };
    });

    scope.get(
      `${AISP_PREFIX}/balances`,
      { schema: Hidden, onRequest: gateway('accounts') },
      async (request) => {
        const grant = grantOf(request);
        needs(grant, 'ReadBalances');
        const held = await consentAccounts(grant);
        return {
          Data: { Balance: (await Promise.all(held.map(balancesJson))).flat() },
          Links: { Self: self('/balances') },
          Meta: {},
        };
      },
    );
  });
}

const FREQUENCY: Readonly<Record<NonNullable<PaymentOrder['schedule']['frequency']>, string>> = {
  daily: 'DAIL',
  weekly: 'WEEK',
  monthly: 'MNTH',
  yearly: 'YEAR',
};
const ORDER_STATUS: Readonly<Record<PaymentOrder['status'], string>> = {
  active: 'ACTV',
  cancelled: 'CANC',
  completed: 'EXPI',
};
// Orders fall due on calendar dates; the specification wants date-times: the start of the day, UTC.
const dayStart = (date: string) => `${date}T00:00:00+00:00`;

/** Detail adds the payee (CreditorAccount), as the permissions table of the specification says. */
function creditorJson(order: PaymentOrder) {
  return {
    CreditorAccount: {
      SchemeName: 'UK.OBIE.IBAN',
      Identification: order.creditor.iban,
      Name: order.creditor.name.slice(0, 350),
    },
  };
}

function standingOrderJson(order: PaymentOrder, detail: boolean) {
  const amount = { Amount: order.instructedAmount.amount, Currency: order.instructedAmount.currency };
  const lastPaid = order.runs.filter((run) => run.status === 'paid').at(-1);
  const active = order.status === 'active' && order.nextRunOn !== null;
  const schedule = order.schedule;
  return {
    AccountId: order.debtorAccountId,
    StandingOrderId: order.id,
    StandingOrderStatusCode: ORDER_STATUS[order.status],
    ...(schedule.countMax !== null && { NumberOfPayments: String(schedule.countMax) }),
    FirstPaymentAmount: amount,
    ...(active && { NextPaymentDateTime: dayStart(order.nextRunOn ?? ''), NextPaymentAmount: amount }),
    ...(lastPaid && { LastPaymentDateTime: dayStart(lastPaid.runOn), LastPaymentAmount: amount }),
    // Every payment of an order is the same amount, so the final one is known whenever the order ends.
    ...((schedule.countMax !== null || schedule.last !== null) && { FinalPaymentAmount: amount }),
    MandateRelatedInformation: {
      FirstPaymentDateTime: dayStart(schedule.first),
      ...(schedule.last !== null && { FinalPaymentDateTime: dayStart(schedule.last) }),
      Frequency: { Type: schedule.frequency ? FREQUENCY[schedule.frequency] : 'NONE' },
    },
    ...(order.reference && { RemittanceInformation: { Unstructured: [order.reference.slice(0, 140)] } }),
    ...(detail && creditorJson(order)),
  };
}

function scheduledPaymentJson(order: PaymentOrder, detail: boolean) {
  return {
    AccountId: order.debtorAccountId,
    ScheduledPaymentId: order.id,
    ScheduledPaymentDateTime: dayStart(order.nextRunOn ?? order.schedule.first),
    // The bank sends it on that day: the date is when it leaves, not when it arrives.
    ScheduledType: 'Execution',
    ...(order.reference && { Reference: order.reference.slice(0, 35) }),
    InstructedAmount: { Amount: order.instructedAmount.amount, Currency: order.instructedAmount.currency },
    ...(detail && creditorJson(order)),
  };
}

function productJson(account: BankAccount, business: boolean) {
  if (account.product === 'current') {
    return {
      AccountId: account.id,
      ProductId: account.product,
      ProductName: 'Current account',
      ProductType: business ? 'BusinessCurrentAccount' : 'PersonalCurrentAccount',
    };
  }
  // The specification has no savings type: Other, named.
  return {
    AccountId: account.id,
    ProductId: account.product,
    ProductName: 'Savings account',
    ProductType: 'Other',
    OtherProductType: { Name: 'Savings account', Description: 'An easy-access savings account' },
  };
}

function consentJson(consent: Consent, selfUrl: string) {
  const terms = consent.details as ObTerms;
  return {
    Data: {
      ConsentId: consent.id,
      CreationDateTime: consent.createdAt.toISOString(),
      Status: OB_STATUS[consent.status],
      StatusUpdateDateTime: consent.statusUpdatedAt.toISOString(),
      Permissions: terms.obPermissions ?? [],
      ExpirationDateTime: consent.expiresAt.toISOString(),
      ...(terms.transactionFromDateTime && { TransactionFromDateTime: terms.transactionFromDateTime }),
      ...(terms.transactionToDateTime && { TransactionToDateTime: terms.transactionToDateTime }),
    },
    Risk: {},
    Links: { Self: selfUrl },
    Meta: {},
  };
}

const ACCOUNT_STATUS: Readonly<Record<BankAccount['status'], string>> = {
  active: 'Enabled',
  frozen: 'Disabled',
  closed: 'Deleted',
};

function accountJson(account: BankAccount, permissions: ReadonlySet<ObPermission>) {
  return {
    AccountId: account.id,
    Status: ACCOUNT_STATUS[account.status],
    StatusUpdateDateTime: account.statusUpdatedAt.toISOString(),
    Currency: account.currency,
    AccountTypeCode: account.product === 'savings' ? 'SVGS' : 'CACC',
    Nickname: account.name.slice(0, 70),
    OpeningDate: account.createdAt.toISOString(),
    // The account's number only with ReadAccountsDetail (Account and Transaction API, permissions table).
    ...(permissions.has('ReadAccountsDetail') && {
      Account: [{ SchemeName: 'UK.OBIE.IBAN', Identification: account.iban }],
    }),
  };
}

function transactionJson(account: BankAccount, transaction: Transaction, exponent: number, detail: boolean) {
  const money = (minor: bigint) => formatAmount(minor < 0n ? -minor : minor, exponent);
  const credit = transaction.direction === 'credit';
  const counterparty = transaction.counterparty;
  const information = [counterparty.name, transaction.reference].filter(Boolean).join(' · ');
  return {
    AccountId: account.id,
    TransactionId: `${transaction.transferId}:${transaction.seq}`,
    ...(transaction.reference && { TransactionReference: transaction.reference.slice(0, 210) }),
    CreditDebitIndicator: credit ? 'Credit' : 'Debit',
    Status: 'BOOK',
    BookingDateTime: transaction.bookedAt.toISOString(),
    Amount: { Amount: money(transaction.amount), Currency: account.currency },
    // Detail adds what Basic leaves out: the narrative, the running balance and the other party.
    ...(detail && {
      ...(information && { TransactionInformation: information.slice(0, 500) }),
      Balance: {
        CreditDebitIndicator: transaction.balanceAfter < 0n ? 'Debit' : 'Credit',
        Type: 'ITBD',
        Amount: { Amount: money(transaction.balanceAfter), Currency: account.currency },
      },
      ...(counterparty.name && {
        [credit ? 'DebtorAccount' : 'CreditorAccount']: {
          ...(counterparty.iban && !counterparty.iban.includes('*')
            ? { SchemeName: 'UK.OBIE.IBAN', Identification: counterparty.iban }
            : {}),
          Name: counterparty.name.slice(0, 350),
        },
      }),
    }),
  };
}

function timestamp(text: string | undefined, path: string): Date | undefined {
  if (text === undefined) return undefined;
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) {
    throw ObError.of(400, OB_ERROR_CODES.fieldInvalid, 'is not a date and time that exists', path);
  }
  return date;
}

const earliest = (texts: (string | undefined)[]) =>
  texts.some((t) => t === undefined) ? undefined : texts.sort()[0];
const latest = (texts: (string | undefined)[]) =>
  texts.some((t) => t === undefined) ? undefined : texts.sort().at(-1);
const latestDate = (a: Date | undefined, b: Date | undefined) => (a && b ? (a > b ? a : b) : (a ?? b));
const earliestDate = (a: Date | undefined, b: Date | undefined) => (a && b ? (a < b ? a : b) : (a ?? b));
