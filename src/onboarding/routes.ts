// Account opening over HTTP: partner apps submit applications on a prospective customer's behalf and
// follow their status; operators work the manual review queue.
import multipart from '@fastify/multipart';
import type { FastifyReply } from 'fastify';
import { type Static, Type } from 'typebox';
import { Value } from 'typebox/value';
import type { Accounts } from '../accounts/service.ts';
import { PAGE_HEADERS } from '../customer-auth/routes.ts';
import type { CustomerAuth } from '../customer-auth/service.ts';
import type { PersonalData } from '../customers/service.ts';
import type { createGateway } from '../gateway/gateway.ts';
import { type App, scoped } from '../http/app.ts';
import { requireBearerToken } from '../http/auth.ts';
import { CURSOR_POSITION, decodeCursor, PageQuery, pageLimit, pageOf } from '../http/cursor.ts';
import { type FieldError, Problem } from '../http/problems.ts';
import {
  Binary,
  CurrencyCode,
  DateOnly,
  DateTime,
  NextCursor,
  Nullable,
  OpenObject,
  ReadonlyList,
  StringEnum,
  Uuid,
} from '../http/schemas.ts';
import { checkNationalId, checkPhone, NATIONAL_ID_TYPES, type NationalIdType } from '../kyc/validators.ts';
import { parseTimestamp, TIMESTAMP_PATTERN } from '../time.ts';
import {
  type CheckedDocument,
  checkDocument,
  DOCUMENT_BYTES_MAX,
  DOCUMENT_KINDS,
  DOCUMENT_MEDIA_TYPES,
  DOCUMENTS_MAX,
  type DocumentKind,
} from './documents.ts';
import { applicationOutcomePage, openAccountPage } from './pages.ts';
import { type Application, type Onboarding, REVIEWS_PAGE_MAX } from './service.ts';

const Id = Type.String({ pattern: CURSOR_POSITION.uuid.source });
const Country = Type.String({ pattern: '^[A-Z]{2}$' });
const literals = <T extends string>(values: readonly T[]) =>
  Type.Union(values.map((value) => Type.Literal(value)));
// Base64 of DOCUMENT_BYTES_MAX bytes, rounded up to whole 4-character groups.
const BASE64_CHARS_MAX = Math.ceil(DOCUMENT_BYTES_MAX / 3) * 4;
const BODY_LIMIT_BYTES = DOCUMENTS_MAX * BASE64_CHARS_MAX + 64 * 1024;

export const Applicant = Type.Object(
  {
    legalName: Type.String({ minLength: 1, maxLength: 140 }),
    dateOfBirth: Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' }),
    nationality: Country,
    nationalId: Type.Optional(
      Type.Object(
        { type: literals(NATIONAL_ID_TYPES), number: Type.String({ minLength: 1, maxLength: 32 }) },
        { additionalProperties: false },
      ),
    ),
    address: Type.Object(
      {
        lines: Type.Array(Type.String({ minLength: 1, maxLength: 70 }), { minItems: 1, maxItems: 4 }),
        city: Type.String({ minLength: 1, maxLength: 35 }),
        postCode: Type.String({ minLength: 1, maxLength: 16 }),
        country: Country,
      },
      { additionalProperties: false },
    ),
    email: Type.String({ maxLength: 254, pattern: '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$' }),
    phone: Type.String({ minLength: 4, maxLength: 32 }),
  },
  { additionalProperties: false },
);

const NewApplicationBody = Type.Object(
  {
    applicant: Applicant,
    product: literals(['current', 'savings'] as const),
    currency: Type.String({ pattern: '^[A-Z]{3}$' }),
    /** When the applicant agreed to the partner applying for them (the partner keeps the evidence). */
    applicantConsentAt: Type.String({ pattern: TIMESTAMP_PATTERN }),
    documents: Type.Array(
      Type.Object(
        {
          kind: literals(DOCUMENT_KINDS),
          mediaType: Type.Optional(literals(DOCUMENT_MEDIA_TYPES)),
          content: Type.String({
            minLength: 1,
            maxLength: BASE64_CHARS_MAX,
            pattern: '^[A-Za-z0-9+/]*={0,2}$',
          }),
        },
        { additionalProperties: false },
      ),
      { maxItems: DOCUMENTS_MAX },
    ),
  },
  { additionalProperties: false },
);

type ApplicantInput = Static<typeof Applicant>;

/**
 * Checks beyond the schema: check digits, numbering plans, real dates. `field` names each part the way the
 * caller's request does (a JSON Pointer for the API, a form field for the page).
 */
export function checkApplicant(
  applicant: ApplicantInput,
  consentAtText: string,
  now: Date,
  field: (part: 'nationalId' | 'phone' | 'dateOfBirth' | 'consentAt') => string,
): { ok: true; person: PersonalData } | { ok: false; errors: FieldError[] } {
  const errors: FieldError[] = [];
  let nationalId: PersonalData['nationalId'] = null;
  if (applicant.nationalId) {
    const type = applicant.nationalId.type as NationalIdType;
    const checked = checkNationalId(type, applicant.nationalId.number, now);
    if (checked.ok) nationalId = { type, number: checked.value };
    else
      errors.push({
        field: field('nationalId'),
        message: `fails the ${checked.reason.replace('_', ' ')} check`,
      });
  }
  const phone = checkPhone(applicant.phone);
  if (!phone.ok) {
    errors.push({
      field: field('phone'),
      message: 'is not a valid international number (+ and country code)',
    });
  }
  const dateOfBirth = parseTimestamp(`${applicant.dateOfBirth}T00:00:00Z`);
  if (!dateOfBirth || dateOfBirth > now) {
    errors.push({ field: field('dateOfBirth'), message: 'is not a past date that exists' });
  }
  const consentAt = parseTimestamp(consentAtText);
  if (!consentAt || consentAt > now) {
    errors.push({ field: field('consentAt'), message: 'is not a past date and time that exists' });
  }
  if (errors.length > 0 || !phone.ok) return { ok: false, errors };
  return {
    ok: true,
    person: {
      legalName: applicant.legalName.trim().replace(/\s+/g, ' '),
      dateOfBirth: applicant.dateOfBirth,
      nationality: applicant.nationality,
      nationalId,
      address: applicant.address,
      email: applicant.email,
      phone: phone.e164,
    },
  };
}

export interface Upload {
  readonly kind: DocumentKind;
  readonly bytes: Buffer;
  readonly declared: string | undefined;
  /** Where the caller sent it, for the error. */
  readonly field: string;
}

export async function checkUploads(
  uploads: readonly Upload[],
): Promise<{ ok: true; documents: CheckedDocument[] } | { ok: false; errors: FieldError[] }> {
  const documents: CheckedDocument[] = [];
  const errors: FieldError[] = [];
  for (const upload of uploads) {
    const checked = await checkDocument(upload.kind, upload.bytes, upload.declared);
    if (checked.ok) documents.push(checked.document);
    else errors.push({ field: upload.field, message: checked.reason.replaceAll('_', ' ') });
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, documents };
}

const POINTERS = {
  nationalId: '/body/applicant/nationalId/number',
  phone: '/body/applicant/phone',
  dateOfBirth: '/body/applicant/dateOfBirth',
  consentAt: '/body/applicantConsentAt',
} as const;

const PartnerApplicationView = Type.Object(
  {
    id: Uuid,
    status: StringEnum(['approved', 'in_review', 'rejected']),
    product: StringEnum(['current', 'savings']),
    currency: CurrencyCode,
    reasons: Type.Array(Type.String()),
    customerId: Nullable(Uuid),
    accountId: Nullable(Uuid),
    createdAt: DateTime,
    decidedAt: Nullable(DateTime),
  },
  { description: 'The application' },
);
const OperatorApplicationProperties = {
  ...PartnerApplicationView.properties,
  reasons: ReadonlyList(Type.String()),
  channel: StringEnum(['partner', 'bank_page']),
  clientId: Nullable(Uuid),
  riskRating: StringEnum(['low', 'medium', 'high']),
  reviewClaimedBy: Nullable(Type.String()),
  decidedBy: Nullable(Type.String()),
};
const OperatorApplicationView = Type.Object(OperatorApplicationProperties, {
  description: 'The application, as the review queue sees it',
});
const ReviewPage = Type.Object(
  { reviews: Type.Array(OperatorApplicationView), nextCursor: NextCursor },
  { description: 'Applications waiting for review, oldest first' },
);
const ReviewView = Type.Object(
  {
    ...OperatorApplicationProperties,
    // PersonalData (customers/service.ts), as the checks saw it.
    applicant: Type.Object({
      legalName: Type.String(),
      dateOfBirth: DateOnly,
      nationality: Type.String(),
      nationalId: Nullable(Type.Object({ type: StringEnum(NATIONAL_ID_TYPES), number: Type.String() })),
      address: Type.Object({
        lines: ReadonlyList(Type.String()),
        city: Type.String(),
        postCode: Type.String(),
        country: Type.String(),
      }),
      email: Type.String(),
      phone: Type.String({ description: 'E.164' }),
    }),
    checks: Type.Array(
      Type.Object({
        name: StringEnum([
          'field_validation',
          'age',
          'national_id',
          'duplicate',
          'sanctions',
          'pep',
          'documents',
        ]),
        result: StringEnum(['pass', 'refer', 'fail']),
        reason: Nullable(Type.String()),
        details: OpenObject,
        createdAt: DateTime,
      }),
    ),
    documents: ReadonlyList(
      Type.Object({
        id: Uuid,
        kind: Type.String(),
        mediaType: Type.String(),
        sizeBytes: Type.Integer(),
        sha256: Type.String(),
      }),
    ),
    decisionNote: Nullable(Type.String()),
  },
  { description: 'The application with the applicant, every check and the documents' },
);

const SCREENING_REASONS = new Set([
  'sanctions_match',
  'possible_sanctions_match',
  'politically_exposed_person',
]);

/**
 * What the submitting app learns. Screening reasons are withheld: telling the applicant would tip them off.
 * A refusal for one says `not_eligible`; an application under review or approved says nothing of them, since
 * `not_eligible` there could only mean a list matched.
 */
function partnerJson(application: Application) {
  const shown =
    application.status === 'rejected'
      ? application.reasons.map((reason) => (SCREENING_REASONS.has(reason) ? 'not_eligible' : reason))
      : application.reasons.filter((reason) => !SCREENING_REASONS.has(reason));
  return {
    id: application.id,
    status: application.status,
    product: application.product,
    currency: application.currency,
    reasons: [...new Set(shown)],
    customerId: application.customerId,
    accountId: application.accountId,
    createdAt: application.createdAt.toISOString(),
    decidedAt: application.decidedAt?.toISOString() ?? null,
  };
}

function operatorJson(application: Application) {
  return {
    ...partnerJson(application),
    reasons: application.reasons,
    channel: application.channel,
    clientId: application.clientId,
    riskRating: application.riskRating,
    reviewClaimedBy: application.reviewClaimedBy,
    decidedBy: application.decidedBy,
  };
}

export function registerOnboardingRoutes(
  app: App,
  services: { onboarding: Onboarding; accounts: Accounts },
  gateway: ReturnType<typeof createGateway>,
): void {
  const { onboarding, accounts } = services;
  app.post(
    '/v1/onboarding/applications',
    {
      schema: { body: NewApplicationBody, response: { 201: PartnerApplicationView } },
      bodyLimit: BODY_LIMIT_BYTES,
      onRequest: gateway('onboarding', 'onboarding'),
      config: { idempotent: true },
    },
    async (request, reply) => {
      const access = request.access;
      if (!access) throw new Error('route registered without requireAccess');
      const checked = checkApplicant(
        request.body.applicant,
        request.body.applicantConsentAt,
        new Date(),
        (part) => POINTERS[part],
      );
      if (!checked.ok) {
        const { errors } = checked;
        throw new Problem('application_invalid', errors.map((e) => `${e.field} ${e.message}`).join('; '), {
          errors,
        });
      }
      if (!accounts.offers(request.body.currency)) {
        throw new Problem(
          'currency_not_offered',
          `accounts are opened in ${[...accounts.currencies].join(', ')}`,
        );
      }
      const uploads = await checkUploads(
        request.body.documents.map((document, index) => ({
          kind: document.kind as DocumentKind,
          bytes: Buffer.from(document.content, 'base64'),
          declared: document.mediaType,
          field: `/body/documents/${index}/content`,
        })),
      );
      if (!uploads.ok) {
        const { errors } = uploads;
        throw new Problem('document_rejected', errors.map((e) => `${e.field}: ${e.message}`).join('; '), {
          errors,
        });
      }
      const application = await onboarding.submit({
        applicant: checked.person,
        documents: uploads.documents,
        product: request.body.product,
        currency: request.body.currency,
        channel: 'partner',
        clientId: access.clientId,
      });
      return reply.code(201).send(partnerJson(application));
    },
  );

  app.get(
    '/v1/onboarding/applications/:id',
    {
      schema: { params: Type.Object({ id: Id }), response: { 200: PartnerApplicationView } },
      onRequest: gateway('onboarding', 'onboarding'),
    },
    async (request) => {
      const access = request.access;
      if (!access) throw new Error('route registered without requireAccess');
      const application = await onboarding.getForClient(access.clientId, request.params.id);
      if (!application) throw new Problem('not_found', 'no application with this id');
      return partnerJson(application);
    },
  );
}

const Reviewer = Type.String({ minLength: 1, maxLength: 80 });

export function registerKycReviewRoutes(app: App, onboarding: Onboarding, adminToken: string): void {
  scoped(app, (operator) => {
    operator.addHook('onRequest', requireBearerToken(adminToken));
    const outcome = (result: Awaited<ReturnType<Onboarding['claim']>>) => {
      if (!result.ok) throw new Problem(result.code);
      return operatorJson(result.application);
    };

    operator.get(
      '/v1/admin/kyc/reviews',
      {
        schema: {
          querystring: PageQuery,
          response: { 200: ReviewPage },
        },
      },
      async (request) => {
        const limit = pageLimit(request.query.limit, 50, REVIEWS_PAGE_MAX);
        const after = request.query.cursor && decodeCursor(request.query.cursor, 'r', CURSOR_POSITION.uuid);
        const page = await onboarding.listReviews(after || undefined, limit + 1);
        const { rows, nextCursor } = pageOf(page, limit, 'r', (last) => last.id);
        return {
          reviews: rows.map(operatorJson),
          nextCursor,
        };
      },
    );

    operator.get(
      '/v1/admin/kyc/reviews/:id',
      { schema: { params: Type.Object({ id: Id }), response: { 200: ReviewView } } },
      async (request) => {
        const found = await onboarding.forReview(request.params.id);
        if (!found) throw new Problem('not_found', 'no application with this id');
        return {
          ...operatorJson(found),
          applicant: found.applicant,
          checks: found.checks.map((check) => ({ ...check, createdAt: check.createdAt.toISOString() })),
          documents: found.documents,
          decisionNote: found.decisionNote,
        };
      },
    );

    operator.get(
      '/v1/admin/kyc/reviews/:id/documents/:documentId',
      {
        schema: {
          params: Type.Object({ id: Id, documentId: Id }),
          response: {
            200: {
              description: 'The document, as uploaded',
              content: Object.fromEntries(DOCUMENT_MEDIA_TYPES.map((type) => [type, { schema: Binary }])),
            },
          },
        },
      },
      async (request, reply) => {
        const document = await onboarding.document(request.params.id, request.params.documentId);
        if (!document) throw new Problem('not_found', 'no document with this id');
        // Served as a download, never rendered inline in the operator's browser.
        return reply
          .header('content-type', document.mediaType)
          .header('content-disposition', 'attachment')
          .header('cache-control', 'no-store')
          .send(document.bytes);
      },
    );

    operator.post(
      '/v1/admin/kyc/reviews/:id/claim',
      {
        schema: {
          params: Type.Object({ id: Id }),
          body: Type.Object({ reviewer: Reviewer }, { additionalProperties: false }),
          response: { 200: OperatorApplicationView },
        },
      },
      async (request) => outcome(await onboarding.claim(request.params.id, request.body.reviewer)),
    );

    for (const verdict of ['approve', 'reject'] as const) {
      operator.post(
        `/v1/admin/kyc/reviews/:id/${verdict}`,
        {
          schema: {
            params: Type.Object({ id: Id }),
            body: Type.Object(
              { reviewer: Reviewer, note: Type.String({ minLength: 1, maxLength: 2000 }) },
              { additionalProperties: false },
            ),
            response: { 200: OperatorApplicationView },
          },
        },
        async (request) =>
          outcome(
            await onboarding.decide(request.params.id, request.body.reviewer, verdict, request.body.note),
          ),
      );
    }
  });
}

// The form's fields, by the JSON Pointer of the applicant part they fill.
const FORM_FIELD_OF: Readonly<Record<string, string>> = {
  '/legalName': 'legalName',
  '/dateOfBirth': 'dateOfBirth',
  '/nationality': 'nationality',
  '/nationalId/type': 'nationalIdType',
  '/nationalId/number': 'nationalIdNumber',
  '/address/lines/0': 'addressLine1',
  '/address/lines/1': 'addressLine2',
  '/address/city': 'city',
  '/address/postCode': 'postCode',
  '/address/country': 'country',
  '/email': 'email',
  '/phone': 'phone',
};
const FORM_FIELDS_MAX = 30;
const FORM_FIELD_BYTES_MAX = 1024;
const PASSWORD_LENGTH_MIN = 12;

/** The bank's own account-opening page (`/open-account`): the same checks and KYC as the API. */
export function registerOnboardingPages(
  app: App,
  services: { onboarding: Onboarding; accounts: Accounts; logins: CustomerAuth },
): void {
  const { onboarding, accounts, logins } = services;
  scoped(app, async (pages) => {
    await pages.register(multipart, {
      limits: {
        fields: FORM_FIELDS_MAX,
        fieldSize: FORM_FIELD_BYTES_MAX,
        files: 2,
        fileSize: DOCUMENT_BYTES_MAX + 1,
        parts: FORM_FIELDS_MAX + 2,
      },
    });
    const currencies = [...accounts.currencies];
    const html = (reply: FastifyReply, status: number, body: string) =>
      reply.code(status).headers(PAGE_HEADERS).send(body);

    pages.get('/open-account', async (_request, reply) =>
      html(reply, 200, openAccountPage({ form: {}, errors: [], currencies })),
    );

    pages.post('/open-account', async (request, reply) => {
      const form: Record<string, string> = {};
      const files: Record<string, Buffer> = {};
      const errors: FieldError[] = [];
      try {
        for await (const part of request.parts()) {
          if (part.type === 'file') {
            const bytes = await part.toBuffer();
            if (bytes.length > 0) files[part.fieldname] = bytes;
          } else if (typeof part.value === 'string') {
            form[part.fieldname] = part.value;
          }
        }
      } catch (error) {
        // Too large a file or too many parts (413s of @fastify/multipart), or a body that is not the
        // multipart form it says (busboy: it ends early, no boundary): answered as a form error, never a
        // 5xx. Reading the request body is all the loop does, so any failure of it is the request's.
        const tooLarge = error instanceof Error && 'statusCode' in error && error.statusCode === 413;
        errors.push({
          field: 'identityDocument',
          message: tooLarge
            ? 'is larger than 4 MB, or the form has too many parts'
            : 'could not be read: the form arrived incomplete or malformed; send it again',
        });
      }
      const { password = '', ...shown } = form;
      const idType = form.nationalIdType;
      const applicant = {
        legalName: form.legalName ?? '',
        dateOfBirth: form.dateOfBirth ?? '',
        nationality: (form.nationality ?? '').toUpperCase(),
        ...(idType && idType !== 'none'
          ? { nationalId: { type: idType, number: form.nationalIdNumber ?? '' } }
          : {}),
        address: {
          lines: [form.addressLine1 ?? '', ...(form.addressLine2 ? [form.addressLine2] : [])],
          city: form.city ?? '',
          postCode: form.postCode ?? '',
          country: (form.country ?? '').toUpperCase(),
        },
        email: form.email ?? '',
        phone: form.phone ?? '',
      };
      for (const error of Value.Errors(Applicant, applicant)) {
        const field = FORM_FIELD_OF[error.instancePath] ?? 'legalName';
        if (!errors.some((known) => known.field === field))
          errors.push({ field, message: 'is missing or not valid' });
      }
      if (password.length < PASSWORD_LENGTH_MIN) {
        errors.push({ field: 'password', message: `must have at least ${PASSWORD_LENGTH_MIN} characters` });
      }
      if (form.agree !== 'yes') errors.push({ field: 'agree', message: 'is needed to open an account' });
      const product = form.product === 'savings' ? 'savings' : 'current';
      const currency = form.currency ?? '';
      if (!accounts.offers(currency))
        errors.push({ field: 'currency', message: 'is not one the bank offers' });
      const identityKind = (DOCUMENT_KINDS as readonly string[]).includes(form.identityDocumentKind ?? '')
        ? (form.identityDocumentKind as DocumentKind)
        : 'passport';
      const uploads = await checkUploads([
        ...(files.identityDocument
          ? [
              {
                kind: identityKind,
                bytes: files.identityDocument,
                declared: undefined,
                field: 'identityDocument',
              },
            ]
          : []),
        ...(files.proofOfAddress
          ? [
              {
                kind: 'proof_of_address' as const,
                bytes: files.proofOfAddress,
                declared: undefined,
                field: 'proofOfAddress',
              },
            ]
          : []),
      ]);
      if (!uploads.ok) errors.push(...uploads.errors);
      const now = new Date();
      // Every problem at once: the field checks run whenever the shape is right, whatever else is wrong.
      const checked = Value.Check(Applicant, applicant)
        ? checkApplicant(applicant, now.toISOString(), now, (part) =>
            part === 'nationalId' ? 'nationalIdNumber' : part === 'consentAt' ? 'agree' : part,
          )
        : undefined;
      if (checked && !checked.ok) errors.push(...checked.errors);
      if (errors.length > 0 || !checked?.ok || !uploads.ok) {
        // The password is never sent back, even into its own field.
        return html(reply, 422, openAccountPage({ form: shown, errors, currencies }));
      }
      const application = await onboarding.submit({
        applicant: checked.person,
        product,
        currency,
        documents: uploads.documents,
        channel: 'bank_page',
        clientId: null,
        password,
      });
      const username = application.customerId
        ? (await logins.find(application.customerId))?.username
        : undefined;
      return html(reply, 201, applicationOutcomePage(application, username));
    });
  });
}
