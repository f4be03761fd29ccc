// Accounts over HTTP, for two kinds of caller: a third-party app under the customer's consent (only the
// accounts the customer chose, only the permissions granted) at /v1/accounts, and the customer at the
// bank's own pages (everything of theirs) at /v1/me/accounts. The handlers are the same; who may see what
// is decided once per request, in an `AccountScope`.
import type { FastifyRequest, onRequestHookHandler } from 'fastify';
import { type Static, Type } from 'typebox';
import { customerSession } from '../consents/customer-routes.ts';
import { ACCOUNT_PERMISSIONS } from '../consents/routes.ts';
import { PAGE_HEADERS } from '../customer-auth/routes.ts';
import type { CustomerAuth } from '../customer-auth/service.ts';
import { type App, scoped } from '../http/app.ts';
import { requireBearerToken } from '../http/auth.ts';
import {
  CURSOR_POSITION,
  decodeCursor,
  PageCursor,
  PageLimit,
  PageQuery,
  pageLimit,
  pageOf,
} from '../http/cursor.ts';
import { Problem } from '../http/problems.ts';
import {
  Binary,
  CurrencyCode,
  DateOnly,
  DateTime,
  Decimal,
  NextCursor,
  Nullable,
  ReadonlyList,
  StringEnum,
  Uuid,
} from '../http/schemas.ts';
import { AMOUNT_PATTERN, currencyExponent, formatAmount, MINOR_MAX, parseAmount } from '../money.ts';
import { PAYEES_PAGE_MAX, type Payee, type Payments } from '../payments/service.ts';
import { maskIban } from './iban.ts';
import { myAccountsPage } from './pages.ts';
import { ACCOUNTS_PAGE_MAX, type Accounts, TRANSACTIONS_PAGE_MAX, type Transaction } from './service.ts';
import { statementCsv, statementPdf } from './statement-formats.ts';
import type { BankAccount } from './store.ts';

type Permission = (typeof ACCOUNT_PERMISSIONS)[number];

export interface AccountScope {
  readonly customerId: string;
  /** The accounts the caller may see; undefined: all of the customer's. */
  readonly accountIds: ReadonlySet<string> | undefined;
  readonly permissions: ReadonlySet<Permission>;
}

const ALL_PERMISSIONS: ReadonlySet<Permission> = new Set(ACCOUNT_PERMISSIONS);

/** The customer at the bank's own pages sees every account of theirs, in full. */
export function scopeOfCustomer(customerId: string): AccountScope {
  return { customerId, accountIds: undefined, permissions: ALL_PERMISSIONS };
}

/** What a third party's token allows: the union of its account-information consents, or the plain scope. */
export function scopeOfAccess(request: FastifyRequest): AccountScope {
  const access = request.access;
  if (!access) throw new Error('route registered without requireAccess');
  if (access.subject === access.clientId) {
    throw new Problem(
      'insufficient_scope',
      "reading accounts needs the customer's authorisation, not an app token",
    );
  }
  const consents = access.consents.filter((consent) => consent.type === 'account_information');
  if (consents.length === 0) {
    // The plain `accounts` scope: the consent page said "see your accounts, balances and transactions".
    return {
      customerId: access.subject,
      accountIds: undefined,
      permissions: new Set(['details', 'balances', 'transactions']),
    };
  }
  return {
    customerId: access.subject,
    accountIds: new Set(consents.flatMap((consent) => consent.accountIds ?? [])),
    permissions: new Set(
      consents.flatMap((consent) => (consent.details as { permissions?: Permission[] }).permissions ?? []),
    ),
  };
}

const Id = Type.String({ pattern: CURSOR_POSITION.uuid.source });
// Years 1000 to 2999: neither year 0 nor the day after 9999-12-31 is a timestamp PostgreSQL takes.
const YEAR = '[12][0-9]{3}';
const DATE = `^${YEAR}-[0-9]{2}-[0-9]{2}$`;
const MONTH = `^${YEAR}-(0[1-9]|1[0-2])$`;
const TransactionsQuery = Type.Object(
  {
    bookedFrom: Type.Optional(
      Type.String({ pattern: DATE, description: 'First booking date, inclusive (UTC)' }),
    ),
    bookedTo: Type.Optional(
      Type.String({ pattern: DATE, description: 'Last booking date, inclusive (UTC)' }),
    ),
    minAmount: Type.Optional(Type.String({ pattern: AMOUNT_PATTERN })),
    maxAmount: Type.Optional(Type.String({ pattern: AMOUNT_PATTERN })),
    direction: Type.Optional(Type.Union([Type.Literal('credit'), Type.Literal('debit')])),
    cursor: Type.Optional(PageCursor),
    limit: Type.Optional(PageLimit),
  },
  { additionalProperties: false },
);

const AccountView = Type.Object(
  {
    id: Uuid,
    name: Type.String(),
    product: StringEnum(['current', 'savings']),
    currency: CurrencyCode,
    iban: Type.String({ description: 'Masked (GB**…5678) unless the consent grants details' }),
    status: StringEnum(['active', 'frozen', 'closed']),
    openedAt: DateTime,
  },
  { description: 'An account' },
);
const AccountPage = Type.Object(
  { accounts: Type.Array(AccountView), nextCursor: NextCursor },
  { description: 'Accounts' },
);
const BalancesView = Type.Object(
  { accountId: Uuid, currency: CurrencyCode, booked: Decimal, available: Decimal, pending: Decimal },
  { description: 'Booked, available (booked less holds) and pending balances' },
);
// A page asks the service for one more payee than it shows, within the service's cap.
const BENEFICIARIES_PAGE_MAX = PAYEES_PAGE_MAX - 1;
const BeneficiaryPage = Type.Object(
  {
    beneficiaries: Type.Array(
      Type.Object({
        id: Type.String({ description: 'The first payment to this payee from the account: stable' }),
        name: Type.String({ description: 'As the latest payment named the payee' }),
        iban: Type.String(),
        reference: Nullable(Type.String({ description: "The latest payment's reference" })),
        lastPaidAt: DateTime,
      }),
    ),
    nextCursor: NextCursor,
  },
  {
    description:
      'Whom the customer paid from the account (payments that left it; mandate charges aside), by IBAN. ' +
      'The bank keeps no list of saved payees: a payee is someone paid.',
  },
);
const TransactionPage = Type.Object(
  {
    transactions: Type.Array(
      Type.Object({
        id: Type.String({ description: 'The transfer id and the entry number' }),
        transferId: Uuid,
        bookedAt: DateTime,
        direction: StringEnum(['credit', 'debit'], { description: 'credit is money in' }),
        amount: Decimal,
        balanceAfter: Decimal,
        counterparty: Type.Object({ name: Nullable(Type.String()), iban: Nullable(Type.String()) }),
        reference: Nullable(Type.String()),
        category: Nullable(Type.String()),
      }),
    ),
    nextCursor: NextCursor,
  },
  { description: 'Transactions, newest first' },
);
// The JSON form of Statement (statement-formats.ts), which the CSV and PDF forms render.
const StatementView = Type.Object({
  bank: Type.Object({ name: Type.String() }),
  account: Type.Object({
    id: Uuid,
    iban: Type.String(),
    name: Type.String(),
    currency: CurrencyCode,
    holderName: Type.String(),
  }),
  period: Type.Object({ month: Type.String({ pattern: MONTH }), from: DateOnly, to: DateOnly }),
  openingBalance: Decimal,
  closingBalance: Decimal,
  totalCredits: Decimal,
  totalDebits: Decimal,
  lines: ReadonlyList(
    Type.Object({
      bookedAt: DateTime,
      description: Type.String(),
      category: Nullable(Type.String()),
      direction: StringEnum(['credit', 'debit']),
      amount: Decimal,
      balance: Decimal,
    }),
  ),
  generatedAt: DateTime,
});
const StatementResponse = {
  description: 'The month, in the format asked for',
  content: {
    'application/json': { schema: StatementView },
    'text/csv': { schema: Type.String() },
    'application/pdf': { schema: Binary },
  },
};

function accountJson(account: BankAccount, scope: AccountScope) {
  return {
    id: account.id,
    name: account.name,
    product: account.product,
    currency: account.currency,
    // The full number only with the `details` permission; enough to recognise it otherwise.
    iban: scope.permissions.has('details') ? account.iban : maskIban(account.iban),
    status: account.status,
    openedAt: account.createdAt.toISOString(),
  };
}

function beneficiaryJson(payee: Payee) {
  return {
    id: payee.id,
    name: payee.creditor.name,
    iban: payee.creditor.iban,
    reference: payee.reference,
    lastPaidAt: payee.lastPaidAt.toISOString(),
  };
}

function transactionJson(transaction: Transaction, exponent: number) {
  return {
    id: `${transaction.transferId}:${transaction.seq}`,
    transferId: transaction.transferId,
    bookedAt: transaction.bookedAt.toISOString(),
    direction: transaction.direction,
    amount: formatAmount(transaction.amount, exponent),
    balanceAfter: formatAmount(transaction.balanceAfter, exponent),
    counterparty: transaction.counterparty,
    reference: transaction.reference,
    category: transaction.category,
  };
}

function dayStart(text: string | undefined, field: string, plusDays = 0): Date | undefined {
  if (text === undefined) return undefined;
  const date = new Date(`${text}T00:00:00Z`);
  if (Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== text) {
    throw new Problem('validation_failed', `${field} is not a date that exists`, {
      errors: [{ field, message: 'is not a date that exists' }],
    });
  }
  return new Date(date.getTime() + plusDays * 86_400_000);
}

function minorOf(text: string | undefined, exponent: number, field: string): bigint | undefined {
  if (text === undefined) return undefined;
  const amount = parseAmount(text);
  if (!amount || amount.scale > exponent) {
    throw new Problem('validation_failed', `${field} has more decimals than the currency`, {
      errors: [{ field, message: `must have at most ${exponent} decimals` }],
    });
  }
  const minor = amount.minor * 10n ** BigInt(exponent - amount.scale);
  if (minor > MINOR_MAX) {
    throw new Problem('validation_failed', `${field} is larger than any balance`, {
      errors: [{ field, message: 'is larger than any balance' }],
    });
  }
  return minor;
}

export function registerAccountRoutes(
  app: App,
  accounts: Accounts,
  options: {
    prefix: string;
    onRequest: onRequestHookHandler[];
    scopeOf: (request: FastifyRequest) => AccountScope;
    /** Whom the customer paid (src/payments/): the `beneficiaries` permission. */
    payees: Pick<Payments, 'payees'>;
  },
): void {
  const { prefix, onRequest, scopeOf, payees } = options;

  // Another customer's account, or one the consent does not cover, is simply not there (404).
  async function visibleAccount(request: FastifyRequest, id: string, needs?: Permission) {
    const scope = scopeOf(request);
    const account = await accounts.findForCustomer(scope.customerId, id);
    if (!account || (scope.accountIds && !scope.accountIds.has(account.id))) {
      throw new Problem('not_found', 'no account with this id');
    }
    if (needs && !scope.permissions.has(needs)) {
      throw new Problem('permission_not_granted', `the consent does not include ${needs}`);
    }
    return { account, scope };
  }

  app.get(
    prefix,
    {
      onRequest,
      schema: {
        querystring: PageQuery,
        response: { 200: AccountPage },
      },
    },
    async (request) => {
      const scope = scopeOf(request);
      const limit = pageLimit(request.query.limit, 50, ACCOUNTS_PAGE_MAX);
      const after = request.query.cursor && decodeCursor(request.query.cursor, 'acc', CURSOR_POSITION.uuid);
      const page = await accounts.list(
        scope.customerId,
        scope.accountIds && [...scope.accountIds],
        after || undefined,
        limit + 1,
      );
      const { rows, nextCursor } = pageOf(page, limit, 'acc', (last) => last.id);
      return {
        accounts: rows.map((account) => accountJson(account, scope)),
        nextCursor,
      };
    },
  );

  app.get(
    `${prefix}/:id`,
    { onRequest, schema: { params: Type.Object({ id: Id }), response: { 200: AccountView } } },
    async (request) => {
      const { account, scope } = await visibleAccount(request, request.params.id);
      return accountJson(account, scope);
    },
  );

  app.get(
    `${prefix}/:id/balances`,
    { onRequest, schema: { params: Type.Object({ id: Id }), response: { 200: BalancesView } } },
    async (request) => {
      const { account } = await visibleAccount(request, request.params.id, 'balances');
      const balances = await accounts.balances(account);
      const exponent = currencyExponent(account.currency) ?? 2;
      return {
        accountId: account.id,
        currency: account.currency,
        booked: formatAmount(balances.posted, exponent),
        available: formatAmount(balances.available, exponent),
        pending: formatAmount(balances.pending, exponent),
      };
    },
  );

  app.get(
    `${prefix}/:id/beneficiaries`,
    {
      onRequest,
      schema: {
        params: Type.Object({ id: Id }),
        querystring: PageQuery,
        response: { 200: BeneficiaryPage },
      },
    },
    async (request) => {
      const { account, scope } = await visibleAccount(request, request.params.id, 'beneficiaries');
      const limit = pageLimit(request.query.limit, 50, BENEFICIARIES_PAGE_MAX);
      const after = request.query.cursor && decodeCursor(request.query.cursor, 'payee', CURSOR_POSITION.iban);
      const page = await payees.payees(
        scope.customerId,
        [account.id],
        after ? { accountId: account.id, iban: after } : undefined,
        limit + 1,
      );
      const { rows, nextCursor } = pageOf(page, limit, 'payee', (last) => last.creditor.iban);
      return {
        beneficiaries: rows.map(beneficiaryJson),
        nextCursor,
      };
    },
  );

  app.get(
    `${prefix}/:id/transactions`,
    {
      onRequest,
      schema: {
        params: Type.Object({ id: Id }),
        querystring: TransactionsQuery,
        response: { 200: TransactionPage },
      },
    },
    async (request) => {
      const { account } = await visibleAccount(request, request.params.id, 'transactions');
      const query: Static<typeof TransactionsQuery> = request.query;
      const exponent = currencyExponent(account.currency) ?? 2;
      const limit = pageLimit(query.limit, 100, TRANSACTIONS_PAGE_MAX);
      const before = query.cursor && BigInt(decodeCursor(query.cursor, 'tx', CURSOR_POSITION.seq));
      const page = await accounts.transactions(
        account,
        {
          from: dayStart(query.bookedFrom, '/querystring/bookedFrom'),
          to: dayStart(query.bookedTo, '/querystring/bookedTo', 1),
          minAmount: minorOf(query.minAmount, exponent, '/querystring/minAmount'),
          maxAmount: minorOf(query.maxAmount, exponent, '/querystring/maxAmount'),
          side: query.direction,
        },
        before || undefined,
        limit + 1,
      );
      const { rows, nextCursor } = pageOf(page, limit, 'tx', (last) => last.seq.toString());
      return {
        transactions: rows.map((transaction) => transactionJson(transaction, exponent)),
        nextCursor,
      };
    },
  );

  app.get(
    `${prefix}/:id/statements/:month`,
    {
      onRequest,
      schema: {
        params: Type.Object({ id: Id, month: Type.String({ pattern: MONTH }) }),
        querystring: Type.Object(
          {
            format: Type.Optional(
              Type.Union([Type.Literal('json'), Type.Literal('csv'), Type.Literal('pdf')]),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: StatementResponse },
      },
    },
    async (request, reply) => {
      const { account } = await visibleAccount(request, request.params.id, 'transactions');
      const format = request.query.format ?? formatFromAccept(request.headers.accept);
      const statement = await accounts.statement(account, request.params.month);
      if (statement === 'too_many_lines') throw new Problem('statement_too_large');
      const filename = `statement-${request.params.month}`;
      if (format === 'csv') {
        return reply
          .header('content-type', 'text/csv; charset=utf-8')
          .header('content-disposition', `attachment; filename="${filename}.csv"`)
          .send(statementCsv(statement));
      }
      if (format === 'pdf') {
        return reply
          .header('content-type', 'application/pdf')
          .header('content-disposition', `attachment; filename="${filename}.pdf"`)
          .send(await statementPdf(statement));
      }
      return statement;
    },
  );
}

function formatFromAccept(accept: string | undefined): 'json' | 'csv' | 'pdf' {
  if (accept?.includes('application/pdf')) return 'pdf';
  if (accept?.includes('text/csv')) return 'csv';
  return 'json';
}

/** Operators freeze, reactivate and close accounts; closing needs a zero balance and nothing pending. */
export function registerAccountAdminRoutes(app: App, accounts: Accounts, adminToken: string): void {
  scoped(app, (operator) => {
    operator.addHook('onRequest', requireBearerToken(adminToken));
    operator.patch(
      '/v1/admin/accounts/:id',
      {
        schema: {
          params: Type.Object({ id: Id }),
          body: Type.Object(
            { status: Type.Union([Type.Literal('active'), Type.Literal('frozen'), Type.Literal('closed')]) },
            { additionalProperties: false },
          ),
          response: { 200: AccountView },
        },
      },
      async (request) => {
        const outcome = await accounts.setStatus(request.params.id, request.body.status);
        if (!outcome.ok) throw new Problem(outcome.code);
        return accountJson(outcome.account, scopeOfCustomer(outcome.account.customerId));
      },
    );
  });
}

const RECENT_TRANSACTIONS = 10;

/** `/me/accounts`: the signed-in customer's accounts as a page; without a session, the sign-in page. */
export function registerAccountPages(app: App, accounts: Accounts, auth: CustomerAuth): void {
  scoped(app, (pages) => {
    const signedIn = customerSession(auth);
    pages.get('/me/accounts', async (request, reply) => {
      try {
        await signedIn(request);
      } catch {
        return reply.code(303).header('location', '/me/consents').send();
      }
      const customerId = request.customerId as string;
      const mine = await accounts.list(customerId, undefined, undefined, ACCOUNTS_PAGE_MAX);
      const details = await Promise.all(
        mine.map(async (account) => ({
          account,
          balances: await accounts.balances(account),
          recent: await accounts.transactions(account, {}, undefined, RECENT_TRANSACTIONS),
        })),
      );
      return reply.code(200).headers(PAGE_HEADERS).send(myAccountsPage(details));
    });
  });
}
