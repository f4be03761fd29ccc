import { type Static, Type } from 'typebox';
import type { App } from '../http/app.ts';
import {
  CURSOR_POSITION,
  decodeCursor,
  encodeCursor,
  PageCursor,
  PageLimit,
  pageLimit,
} from '../http/cursor.ts';
import { type FieldError, Problem, type ProblemCode } from '../http/problems.ts';
import { DateTime, Decimal, NextCursor, Nullable, OpenObject, StringEnum, Uuid } from '../http/schemas.ts';
import { readIdempotencyKey } from '../idempotency.ts';
import { AMOUNT_PATTERN, currencyExponent, formatAmount, type ParsedAmount, parseAmount } from '../money.ts';
import { parseTimestamp, TIMESTAMP_PATTERN } from '../time.ts';
import { type Account, balancesOf, type Entry, type Transfer, type TransferRequest } from './model.ts';
import {
  ACCOUNTS_PAGE_MAX,
  ENTRIES_PAGE_MAX,
  type Ledger,
  POSTINGS_PER_TRANSFER_MAX,
  TRANSFER_BATCH_MAX,
  type TransferOutcome,
} from './service.ts';

const METADATA_BYTES_MAX = 4096;
const BATCH_BODY_LIMIT_BYTES = 8 * 1024 * 1024;

const Id = Type.String({
  pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
});
const Amount = Type.String({
  pattern: AMOUNT_PATTERN,
  description: 'decimal string in the currency exponent',
});
const Timestamp = Type.String({ pattern: TIMESTAMP_PATTERN, description: 'RFC 3339 with an offset' });
const Metadata = Type.Object({}, { additionalProperties: true, maxProperties: 64 });
const IdParams = Type.Object({ id: Id });

const NewAccountBody = Type.Object(
  {
    currency: Type.String({ pattern: '^[A-Z]{3}$' }),
    normalBalance: Type.Union([Type.Literal('debit'), Type.Literal('credit')]),
    allowOverdraft: Type.Optional(Type.Boolean()),
    code: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    metadata: Type.Optional(Metadata),
  },
  { additionalProperties: false },
);

const TransferFields = {
  postings: Type.Array(
    Type.Object({ debitAccountId: Id, creditAccountId: Id, amount: Amount }, { additionalProperties: false }),
    { minItems: 1, maxItems: POSTINGS_PER_TRANSFER_MAX },
  ),
  pending: Type.Optional(Type.Boolean()),
  expiresAt: Type.Optional(Timestamp),
  metadata: Type.Optional(Metadata),
};
const TransferBody = Type.Object(TransferFields, { additionalProperties: false });
type TransferBody = Static<typeof TransferBody>;

const BatchBody = Type.Object(
  {
    atomic: Type.Boolean(),
    transfers: Type.Array(
      Type.Object(
        { key: Type.String({ pattern: '^[\\x21-\\x7e]{1,255}$' }), ...TransferFields },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: TRANSFER_BATCH_MAX },
    ),
  },
  { additionalProperties: false },
);

const PostBody = Type.Object({ amount: Type.Optional(Amount) }, { additionalProperties: false });

const AccountsQuery = Type.Object(
  {
    code: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    limit: Type.Optional(PageLimit),
    cursor: Type.Optional(PageCursor),
  },
  { additionalProperties: false },
);

const EntriesQuery = Type.Object(
  {
    limit: Type.Optional(PageLimit),
    cursor: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);

/** The ledger's operator API. Handlers translate HTTP to service calls and outcomes to responses. */
export function registerLedgerRoutes(app: App, ledger: Ledger): void {
  app.post(
    '/v1/ledger/accounts',
    { schema: { body: NewAccountBody, response: { 201: LedgerAccountView } } },
    async (request, reply) => {
      const body = request.body;
      const exponent = currencyExponent(body.currency);
      if (exponent === undefined)
        throw new Problem('unsupported_currency', `${body.currency} is not supported`);
      const key = readIdempotencyKey(request.headers['idempotency-key'], false);
      const { account, replayed } = await ledger.createAccount(
        {
          currency: body.currency,
          exponent,
          normalBalance: body.normalBalance,
          allowOverdraft: body.allowOverdraft ?? false,
          code: body.code ?? null,
          metadata: checkedMetadata(body.metadata, '/body/metadata'),
        },
        key,
      );
      if (replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(201).send(accountJson(account));
    },
  );

  app.get(
    '/v1/ledger/accounts',
    { schema: { querystring: AccountsQuery, response: { 200: LedgerAccountPage } } },
    async (request) => {
      const limit = pageLimit(request.query.limit, 100, ACCOUNTS_PAGE_MAX);
      const afterId =
        request.query.cursor === undefined
          ? undefined
          : decodeCursor(request.query.cursor, 'a', CURSOR_POSITION.uuid);
      const accounts = await ledger.listAccounts({ code: request.query.code }, afterId, limit + 1);
      const page = accounts.slice(0, limit);
      const last = page.at(-1);
      return {
        accounts: page.map(accountJson),
        nextCursor: accounts.length > limit && last ? encodeCursor('a', last.id) : null,
      };
    },
  );

  app.get(
    '/v1/ledger/accounts/:id',
    { schema: { params: IdParams, response: { 200: LedgerAccountView } } },
    async (request) => {
      const account = await ledger.getAccount(request.params.id.toLowerCase());
      if (!account) throw new Problem('not_found', 'no account with this id');
      return accountJson(account);
    },
  );

  app.get(
    '/v1/ledger/accounts/:id/entries',
    { schema: { params: IdParams, querystring: EntriesQuery, response: { 200: EntryPage } } },
    async (request) => {
      const limit = pageLimit(request.query.limit, 100, ENTRIES_PAGE_MAX);
      const beforeSeq =
        request.query.cursor === undefined
          ? undefined
          : BigInt(decodeCursor(request.query.cursor, 'e', CURSOR_POSITION.seq));
      const account = await ledger.getAccount(request.params.id.toLowerCase());
      if (!account) throw new Problem('not_found', 'no account with this id');
      const entries = await ledger.listEntries(account.id, beforeSeq, limit + 1);
      const page = entries.slice(0, limit);
      const last = page.at(-1);
      return {
        entries: page.map((entry) => entryJson(entry, account.exponent)),
        nextCursor: entries.length > limit && last ? encodeCursor('e', last.seq.toString()) : null,
      };
    },
  );

  app.post(
    '/v1/ledger/transfers',
    { schema: { body: TransferBody, response: { 201: TransferView } } },
    async (request, reply) => {
      const key = readIdempotencyKey(request.headers['idempotency-key'], true);
      const outcome = await ledger.transfer(key, transferRequest(request.body, '/body'));
      return sendOutcome(reply, outcome, 201);
    },
  );

  app.get(
    '/v1/ledger/transfers/:id',
    { schema: { params: IdParams, response: { 200: TransferView } } },
    async (request) => {
      const transfer = await ledger.getTransfer(request.params.id.toLowerCase());
      if (!transfer) throw new Problem('transfer_not_found');
      return transferJson(transfer);
    },
  );

  app.post(
    '/v1/ledger/transfers/:id/post',
    {
      schema: { params: IdParams, body: PostBody, response: { 200: TransferView } },
      // The body is optional (post in full); an absent one is validated as {}.
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request, reply) => {
      const key = readIdempotencyKey(request.headers['idempotency-key'], false);
      const amount =
        request.body.amount === undefined ? undefined : amountOf(request.body.amount, '/body/amount');
      return sendOutcome(reply, await ledger.post(request.params.id.toLowerCase(), amount, key), 200);
    },
  );

  app.post(
    '/v1/ledger/transfers/:id/void',
    { schema: { params: IdParams, response: { 200: TransferView } } },
    async (request, reply) => {
      const key = readIdempotencyKey(request.headers['idempotency-key'], false);
      return sendOutcome(reply, await ledger.void(request.params.id.toLowerCase(), key), 200);
    },
  );

  app.post(
    '/v1/ledger/transfer-batches',
    {
      schema: { body: BatchBody, response: { 200: BatchResults, 201: BatchResults } },
      bodyLimit: BATCH_BODY_LIMIT_BYTES,
    },
    async (request, reply) => {
      const { atomic, transfers } = request.body;
      const seen = new Set<string>();
      for (const [index, transfer] of transfers.entries()) {
        if (seen.has(transfer.key)) {
          throw new Problem('duplicate_key_in_batch', `transfers/${index} repeats key "${transfer.key}"`);
        }
        seen.add(transfer.key);
      }
      const requests = transfers.map((transfer, index) => ({
        key: transfer.key,
        request: transferRequest(transfer, `/body/transfers/${index}`),
      }));
      const outcomes = await ledger.transferBatch(atomic, requests);
      if (atomic && outcomes.some((outcome) => !outcome.ok)) {
        const errors = outcomes.flatMap((outcome, index) =>
          outcome.ok || outcome.code === 'batch_aborted'
            ? []
            : [{ index, ...outcomeProblem(outcome).toJSON() }],
        );
        throw new Problem('batch_failed', `${errors.length} of ${outcomes.length} transfers failed`, {
          errors,
        });
      }
      const results = outcomes.map((outcome) => {
        if (outcome.ok)
          return { status: 201, replayed: outcome.replayed, transfer: transferJson(outcome.transfer) };
        const problem = outcomeProblem(outcome);
        return { status: problem.status, problem: problem.toJSON() };
      });
      return reply.code(atomic ? 201 : 200).send({ results });
    },
  );
}

function sendOutcome(reply: import('fastify').FastifyReply, outcome: TransferOutcome, status: number) {
  if (!outcome.ok) throw outcomeProblem(outcome);
  if (outcome.replayed) reply.header('idempotent-replayed', 'true');
  return reply.code(status).send(transferJson(outcome.transfer));
}

function outcomeProblem(outcome: Extract<TransferOutcome, { ok: false }>): Problem {
  const code: ProblemCode = outcome.code;
  const posting = 'posting' in outcome && outcome.posting !== undefined ? { posting: outcome.posting } : {};
  return new Problem(code, 'posting' in posting ? `at postings/${posting.posting}` : undefined, posting);
}

function transferRequest(body: TransferBody, at: string): TransferRequest {
  const errors: FieldError[] = [];
  const postings = body.postings.map((posting, index) => {
    const amount = parseAmount(posting.amount);
    if (!amount)
      errors.push({
        field: `${at}/postings/${index}/amount`,
        message: 'must be greater than zero and fit in 63 bits',
      });
    return {
      debitAccountId: posting.debitAccountId.toLowerCase(),
      creditAccountId: posting.creditAccountId.toLowerCase(),
      amount: amount as ParsedAmount,
    };
  });
  if (body.expiresAt !== undefined && body.pending !== true) {
    errors.push({ field: `${at}/expiresAt`, message: 'is only allowed on a pending transfer' });
  }
  const expiresAt = body.expiresAt === undefined ? null : (parseTimestamp(body.expiresAt) ?? null);
  if (body.expiresAt !== undefined && expiresAt === null) {
    errors.push({ field: `${at}/expiresAt`, message: 'is not a date and time that exists' });
  }
  const metadata = metadataOrError(body.metadata, `${at}/metadata`, errors);
  if (errors.length > 0) throw fieldProblem(errors);
  return { postings, pending: body.pending ?? false, expiresAt, metadata };
}

function amountOf(text: string, field: string): ParsedAmount {
  const amount = parseAmount(text);
  if (!amount) throw fieldProblem([{ field, message: 'must be greater than zero and fit in 63 bits' }]);
  return amount;
}

function checkedMetadata(metadata: object | undefined, field: string): Record<string, unknown> {
  const errors: FieldError[] = [];
  const checked = metadataOrError(metadata, field, errors);
  if (errors.length > 0) throw fieldProblem(errors);
  return checked;
}

function metadataOrError(
  metadata: object | undefined,
  field: string,
  errors: FieldError[],
): Record<string, unknown> {
  if (metadata === undefined) return {};
  if (Buffer.byteLength(JSON.stringify(metadata)) > METADATA_BYTES_MAX) {
    errors.push({ field, message: `must serialise to at most ${METADATA_BYTES_MAX} bytes` });
  }
  return metadata as Record<string, unknown>;
}

function fieldProblem(errors: FieldError[]): Problem {
  return new Problem('validation_failed', errors.map((e) => `${e.field} ${e.message}`).join('; '), {
    errors,
  });
}

const LedgerAccountView = Type.Object(
  {
    id: Uuid,
    currency: Type.String(),
    normalBalance: StringEnum(['debit', 'credit']),
    allowOverdraft: Type.Boolean(),
    code: Nullable(Type.String()),
    metadata: OpenObject,
    balances: Type.Object(
      { posted: Decimal, pending: Decimal, available: Decimal },
      { description: "On the account's normal side" },
    ),
    version: Type.Integer(),
    createdAt: DateTime,
  },
  { description: 'A ledger account' },
);
const LedgerAccountPage = Type.Object(
  { accounts: Type.Array(LedgerAccountView), nextCursor: NextCursor },
  { description: 'Accounts in creation order' },
);

function accountJson(account: Account) {
  const balances = balancesOf(account);
  return {
    id: account.id,
    currency: account.currency,
    normalBalance: account.normalBalance,
    allowOverdraft: account.allowOverdraft,
    code: account.code,
    metadata: account.metadata,
    balances: {
      posted: formatAmount(balances.posted, account.exponent),
      pending: formatAmount(balances.pending, account.exponent),
      available: formatAmount(balances.available, account.exponent),
    },
    version: Number(account.version),
    createdAt: account.createdAt.toISOString(),
  };
}

const EntryPage = Type.Object(
  {
    entries: Type.Array(
      Type.Object({
        transferId: Uuid,
        side: StringEnum(['debit', 'credit']),
        amount: Decimal,
        balance: Decimal,
        createdAt: DateTime,
      }),
    ),
    nextCursor: NextCursor,
  },
  { description: "The account's entries, newest first" },
);

function entryJson(entry: Entry, exponent: number) {
  return {
    transferId: entry.transferId,
    side: entry.side,
    amount: formatAmount(entry.amount, exponent),
    balance: formatAmount(entry.balance, exponent),
    createdAt: entry.createdAt.toISOString(),
  };
}

const TransferView = Type.Object(
  {
    id: Uuid,
    status: StringEnum(['posted', 'pending', 'voided', 'expired']),
    postings: Type.Array(Type.Object({ debitAccountId: Uuid, creditAccountId: Uuid, amount: Decimal })),
    postedAmount: Type.Optional(Decimal),
    expiresAt: Nullable(DateTime),
    metadata: OpenObject,
    createdAt: DateTime,
    resolvedAt: Nullable(DateTime),
  },
  { description: 'A transfer' },
);
// One result per transfer, in order: the transfer (status 201) or the problem that refused it.
const BatchResults = Type.Object(
  {
    results: Type.Array(
      Type.Object({
        status: Type.Integer(),
        replayed: Type.Optional(Type.Boolean()),
        transfer: Type.Optional(TransferView),
        // As Problem.toJSON() builds it: typed as the open record it is.
        problem: Type.Optional(
          Type.Unsafe<Record<string, unknown>>(
            Type.Object(
              {
                type: Type.String(),
                title: Type.String(),
                status: Type.Integer(),
                code: Type.String(),
                detail: Type.Optional(Type.String()),
                posting: Type.Optional(Type.Integer()),
              },
              { additionalProperties: true },
            ),
          ),
        ),
      }),
    ),
  },
  { description: 'The outcome of each transfer, in order' },
);

function transferJson(transfer: Transfer) {
  const exponent = transfer.postings[0]?.exponent ?? 0;
  return {
    id: transfer.id,
    status: transfer.status,
    postings: transfer.postings.map((p) => ({
      debitAccountId: p.debitAccountId,
      creditAccountId: p.creditAccountId,
      amount: formatAmount(p.amount, p.exponent),
    })),
    ...(transfer.postedAmount === null
      ? {}
      : { postedAmount: formatAmount(transfer.postedAmount, exponent) }),
    expiresAt: transfer.expiresAt?.toISOString() ?? null,
    metadata: transfer.metadata,
    createdAt: transfer.createdAt.toISOString(),
    resolvedAt: transfer.resolvedAt?.toISOString() ?? null,
  };
}
