// Batch payouts over HTTP, for a business's users signed in at the bank's pages (`/v1/me/payout-batches`).
// The file is the request body itself, as `text/csv` or `application/xml` (pain.001.001.09).
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { customerSession } from '../consents/customer-routes.ts';
import type { CustomerAuth } from '../customer-auth/service.ts';
import { type App, scoped } from '../http/app.ts';
import { CURSOR_POSITION, decodeCursor, PageQuery, pageLimit, pageOf } from '../http/cursor.ts';
import { Problem } from '../http/problems.ts';
import {
  CurrencyCode,
  DateTime,
  Decimal,
  NextCursor,
  Nullable,
  ReadonlyList,
  StringEnum,
  Uuid,
} from '../http/schemas.ts';
import { readIdempotencyKey } from '../idempotency.ts';
import { PAIN_001 } from '../iso20022/pain001.ts';
import { currencyExponent, formatAmount } from '../money.ts';
import {
  BATCHES_PAGE_MAX,
  ITEMS_PAGE_MAX,
  type PayoutBatch,
  type PayoutItem,
  type Payouts,
  type PayoutUser,
  type UploadOutcome,
} from './service.ts';

/** The largest payout file: 10,000 pain.001 transactions with long names and references fit. */
export const PAYOUT_FILE_BYTES_MAX = 16 * 1024 * 1024;

const Id = Type.String({ pattern: CURSOR_POSITION.uuid.source });
const FILE_TYPES = ['text/csv', 'application/xml', 'text/xml'];

/**
 * An uploaded file. Only its hash and size are enumerable: whatever walks a request body (the audit log's
 * keyed fingerprint) sees those, never megabytes of payees.
 */
class UploadedFile {
  readonly sha256: string;
  readonly size: number;
  readonly #bytes: Buffer;

  constructor(bytes: Buffer) {
    this.#bytes = bytes;
    this.sha256 = createHash('sha256').update(bytes).digest('hex');
    this.size = bytes.length;
  }

  get bytes(): Buffer {
    return this.#bytes;
  }
}

const ITEM_STATUSES = ['pending', 'credited', 'accepted', 'settled', 'failed', 'cancelled'] as const;
const BatchView = Type.Object(
  {
    id: Uuid,
    status: StringEnum([
      'invalid',
      'awaiting_approval',
      'approved',
      'executing',
      'completed',
      'failed',
      'cancelled',
    ]),
    format: StringEnum(['csv', PAIN_001]),
    messageId: Nullable(Type.String({ description: 'pain.001 GrpHdr/MsgId' })),
    debtorAccountId: Uuid,
    currency: CurrencyCode,
    contentSha256: Type.String({ description: 'SHA-256 of the uploaded file, hex' }),
    itemCount: Type.Integer(),
    totalAmount: Nullable(Decimal),
    progress: Type.Object(
      {
        pending: Type.Integer(),
        credited: Type.Integer(),
        accepted: Type.Integer(),
        settled: Type.Integer(),
        failed: Type.Integer(),
        cancelled: Type.Integer(),
      },
      { description: 'How many items are in each status, live while the batch runs' },
    ),
    debitedAmount: Nullable(Decimal),
    refundedAmount: Nullable(Decimal),
    failureCode: Nullable(Type.String()),
    validation: Type.Object({
      valid: Type.Boolean(),
      errorCount: Type.Integer(),
      errors: ReadonlyList(
        Type.Object({
          line: Type.Integer(),
          field: Type.String(),
          code: Type.String(),
          message: Type.String(),
        }),
      ),
    }),
    uploadedBy: Uuid,
    approvedBy: Nullable(Uuid),
    cancelledBy: Nullable(Uuid),
    createdAt: DateTime,
    approvedAt: Nullable(DateTime),
    startedAt: Nullable(DateTime),
    completedAt: Nullable(DateTime),
    settledAt: Nullable(DateTime),
  },
  { description: 'A payout batch: its status, totals, progress and validation report' },
);
const ItemView = Type.Object(
  {
    id: Uuid,
    line: Type.Integer({ description: "The transfer's position in the file, from 1" }),
    creditor: Type.Object({ name: Type.String(), iban: Type.String() }),
    destination: StringEnum(['this_bank', 'other_bank']),
    amount: Decimal,
    currency: CurrencyCode,
    reference: Nullable(Type.String()),
    endToEndId: Nullable(Type.String()),
    status: StringEnum(ITEM_STATUSES),
    failureCode: Nullable(Type.String()),
  },
  { description: 'One credit transfer of a payout batch' },
);
const BatchList = Type.Object({ batches: Type.Array(BatchView), nextCursor: NextCursor });
const ItemList = Type.Object({ items: Type.Array(ItemView), nextCursor: NextCursor });

export function batchJson(batch: PayoutBatch) {
  const exponent = currencyExponent(batch.currency) ?? 2;
  const money = (minor: bigint | null) => (minor === null ? null : formatAmount(minor, exponent));
  const valid = batch.validationErrorCount === 0;
  return {
    id: batch.id,
    status: batch.status,
    format: batch.format,
    messageId: batch.messageId,
    debtorAccountId: batch.debtorAccountId,
    currency: batch.currency,
    contentSha256: batch.contentSha256,
    itemCount: batch.itemCount,
    totalAmount: valid ? money(batch.totalAmount) : null,
    progress: batch.progress,
    debitedAmount: money(batch.debitedAmount),
    refundedAmount: money(batch.refundedAmount),
    failureCode: batch.failureCode,
    validation: { valid, errorCount: batch.validationErrorCount, errors: batch.validationErrors },
    uploadedBy: batch.uploadedBy,
    approvedBy: batch.approvedBy,
    cancelledBy: batch.cancelledBy,
    createdAt: batch.createdAt.toISOString(),
    approvedAt: batch.approvedAt?.toISOString() ?? null,
    startedAt: batch.startedAt?.toISOString() ?? null,
    completedAt: batch.completedAt?.toISOString() ?? null,
    settledAt: batch.settledAt?.toISOString() ?? null,
  };
}

function itemJson(item: PayoutItem) {
  return {
    id: item.id,
    line: item.line,
    creditor: item.creditor,
    destination: item.destination,
    amount: formatAmount(item.amount, currencyExponent(item.currency) ?? 2),
    currency: item.currency,
    reference: item.reference,
    endToEndId: item.endToEndId,
    status: item.status,
    failureCode: item.failureCode,
  };
}

function uploaded(outcome: UploadOutcome) {
  if (outcome.ok) return outcome;
  if (outcome.code === 'payout_batch_invalid') {
    const { batch } = outcome;
    throw new Problem(
      'payout_batch_invalid',
      `${batch.validationErrorCount} error(s) in the file's lines; nothing will move`,
      { batchId: batch.id, errorCount: batch.validationErrorCount, errors: batch.validationErrors },
    );
  }
  if (outcome.code === 'validation_failed') {
    throw new Problem('validation_failed', outcome.detail, {
      errors: [{ field: '/querystring/debtorAccountId', message: 'is required for a CSV file' }],
    });
  }
  throw new Problem(outcome.code, outcome.detail, outcome.errors ? { errors: outcome.errors } : {});
}

export function registerPayoutRoutes(app: App, services: { payouts: Payouts; auth: CustomerAuth }): void {
  const { payouts, auth } = services;
  scoped(app, (scope) => {
    scope.addHook('onRequest', customerSession(auth));
    scope.addContentTypeParser(
      FILE_TYPES,
      { parseAs: 'buffer', bodyLimit: PAYOUT_FILE_BYTES_MAX },
      (_request, body, done) => done(null, new UploadedFile(body as Buffer)),
    );
    const user = (request: FastifyRequest): PayoutUser => ({
      customerId: request.customerId as string,
      loginId: request.customerLoginId as string,
    });
    const answer = <T>(found: T | 'not_found'): T => {
      if (found === 'not_found') throw new Problem('not_found', 'no payout batch with this id');
      return found;
    };

    scope.post(
      '/v1/me/payout-batches',
      {
        schema: {
          description:
            'Upload a payout file as the body: `text/csv` (header row `name,iban,amount,currency,reference,end_to_end_id`; `debtorAccountId` required) or `application/xml` (pain.001.001.09). Idempotency-Key required. 201: a new batch awaiting approval; 200: a batch made earlier of the same request or of the same file from the same account.',
          querystring: Type.Object({ debtorAccountId: Type.Optional(Id) }, { additionalProperties: false }),
          response: { 200: BatchView, 201: BatchView },
        },
      },
      async (request, reply) => {
        const key = readIdempotencyKey(request.headers['idempotency-key'], true);
        const file = request.body;
        if (!(file instanceof UploadedFile)) {
          throw new Problem('unsupported_media_type', 'send the file itself as text/csv or application/xml');
        }
        if (file.size === 0) throw new Problem('payout_file_invalid', 'the file is empty');
        const format = String(request.headers['content-type']).startsWith('text/csv') ? 'csv' : PAIN_001;
        const { batch, created, replayed } = uploaded(
          await payouts.upload(user(request), {
            key,
            format,
            content: file.bytes,
            debtorAccountId: request.query.debtorAccountId,
          }),
        );
        if (replayed) reply.header('idempotent-replayed', 'true');
        return reply
          .code(created ? 201 : 200)
          .header('location', `/v1/me/payout-batches/${batch.id}`)
          .send(batchJson(batch));
      },
    );

    scope.get(
      '/v1/me/payout-batches',
      {
        schema: {
          querystring: PageQuery,
          response: { 200: BatchList },
        },
      },
      async (request) => {
        const limit = pageLimit(request.query.limit, 20, BATCHES_PAGE_MAX);
        const before =
          request.query.cursor && decodeCursor(request.query.cursor, 'payouts', CURSOR_POSITION.uuid);
        const page = await payouts.list(user(request).customerId, before || undefined, limit + 1);
        const { rows, nextCursor } = pageOf(page, limit, 'payouts', (last) => last.id);
        return {
          batches: rows.map(batchJson),
          nextCursor,
        };
      },
    );

    scope.get(
      '/v1/me/payout-batches/:id',
      { schema: { params: Type.Object({ id: Id }), response: { 200: BatchView } } },
      async (request) => {
        const batch = await payouts.get(user(request).customerId, request.params.id);
        return batchJson(answer(batch ?? 'not_found'));
      },
    );

    scope.get(
      '/v1/me/payout-batches/:id/items',
      {
        schema: {
          params: Type.Object({ id: Id }),
          querystring: PageQuery,
          response: { 200: ItemList },
        },
      },
      async (request) => {
        const limit = pageLimit(request.query.limit, 100, ITEMS_PAGE_MAX);
        const after = request.query.cursor
          ? Number(decodeCursor(request.query.cursor, 'payout-items', CURSOR_POSITION.seq))
          : 0;
        const page = answer(
          (await payouts.items(user(request).customerId, request.params.id, after, limit + 1)) ?? 'not_found',
        );
        const { rows, nextCursor } = pageOf(page, limit, 'payout-items', (last) => String(last.line));
        return {
          items: rows.map(itemJson),
          nextCursor,
        };
      },
    );

    scope.post(
      '/v1/me/payout-batches/:id/approve',
      { schema: { params: Type.Object({ id: Id }), response: { 200: BatchView } } },
      async (request) => {
        const outcome = answer(await payouts.approve(user(request), request.params.id));
        if (outcome === 'approver_is_uploader') throw new Problem('payout_approver_is_uploader');
        if (outcome === 'not_approvable') throw new Problem('payout_batch_not_approvable');
        return batchJson(outcome);
      },
    );

    scope.post(
      '/v1/me/payout-batches/:id/cancel',
      { schema: { params: Type.Object({ id: Id }), response: { 200: BatchView } } },
      async (request) => {
        const outcome = answer(await payouts.cancel(user(request), request.params.id));
        if (outcome === 'not_cancellable') throw new Problem('payout_batch_not_cancellable');
        return batchJson(outcome);
      },
    );
  });
}
