// Account opening over HTTP: partner apps submit applications on a prospective customer's behalf and
// follow their status; operators work the manual review queue.
import { type Static, Type } from 'typebox';
import type { Accounts } from '../accounts/service.ts';
import type { PersonalData } from '../customers/service.ts';
import type { createGateway } from '../gateway/gateway.ts';
import { type App, scoped } from '../http/app.ts';
import { requireBearerToken } from '../http/auth.ts';
import { CURSOR_POSITION, decodeCursor, encodeCursor, PageLimit, pageLimit } from '../http/cursor.ts';
import { type FieldError, Problem } from '../http/problems.ts';
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
import { type Application, type Onboarding, REVIEWS_PAGE_MAX } from './service.ts';

const Id = Type.String({ pattern: CURSOR_POSITION.uuid.source });
const Country = Type.String({ pattern: '^[A-Z]{2}$' });
const literals = <T extends string>(values: readonly T[]) =>
  Type.Union(values.map((value) => Type.Literal(value)));
// Base64 of DOCUMENT_BYTES_MAX bytes, rounded up to whole 4-character groups.
const BASE64_CHARS_MAX = Math.ceil(DOCUMENT_BYTES_MAX / 3) * 4;
const BODY_LIMIT_BYTES = DOCUMENTS_MAX * BASE64_CHARS_MAX + 64 * 1024;

const Applicant = Type.Object(
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

/** Checks beyond the schema: check digits, numbering plans, real dates. Throws a 422 listing every field. */
function validatedApplicant(body: Static<typeof NewApplicationBody>, now: Date): PersonalData {
  const errors: FieldError[] = [];
  const { applicant } = body;
  let nationalId: PersonalData['nationalId'] = null;
  if (applicant.nationalId) {
    const checked = checkNationalId(
      applicant.nationalId.type as NationalIdType,
      applicant.nationalId.number,
      now,
    );
    if (checked.ok) nationalId = { type: applicant.nationalId.type as NationalIdType, number: checked.value };
    else
      errors.push({
        field: '/body/applicant/nationalId/number',
        message: `fails the ${checked.reason} check`,
      });
  }
  const phone = checkPhone(applicant.phone);
  if (!phone.ok) {
    errors.push({
      field: '/body/applicant/phone',
      message: 'is not a valid international number (+ and country code)',
    });
  }
  const dateOfBirth = parseTimestamp(`${applicant.dateOfBirth}T00:00:00Z`);
  if (!dateOfBirth || dateOfBirth > now) {
    errors.push({ field: '/body/applicant/dateOfBirth', message: 'is not a past date that exists' });
  }
  const consentAt = parseTimestamp(body.applicantConsentAt);
  if (!consentAt || consentAt > now) {
    errors.push({ field: '/body/applicantConsentAt', message: 'is not a past date and time that exists' });
  }
  if (errors.length > 0) {
    throw new Problem('application_invalid', errors.map((e) => `${e.field} ${e.message}`).join('; '), {
      errors,
    });
  }
  return {
    legalName: applicant.legalName.trim().replace(/\s+/g, ' '),
    dateOfBirth: applicant.dateOfBirth,
    nationality: applicant.nationality,
    nationalId,
    address: applicant.address,
    email: applicant.email,
    phone: phone.ok ? phone.e164 : '',
  };
}

async function checkedDocuments(body: Static<typeof NewApplicationBody>): Promise<CheckedDocument[]> {
  const documents: CheckedDocument[] = [];
  const errors: FieldError[] = [];
  for (const [index, upload] of body.documents.entries()) {
    const checked = await checkDocument(
      upload.kind as DocumentKind,
      Buffer.from(upload.content, 'base64'),
      upload.mediaType,
    );
    if (checked.ok) documents.push(checked.document);
    else
      errors.push({
        field: `/body/documents/${index}/content`,
        message: checked.reason.replaceAll('_', ' '),
      });
  }
  if (errors.length > 0) {
    throw new Problem('document_rejected', errors.map((e) => `${e.field}: ${e.message}`).join('; '), {
      errors,
    });
  }
  return documents;
}

/** What the submitting app learns. Screening reasons are withheld: telling the applicant would tip them off. */
function partnerJson(application: Application) {
  const screening = new Set(['sanctions_match', 'possible_sanctions_match', 'politically_exposed_person']);
  return {
    id: application.id,
    status: application.status,
    product: application.product,
    currency: application.currency,
    reasons: [
      ...new Set(application.reasons.map((reason) => (screening.has(reason) ? 'not_eligible' : reason))),
    ],
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
      schema: { body: NewApplicationBody },
      bodyLimit: BODY_LIMIT_BYTES,
      onRequest: gateway('onboarding', 'onboarding'),
      config: { idempotent: true },
    },
    async (request, reply) => {
      const access = request.access;
      if (!access) throw new Error('route registered without requireAccess');
      const applicant = validatedApplicant(request.body, new Date());
      if (!accounts.offers(request.body.currency)) {
        throw new Problem(
          'currency_not_offered',
          `accounts are opened in ${[...accounts.currencies].join(', ')}`,
        );
      }
      const documents = await checkedDocuments(request.body);
      const application = await onboarding.submit({
        applicant,
        product: request.body.product,
        currency: request.body.currency,
        documents,
        channel: 'partner',
        clientId: access.clientId,
      });
      return reply.code(201).send(partnerJson(application));
    },
  );

  app.get(
    '/v1/onboarding/applications/:id',
    { schema: { params: Type.Object({ id: Id }) }, onRequest: gateway('onboarding', 'onboarding') },
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
          querystring: Type.Object({
            cursor: Type.Optional(Type.String({ maxLength: 128 })),
            limit: Type.Optional(PageLimit),
          }),
        },
      },
      async (request) => {
        const limit = pageLimit(request.query.limit, 50, REVIEWS_PAGE_MAX);
        const after = request.query.cursor && decodeCursor(request.query.cursor, 'r', CURSOR_POSITION.uuid);
        const page = await onboarding.listReviews(after || undefined, limit + 1);
        const last = page.length > limit ? page[limit - 1] : undefined;
        return {
          reviews: page.slice(0, limit).map(operatorJson),
          nextCursor: last ? encodeCursor('r', last.id) : null,
        };
      },
    );

    operator.get(
      '/v1/admin/kyc/reviews/:id',
      { schema: { params: Type.Object({ id: Id }) } },
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
      { schema: { params: Type.Object({ id: Id, documentId: Id }) } },
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
