// The operators' fraud API: the cases opened for blocked and step-up payments, the rules and the payee
// block list. Everything here needs the operator token.
import { Type } from 'typebox';
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
  CurrencyCode,
  DateTime,
  Decimal,
  NextCursor,
  NoContent,
  Nullable,
  NullableStringEnum,
  OpenObject,
  ReadonlyList,
  StringEnum,
  Uuid,
} from '../http/schemas.ts';
import { currencyExponent, formatAmount } from '../money.ts';
import { RULE_ACTIONS, RULE_TYPES, type StoredRule, VERDICTS } from './rules.ts';
import {
  BLOCKLIST_PAGE_MAX,
  CASES_PAGE_MAX,
  type CaseOutcomeResult,
  type FraudScreening,
} from './service.ts';
import {
  type BlocklistEntry,
  CASE_OUTCOMES,
  CASE_STATUSES,
  type StoredCase,
  type StoredScreening,
} from './store.ts';

const Id = Type.String({ pattern: CURSOR_POSITION.uuid.source });
const RuleId = Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$' });
// Spaces allowed, as people write them; the service normalises and checks the check digits.
const Iban = Type.String({ minLength: 15, maxLength: 42, pattern: '^[A-Za-z]{2}[0-9]{2}[A-Za-z0-9 ]+$' });
const IBAN_CURSOR = /^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$/;
// Who claims or resolves a case: a name, so not blank (a blank claim would lock the case to nobody).
const Operator = Type.String({ minLength: 1, maxLength: 80, pattern: '\\S' });
const literals = <T extends string>(values: readonly T[]) =>
  Type.Union(values.map((value) => Type.Literal(value)));

const CaseView = Type.Object(
  {
    id: Uuid,
    paymentId: Uuid,
    customerId: Uuid,
    verdict: StringEnum(['step_up', 'block'], { description: 'An allowed payment opens no case' }),
    status: StringEnum(CASE_STATUSES),
    claimedBy: Nullable(Type.String()),
    claimedAt: Nullable(DateTime),
    outcome: NullableStringEnum(CASE_OUTCOMES),
    resolvedBy: Nullable(Type.String()),
    resolutionNote: Nullable(Type.String()),
    resolvedAt: Nullable(DateTime),
    openedAt: DateTime,
  },
  { description: 'A fraud case' },
);
const CasePage = Type.Object(
  { cases: Type.Array(CaseView), nextCursor: NextCursor },
  { description: 'Cases, oldest first' },
);
const ScreeningView = Type.Object({
  id: Uuid,
  verdict: StringEnum(VERDICTS),
  reasons: ReadonlyList(Type.Object({ rule: Type.String(), detail: Type.String() })),
  ruleVersions: Type.Unsafe<Readonly<Record<string, number>>>(
    Type.Record(Type.String(), Type.Integer(), { description: 'The version of every rule that ran' }),
  ),
  rulesVersion: Type.String({ description: "The rule set's version, a 64-bit number as text" }),
  latencyUs: Type.Integer(),
  debtorAccountId: Uuid,
  amount: Decimal,
  currency: CurrencyCode,
  creditorIban: Type.String(),
  at: DateTime,
});
const CaseWithScreeningView = Type.Object(
  { ...CaseView.properties, screening: ScreeningView },
  { description: 'The case with the screening that opened it' },
);

function caseJson(found: StoredCase) {
  return {
    id: found.id,
    paymentId: found.paymentId,
    customerId: found.customerId,
    verdict: found.verdict,
    status: found.status,
    claimedBy: found.claimedBy,
    claimedAt: found.claimedAt?.toISOString() ?? null,
    outcome: found.outcome,
    resolvedBy: found.resolvedBy,
    resolutionNote: found.resolutionNote,
    resolvedAt: found.resolvedAt?.toISOString() ?? null,
    openedAt: found.openedAt.toISOString(),
  };
}

function screeningJson(screening: StoredScreening) {
  return {
    id: screening.id,
    verdict: screening.verdict,
    reasons: screening.reasons,
    ruleVersions: screening.ruleVersions,
    rulesVersion: screening.rulesVersion.toString(),
    latencyUs: screening.latencyUs,
    debtorAccountId: screening.debtorAccountId,
    amount: formatAmount(screening.amountMinor, currencyExponent(screening.currency) ?? 2),
    currency: screening.currency,
    creditorIban: screening.creditorIban,
    at: screening.at.toISOString(),
  };
}

const RuleView = Type.Object(
  {
    id: Type.String(),
    type: StringEnum(RULE_TYPES),
    enabled: Type.Boolean(),
    action: StringEnum(RULE_ACTIONS),
    // Each rule type has its own parameters (rules.ts).
    parameters: OpenObject,
    description: Type.String(),
    version: Type.Integer(),
    updatedAt: DateTime,
    updatedBy: Nullable(Type.String()),
  },
  { description: 'A fraud rule' },
);

const ruleJson = (rule: StoredRule) => ({
  id: rule.id,
  type: rule.type,
  enabled: rule.enabled,
  action: rule.action,
  parameters: rule.parameters,
  description: rule.description,
  version: rule.version,
  updatedAt: rule.updatedAt.toISOString(),
  updatedBy: rule.updatedBy,
});

const BlocklistEntryView = Type.Object(
  { iban: Type.String(), reason: Type.String(), addedBy: Type.String(), addedAt: DateTime },
  { description: 'A blocked payee IBAN' },
);

const blocklistJson = (entry: BlocklistEntry) => ({
  iban: entry.iban,
  reason: entry.reason,
  addedBy: entry.addedBy,
  addedAt: entry.addedAt.toISOString(),
});

function caseOrProblem(result: CaseOutcomeResult) {
  if (!result.ok)
    throw new Problem(result.code, result.code === 'not_found' ? 'no fraud case with this id' : undefined);
  return caseJson(result.case);
}

export function registerFraudRoutes(app: App, fraud: FraudScreening, adminToken: string): void {
  scoped(app, (operator) => {
    operator.addHook('onRequest', requireBearerToken(adminToken));

    // ------------------------------------------------------------------------------------------ cases

    operator.get(
      '/v1/admin/fraud/cases',
      {
        schema: {
          querystring: Type.Object(
            {
              status: Type.Optional(literals(CASE_STATUSES)),
              cursor: Type.Optional(PageCursor),
              limit: Type.Optional(PageLimit),
            },
            { additionalProperties: false },
          ),
          response: { 200: CasePage },
        },
      },
      async (request) => {
        const limit = pageLimit(request.query.limit, 50, CASES_PAGE_MAX);
        // The status is part of the cursor's kind: a cursor from one filter is refused under another.
        const kind = `fc-${request.query.status ?? 'all'}`;
        const after = request.query.cursor && decodeCursor(request.query.cursor, kind, CURSOR_POSITION.uuid);
        const page = await fraud.listCases(request.query.status, after || undefined, limit + 1);
        const { rows, nextCursor } = pageOf(page, limit, kind, (last) => last.id);
        return {
          cases: rows.map(caseJson),
          nextCursor,
        };
      },
    );

    operator.get(
      '/v1/admin/fraud/cases/:id',
      { schema: { params: Type.Object({ id: Id }), response: { 200: CaseWithScreeningView } } },
      async (request) => {
        const found = await fraud.getCase(request.params.id);
        if (!found) throw new Problem('not_found', 'no fraud case with this id');
        return { ...caseJson(found.case), screening: screeningJson(found.screening) };
      },
    );

    operator.post(
      '/v1/admin/fraud/cases/:id/claim',
      {
        schema: {
          params: Type.Object({ id: Id }),
          body: Type.Object({ reviewer: Operator }, { additionalProperties: false }),
          response: { 200: CaseView },
        },
      },
      async (request) => caseOrProblem(await fraud.claimCase(request.params.id, request.body.reviewer)),
    );

    operator.post(
      '/v1/admin/fraud/cases/:id/resolve',
      {
        schema: {
          params: Type.Object({ id: Id }),
          body: Type.Object(
            {
              reviewer: Operator,
              outcome: literals(CASE_OUTCOMES),
              note: Type.String({ minLength: 1, maxLength: 2000 }),
            },
            { additionalProperties: false },
          ),
          response: { 200: CaseView },
        },
      },
      async (request) => caseOrProblem(await fraud.resolveCase(request.params.id, request.body)),
    );

    // ------------------------------------------------------------------------------------------ rules

    operator.get(
      '/v1/admin/fraud/rules',
      {
        schema: {
          response: { 200: Type.Object({ rules: Type.Array(RuleView) }, { description: 'The rules' }) },
        },
      },
      async () => ({ rules: (await fraud.rules()).map(ruleJson) }),
    );

    operator.patch(
      '/v1/admin/fraud/rules/:id',
      {
        schema: {
          params: Type.Object({ id: RuleId }),
          body: Type.Object(
            {
              changedBy: Operator,
              enabled: Type.Optional(Type.Boolean()),
              action: Type.Optional(Type.Union([Type.Literal('step_up'), Type.Literal('block')])),
              // Checked against the rule's type by the service: the type is known only once the rule is read.
              parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { maxProperties: 20 })),
            },
            { additionalProperties: false, minProperties: 2 },
          ),
          response: { 200: RuleView },
        },
      },
      async (request) => {
        const { changedBy, ...change } = request.body;
        const result = await fraud.updateRule(request.params.id, { ...change, changedBy });
        if (result.ok) return ruleJson(result.rule);
        if (result.code === 'not_found') throw new Problem('not_found', 'no fraud rule with this id');
        const errors = result.errors.map((error) => ({ ...error, field: `/body${error.field}` }));
        throw new Problem('validation_failed', errors.map((e) => `${e.field} ${e.message}`).join('; '), {
          errors,
        });
      },
    );

    // ------------------------------------------------------------------------------------- block list

    operator.get(
      '/v1/admin/fraud/blocklist',
      {
        schema: {
          querystring: PageQuery,
          response: {
            200: Type.Object(
              { entries: Type.Array(BlocklistEntryView), nextCursor: NextCursor },
              { description: 'Blocked IBANs, in order' },
            ),
          },
        },
      },
      async (request) => {
        const limit = pageLimit(request.query.limit, 100, BLOCKLIST_PAGE_MAX);
        const after = request.query.cursor && decodeCursor(request.query.cursor, 'fb', IBAN_CURSOR);
        const page = await fraud.listBlocklist(after || undefined, limit + 1);
        const { rows, nextCursor } = pageOf(page, limit, 'fb', (last) => last.iban);
        return {
          entries: rows.map(blocklistJson),
          nextCursor,
        };
      },
    );

    operator.post(
      '/v1/admin/fraud/blocklist',
      {
        schema: {
          body: Type.Object(
            { iban: Iban, reason: Type.String({ minLength: 1, maxLength: 500 }), addedBy: Operator },
            { additionalProperties: false },
          ),
          // 200: the IBAN was listed already, and this is the entry that stands.
          response: { 200: BlocklistEntryView, 201: BlocklistEntryView },
        },
      },
      async (request, reply) => {
        const result = await fraud.addToBlocklist(request.body);
        if (!result.ok) throw new Problem(result.code, 'the IBAN fails its check digits or country format');
        // Adding an IBAN already listed changes nothing and answers with the entry that stands.
        return reply.code(result.added ? 201 : 200).send(blocklistJson(result.entry));
      },
    );

    operator.delete(
      '/v1/admin/fraud/blocklist/:iban',
      { schema: { params: Type.Object({ iban: Iban }), response: { 204: NoContent } } },
      async (request, reply) => {
        if (!(await fraud.removeFromBlocklist(request.params.iban)))
          throw new Problem('not_found', 'this IBAN is not on the block list');
        return reply.code(204).send();
      },
    );
  });
}
