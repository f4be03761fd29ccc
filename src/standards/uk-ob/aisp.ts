// UK Open Banking Read/Write v4.0, Account and Transaction API (`/open-banking/v4.0/aisp`), over the bank's
// own consents and accounts: an account-access consent is an `account_information` consent (the same id,
// authorised at the same consent page through the same OAuth flow, revoked the same way), and the accounts
// are src/accounts/'s, in the specification's shapes: their standing orders and scheduled payments are
// src/payments/orders.ts's, their party the customer (src/customers/), their statements the calendar months
// src/accounts/ computes from the ledger, their direct debits the customer's mandates (src/mandates/), their
// beneficiaries the payees the customer paid (src/payments/). The bank makes no offers: that list is empty.
// The contract is the official file (specs/uk-open-banking-v4.0/account-info-openapi.yaml), so these routes
// stay out of /openapi.json.
import type { FastifyRequest } from 'fastify';
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { type Static, Type } from 'typebox';
import type { Accounts, Transaction } from '../../accounts/service.ts';
import type { BankAccount } from '../../accounts/store.ts';
import { CONSENT_VALIDITY_MAX_MS, type Consents } from '../../consents/service.ts';
import type { Consent } from '../../consents/store.ts';
import type { Customers } from '../../customers/service.ts';
import type { createGateway } from '../../gateway/gateway.ts';
import { type App, scoped } from '../../http/app.ts';
import { CHARGES_PAGE_MAX, type Charge, MANDATES_PAGE_MAX, type Mandates } from '../../mandates/service.ts';
import { currencyExponent, formatAmount } from '../../money.ts';
import { ORDERS_PAGE_MAX, type PaymentOrder, type PaymentOrders } from '../../payments/orders.ts';
import { PAYEES_PAGE_MAX, type Payee, type Payments } from '../../payments/service.ts';
import { consentMadeHere, managingApp, UUID } from './access.ts';
import {
  beneficiaryJson,
  directDebitJson,
  hasStatement,
  isDirectDebit,
  periodOf,
  statementJson,
  statementMonths,
} from './aisp-resources.ts';
import { OB_ERROR_CODES, ObError, useObConventions } from './errors.ts';
import { mapPermissions, OB_PERMISSIONS, type ObPermission } from './permissions.ts';

export const AISP_PREFIX = '/open-banking/v4.0/aisp';
// One page of transactions; the next is linked from Links.Next.
const TRANSACTIONS_PAGE = 200;
// The orders read for one answer: a customer's standing orders and scheduled payments are a few dozen;
// past this many the answer would be cut short, so it is refused rather than silently incomplete.
const ORDERS_READ_MAX = 10 * ORDERS_PAGE_MAX;
// The same bound for mandates, their charges read to find the last one paid, and payees.
const MANDATES_READ_MAX = 10 * MANDATES_PAGE_MAX;
const CHARGES_READ_MAX = 5 * CHARGES_PAGE_MAX;
const PAYEES_READ_MAX = 5 * PAYEES_PAGE_MAX;
// Statements a page: a year of months. Each Detail statement totals its month from the ledger.
const STATEMENTS_PAGE = 12;

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
    mandates: Mandates;
    payments: Payments;
    publicUrl: string;
  },
  gateway: ReturnType<typeof createGateway>,
): void {
  const { consents, accounts, orders, customers, mandates, payments, publicUrl } = deps;
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
      // Decrypted for this response only: the name and how to reach the customer (the party's fields in
      // OBParty2), never the date of birth, nationality or national id; nothing is logged.
      const customer = await customers.find(grant.customerId);
      if (!customer) throw new Error(`customer ${grant.customerId} of a live consent is gone`);
      const name = customer.legalName.slice(0, 350);
      const phone = parsePhoneNumberFromString(customer.phone);
      const lines = customer.address.lines.filter((line) => line.trim() !== '');
      return {
        PartyId: grant.customerId,
        Name: name,
        FullLegalName: name,
        ...(customer.email && { EmailAddress: customer.email.slice(0, 256) }),
        // E.164 in the specification's form: +44-7911123456.
        ...(phone && { Phone: `+${phone.countryCallingCode}-${phone.nationalNumber}` }),
        Address: [
          {
            ...(lines.length > 0 && { AddressLine: lines.slice(0, 7).map((line) => line.slice(0, 70)) }),
            ...(customer.address.city && { TownName: customer.address.city.slice(0, 140) }),
            ...(customer.address.postCode && { PostCode: customer.address.postCode.slice(0, 16) }),
            Country: customer.address.country,
          },
        ],
      };
    };

    /**
     * A resource of the consent's accounts, read for one (`/accounts/{AccountId}/<path>`) or for all the
     * customer still holds (`/<bulkPath>`): one of `permissions` needed, and the same `Data.<key>` either way.
     */
    const accountResource = (
      resource: { path: string; bulkPath: string; key: string; permissions: readonly ObPermission[] },
      data: (grant: Grant, accounts: readonly BankAccount[]) => Promise<unknown[]> | unknown[],
    ) => {
      const { path, bulkPath, key, permissions } = resource;
      const answer = async (grant: Grant, held: readonly BankAccount[], at: string) => ({
        Data: { [key]: await data(grant, held) },
        Links: { Self: self(at) },
        Meta: {},
      });
      scope.get(
        `${AISP_PREFIX}/accounts/:AccountId${path}`,
        { schema: AccountParams, onRequest: gateway('accounts') },
        async (request) => {
          const grant = grantOf(request);
          needs(grant, ...permissions);
          const account = await accountOf(grant, request.params.AccountId);
          return answer(grant, [account], `/accounts/${account.id}${path}`);
        },
      );
      scope.get(
        `${AISP_PREFIX}/${bulkPath}`,
        { schema: Hidden, onRequest: gateway('accounts') },
        async (request) => {
          const grant = grantOf(request);
          needs(grant, ...permissions);
          return answer(grant, await consentAccounts(grant), `/${bulkPath}`);
        },
      );
    };
    const idsOf = (held: readonly BankAccount[]) => new Set(held.map((account) => account.id));

    accountResource(
      {
        path: '',
        bulkPath: 'accounts',
        key: 'Account',
        permissions: ['ReadAccountsBasic', 'ReadAccountsDetail'],
      },
      (grant, held) => held.map((account) => accountJson(account, grant.permissions)),
    );
    accountResource(
      { path: '/balances', bulkPath: 'balances', key: 'Balance', permissions: ['ReadBalances'] },
      async (_, held) => (await Promise.all(held.map(balancesJson))).flat(),
    );

    /** Transactions need a level (Basic or Detail) and a direction (Credits and/or Debits) together. */
    const needsTransactions = (grant: Grant) => {
      needs(grant, 'ReadTransactionsBasic', 'ReadTransactionsDetail');
      needs(grant, 'ReadTransactionsCredits', 'ReadTransactionsDebits');
    };
    const statementsGranted = (grant: Grant) =>
      grant.permissions.has('ReadStatementsBasic') || grant.permissions.has('ReadStatementsDetail');
    /**
     * One page of the account's transactions booked in [from, to] (inclusive) within the consent's window,
     * in the directions it grants, newest first, before `cursor`; one more than a page tells if there is more.
     */
    const transactionsOf = async (
      grant: Grant,
      account: BankAccount,
      window: { from?: Date | undefined; to?: Date | undefined },
      cursor: bigint | undefined,
      limit: number,
    ) => {
      const credits = grant.permissions.has('ReadTransactionsCredits');
      const debits = grant.permissions.has('ReadTransactionsDebits');
      const from = latestDate(window.from, grant.from ? new Date(grant.from) : undefined);
      const to = earliestDate(window.to, grant.to ? new Date(grant.to) : undefined);
      return accounts.transactions(
        account,
        {
          ...(from && { from }),
          ...(to && { to: new Date(to.getTime() + 1) }),
          ...(credits !== debits && { side: credits ? 'credit' : 'debit' }),
        },
        cursor,
        limit,
      );
    };
    const transactionsJson = (grant: Grant, account: BankAccount, shown: readonly Transaction[]) => {
      const exponent = currencyExponent(account.currency) ?? 2;
      const detail = grant.permissions.has('ReadTransactionsDetail');
      const statements = statementsGranted(grant);
      return shown.map((transaction) => transactionJson(account, transaction, exponent, detail, statements));
    };
    const TransactionsQuery = Type.Object({
      fromBookingDateTime: Type.Optional(DateTimeText),
      toBookingDateTime: Type.Optional(DateTimeText),
      // Our own paging position, only ever taken from Links.Next.
      cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,19}$' })),
    });
    const queryOf = (url: string) => (url.includes('?') ? url.slice(url.indexOf('?')) : '');

    scope.get(
      `${AISP_PREFIX}/accounts/:AccountId/transactions`,
      { schema: { ...AccountParams, querystring: TransactionsQuery }, onRequest: gateway('accounts') },
      async (request) => {
        const grant = grantOf(request);
        needsTransactions(grant);
        const account = await accountOf(grant, request.params.AccountId);
        const query = request.query;
        const page = await transactionsOf(
          grant,
          account,
          {
            from: timestamp(query.fromBookingDateTime, 'fromBookingDateTime'),
            to: timestamp(query.toBookingDateTime, 'toBookingDateTime'),
          },
          query.cursor ? BigInt(query.cursor) : undefined,
          TRANSACTIONS_PAGE + 1,
        );
        const shown = page.slice(0, TRANSACTIONS_PAGE);
        const base = `/accounts/${account.id}/transactions`;
        const next = new URLSearchParams({
          ...(query.fromBookingDateTime && { fromBookingDateTime: query.fromBookingDateTime }),
          ...(query.toBookingDateTime && { toBookingDateTime: query.toBookingDateTime }),
          cursor: String(shown.at(-1)?.seq ?? 0n),
        });
        return {
          Data: { Transaction: transactionsJson(grant, account, shown) },
          Links: {
            Self: self(`${base}${queryOf(request.url)}`),
            ...(page.length > TRANSACTIONS_PAGE && { Next: self(`${base}?${next}`) }),
          },
          Meta: {},
        };
      },
    );

    // Every account of the consent, one after the other (in AccountId order), each newest first. The
    // position is the account and, within it, the entry sequence to continue before.
    scope.get(
      `${AISP_PREFIX}/transactions`,
      {
        schema: {
          ...Hidden,
          querystring: Type.Object({
            ...TransactionsQuery.properties,
            cursor: Type.Optional(
              Type.String({ pattern: '^[0-9a-f-]{36}(\\.[0-9]{1,19})?$', maxLength: 60 }),
            ),
          }),
        },
        onRequest: gateway('accounts'),
      },
      async (request) => {
        const grant = grantOf(request);
        needsTransactions(grant);
        const query = request.query;
        const window = {
          from: timestamp(query.fromBookingDateTime, 'fromBookingDateTime'),
          to: timestamp(query.toBookingDateTime, 'toBookingDateTime'),
        };
        const [cursorAccount, cursorSeq] = (query.cursor ?? '').split('.');
        const held = await consentAccounts(grant);
        const start = query.cursor ? held.findIndex((account) => account.id === cursorAccount) : 0;
        if (start < 0) {
          throw ObError.of(400, OB_ERROR_CODES.fieldInvalid, 'not a position this API gave', 'cursor');
        }
        const shown: { account: BankAccount; transactions: Transaction[] }[] = [];
        let count = 0;
        let next: string | undefined;
        for (let index = start; index < held.length && next === undefined; index++) {
          const account = held[index] as BankAccount;
          const before = index === start && cursorSeq ? BigInt(cursorSeq) : undefined;
          const wanted = TRANSACTIONS_PAGE - count;
          const page = await transactionsOf(grant, account, window, before, wanted + 1);
          const taken = page.slice(0, wanted);
          shown.push({ account, transactions: taken });
          count += taken.length;
          if (page.length > wanted) next = `${account.id}.${taken.at(-1)?.seq ?? before ?? 0n}`;
          else if (count === TRANSACTIONS_PAGE && index + 1 < held.length) next = held[index + 1]?.id;
        }
        const params = new URLSearchParams({
          ...(query.fromBookingDateTime && { fromBookingDateTime: query.fromBookingDateTime }),
          ...(query.toBookingDateTime && { toBookingDateTime: query.toBookingDateTime }),
          ...(next && { cursor: next }),
        });
        return {
          Data: {
            Transaction: shown.flatMap(({ account, transactions }) =>
              transactionsJson(grant, account, transactions),
            ),
          },
          Links: {
            Self: self(`/transactions${queryOf(request.url)}`),
            ...(next && { Next: self(`/transactions?${params}`) }),
          },
          Meta: {},
        };
      },
    );

    // ------------------------------------------------------------------------------------ statements

    const needsStatements = (grant: Grant) => needs(grant, 'ReadStatementsBasic', 'ReadStatementsDetail');
    /** The account's statement `id`, or 400 U011 when it has none by that id. */
    const statementPeriodOf = (account: BankAccount, id: string) => {
      if (!hasStatement(account, id, new Date())) {
        throw ObError.of(
          400,
          OB_ERROR_CODES.resourceNotFound,
          'no statement with this StatementId',
          'StatementId',
        );
      }
      return periodOf(id);
    };
    /** One statement: with its amounts from the ledger for ReadStatementsDetail, its period only for Basic. */
    const oneStatementJson = async (grant: Grant, account: BankAccount, month: string, now: Date) =>
      statementJson(
        account,
        periodOf(month),
        now,
        grant.permissions.has('ReadStatementsDetail') ? await accounts.statement(account, month) : undefined,
      );
    const StatementsQuery = Type.Object({
      fromStatementDateTime: Type.Optional(DateTimeText),
      toStatementDateTime: Type.Optional(DateTimeText),
      // Our own paging position, only ever taken from Links.Next.
      page: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,3}$' })),
    });
    /** The statements of `held` (newest month first, account by account), one page of them. */
    const statementsPage = async (
      grant: Grant,
      held: readonly BankAccount[],
      query: Static<typeof StatementsQuery>,
      base: string,
    ) => {
      const now = new Date();
      const from = timestamp(query.fromStatementDateTime, 'fromStatementDateTime');
      const to = timestamp(query.toStatementDateTime, 'toStatementDateTime');
      const all = held.flatMap((account) =>
        statementMonths(account, now, from, to).map((month) => ({ account, month })),
      );
      const pages = Math.max(1, Math.ceil(all.length / STATEMENTS_PAGE));
      const page = Number(query.page ?? '1');
      if (page > pages) {
        throw ObError.of(400, OB_ERROR_CODES.fieldInvalid, `there are ${pages} pages`, 'page');
      }
      const shown = all.slice((page - 1) * STATEMENTS_PAGE, page * STATEMENTS_PAGE);
      const link = (n: number) =>
        self(
          `${base}?${new URLSearchParams({
            ...(query.fromStatementDateTime && { fromStatementDateTime: query.fromStatementDateTime }),
            ...(query.toStatementDateTime && { toStatementDateTime: query.toStatementDateTime }),
            page: String(n),
          })}`,
        );
      const statements = [];
      // One at a time: a Detail statement reads its month from the ledger.
      for (const { account, month } of shown)
        statements.push(await oneStatementJson(grant, account, month, now));
      return {
        Data: { Statement: statements },
        Links: {
          Self: link(page),
          First: link(1),
          Last: link(pages),
          ...(page > 1 && { Prev: link(page - 1) }),
          ...(page < pages && { Next: link(page + 1) }),
        },
        Meta: { TotalPages: pages },
      };
    };
    const StatementParams = Type.Object({ AccountId: Type.String(), StatementId: Type.String() });

    scope.get(
      `${AISP_PREFIX}/accounts/:AccountId/statements`,
      { schema: { ...AccountParams, querystring: StatementsQuery }, onRequest: gateway('accounts') },
      async (request) => {
        const grant = grantOf(request);
        needsStatements(grant);
        const account = await accountOf(grant, request.params.AccountId);
        return statementsPage(grant, [account], request.query, `/accounts/${account.id}/statements`);
      },
    );

    scope.get(
      `${AISP_PREFIX}/statements`,
      { schema: { ...Hidden, querystring: StatementsQuery }, onRequest: gateway('accounts') },
      async (request) => {
        const grant = grantOf(request);
        needsStatements(grant);
        return statementsPage(grant, await consentAccounts(grant), request.query, '/statements');
      },
    );

    scope.get(
      `${AISP_PREFIX}/accounts/:AccountId/statements/:StatementId`,
      { schema: { ...Hidden, params: StatementParams }, onRequest: gateway('accounts') },
      async (request) => {
        const grant = grantOf(request);
        needsStatements(grant);
        const account = await accountOf(grant, request.params.AccountId);
        const period = statementPeriodOf(account, request.params.StatementId);
        return {
          Data: { Statement: [await oneStatementJson(grant, account, period.month, new Date())] },
          Links: { Self: self(`/accounts/${account.id}/statements/${period.month}`) },
          Meta: {},
        };
      },
    );

    // The month's movements, with the same access as /accounts/{AccountId}/transactions (Account and
    // Transaction API, statements: ReadTransactions* required, the consent's window and directions apply).
    scope.get(
      `${AISP_PREFIX}/accounts/:AccountId/statements/:StatementId/transactions`,
      {
        schema: {
          ...Hidden,
          params: StatementParams,
          querystring: Type.Object({ cursor: TransactionsQuery.properties.cursor }),
        },
        onRequest: gateway('accounts'),
      },
      async (request) => {
        const grant = grantOf(request);
        needsTransactions(grant);
        const account = await accountOf(grant, request.params.AccountId);
        const period = statementPeriodOf(account, request.params.StatementId);
        const page = await transactionsOf(
          grant,
          account,
          { from: period.start, to: new Date(period.end.getTime() - 1) },
          request.query.cursor ? BigInt(request.query.cursor) : undefined,
          TRANSACTIONS_PAGE + 1,
        );
        const shown = page.slice(0, TRANSACTIONS_PAGE);
        const base = `/accounts/${account.id}/statements/${period.month}/transactions`;
        return {
          Data: { Transaction: transactionsJson(grant, account, shown) },
          Links: {
            Self: self(`${base}${queryOf(request.url)}`),
            ...(page.length > TRANSACTIONS_PAGE && {
              Next: self(`${base}?cursor=${shown.at(-1)?.seq ?? 0n}`),
            }),
          },
          Meta: {},
        };
      },
    );

    // The statement as a document: the bank's own statement (src/accounts/statement-formats.ts) in its JSON
    // form, the only media type the specification declares for the file. The bank's PDF and CSV of the same
    // month are served by its own API; asked for here, they are not acceptable (406).
    scope.get(
      `${AISP_PREFIX}/accounts/:AccountId/statements/:StatementId/file`,
      { schema: { ...Hidden, params: StatementParams }, onRequest: gateway('accounts') },
      async (request, reply) => {
        const grant = grantOf(request);
        needs(grant, 'ReadStatementsDetail');
        const account = await accountOf(grant, request.params.AccountId);
        const period = statementPeriodOf(account, request.params.StatementId);
        if (!acceptsJson(request.headers.accept)) return reply.code(406).send();
        const statement = await accounts.statement(account, period.month);
        if (statement === 'too_many_lines') {
          throw ObError.of(
            400,
            OB_ERROR_CODES.narrative,
            'this month has too many movements for one statement file: read its transactions instead',
          );
        }
        return statement;
      },
    );

    // --------------------------------------------------------------------------------- direct debits

    /** The customer's direct debits (mandates they authorised) on `accountIds`, each with its last payment. */
    const directDebitsJson = async (grant: Grant, accountIds: ReadonlySet<string>) => {
      const found: Awaited<ReturnType<typeof mandates.listForCustomer>> = [];
      let after: string | undefined;
      for (let read = 0; ; ) {
        const page = await mandates.listForCustomer(grant.customerId, after, MANDATES_PAGE_MAX);
        read += page.length;
        found.push(...page.filter((m) => isDirectDebit(m) && accountIds.has(m.debtorAccountId ?? '')));
        if (page.length < MANDATES_PAGE_MAX) break;
        if (read >= MANDATES_READ_MAX) {
          throw ObError.of(403, OB_ERROR_CODES.narrative, 'too many direct debits to list them here');
        }
        after = page.at(-1)?.id;
      }
      return Promise.all(
        found.map(async (mandate) => directDebitJson(mandate, await lastPaid(grant, mandate.id))),
      );
    };
    /** The mandate's latest charge that took money (charges come newest first). */
    const lastPaid = async (grant: Grant, mandateId: string): Promise<Charge | undefined> => {
      let before: string | undefined;
      for (let read = 0; read < CHARGES_READ_MAX; ) {
        const page =
          (await mandates.charges({ customerId: grant.customerId }, mandateId, before, CHARGES_PAGE_MAX)) ??
          [];
        const paid = page.find((charge) => charge.status === 'succeeded');
        if (paid || page.length < CHARGES_PAGE_MAX) return paid;
        read += page.length;
        before = page.at(-1)?.id;
      }
      return undefined;
    };

    accountResource(
      {
        path: '/direct-debits',
        bulkPath: 'direct-debits',
        key: 'DirectDebit',
        permissions: ['ReadDirectDebits'],
      },
      (grant, held) => directDebitsJson(grant, idsOf(held)),
    );

    // --------------------------------------------------------------------------------- beneficiaries

    /** Whom the customer paid from `accountIds`, all of them (bounded), in account and IBAN order. */
    const payeesOf = async (grant: Grant, accountIds: readonly string[]) => {
      const found: Payee[] = [];
      let after: { accountId: string; iban: string } | undefined;
      for (;;) {
        const page = await payments.payees(grant.customerId, accountIds, after, PAYEES_PAGE_MAX);
        found.push(...page);
        if (page.length < PAYEES_PAGE_MAX) return found;
        if (found.length >= PAYEES_READ_MAX) {
          throw ObError.of(403, OB_ERROR_CODES.narrative, 'too many beneficiaries to list them here');
        }
        const last = page.at(-1) as Payee;
        after = { accountId: last.debtorAccountId, iban: last.creditor.iban };
      }
    };
    const beneficiariesJson = async (grant: Grant, accountIds: readonly string[]) => {
      const detail = grant.permissions.has('ReadBeneficiariesDetail');
      return (await payeesOf(grant, accountIds)).map((payee) => beneficiaryJson(payee, detail));
    };

    accountResource(
      {
        path: '/beneficiaries',
        bulkPath: 'beneficiaries',
        key: 'Beneficiary',
        permissions: ['ReadBeneficiariesBasic', 'ReadBeneficiariesDetail'],
      },
      (grant, held) => beneficiariesJson(grant, [...idsOf(held)]),
    );

    // ------------------------------------------------------------------------------------------ offers

    // The bank has no credit or product offers (no such module in the core): the honest answer is none.
    accountResource(
      { path: '/offers', bulkPath: 'offers', key: 'Offer', permissions: ['ReadOffers'] },
      () => [],
    );

    for (const [path, kind, key] of [
      ['standing-orders', 'standing', 'StandingOrder'],
      ['scheduled-payments', 'scheduled', 'ScheduledPayment'],
    ] as const) {
      const permissions =
        kind === 'standing'
          ? (['ReadStandingOrdersBasic', 'ReadStandingOrdersDetail'] as const)
          : (['ReadScheduledPaymentsBasic', 'ReadScheduledPaymentsDetail'] as const);
      accountResource({ path: `/${path}`, bulkPath: path, key, permissions }, (grant, held) =>
        ordersJson(grant, idsOf(held), kind),
      );
    }

    accountResource(
      { path: '/product', bulkPath: 'products', key: 'Product', permissions: ['ReadProducts'] },
      async (grant, held) => {
        const business = (await customers.kind(grant.customerId)) === 'business';
        return held.map((account) => productJson(account, business));
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

    // The account's parties: one holder, the customer (ReadParty, as for /party of the account).
    scope.get(
      `${AISP_PREFIX}/accounts/:AccountId/parties`,
      { schema: AccountParams, onRequest: gateway('accounts') },
      async (request) => {
        const grant = grantOf(request);
        needs(grant, 'ReadParty');
        const account = await accountOf(grant, request.params.AccountId);
        return {
          Data: {
            Party: [{ ...(await partyJson(grant)), PartyType: 'Sole', AccountRole: 'UK.OBIE.Owner' }],
          },
          Links: { Self: self(`/accounts/${account.id}/parties`) },
          Meta: {},
        };
      },
    );

    scope.get(`${AISP_PREFIX}/party`, { schema: Hidden, onRequest: gateway('accounts') }, async (request) => {
      const grant = grantOf(request);
      needs(grant, 'ReadPartyPSU');
      return { Data: { Party: await partyJson(grant) }, Links: { Self: self('/party') }, Meta: {} };
    });
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

function transactionJson(
  account: BankAccount,
  transaction: Transaction,
  exponent: number,
  detail: boolean,
  statements: boolean,
) {
  const money = (minor: bigint) => formatAmount(minor < 0n ? -minor : minor, exponent);
  const credit = transaction.direction === 'credit';
  const counterparty = transaction.counterparty;
  const information = [counterparty.name, transaction.reference].filter(Boolean).join(' · ');
  return {
    AccountId: account.id,
    TransactionId: `${transaction.transferId}:${transaction.seq}`,
    ...(transaction.reference && { TransactionReference: transaction.reference.slice(0, 210) }),
    // The monthly statement the transaction appears on (its StatementId), for a consent that reads statements.
    ...(statements && { StatementReference: [transaction.bookedAt.toISOString().slice(0, 7)] }),
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

/** Whether an Accept header admits JSON (RFC 9110 §12.5.1; none at all admits anything). */
function acceptsJson(accept: string | undefined): boolean {
  if (accept === undefined || accept.trim() === '') return true;
  return accept.split(',').some((range) => {
    const [type = '', ...params] = range.split(';').map((part) => part.trim().toLowerCase());
    const refused = params.some((param) => /^q=0(\.0{0,3})?$/.test(param));
    return !refused && ['application/json', 'application/*', '*/*'].includes(type);
  });
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
