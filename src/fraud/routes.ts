// The operators' fraud API: the cases opened for blocked and step-up payments, the rules and the payee
// block list. Everything here needs the operator token.
import { Type } from 'typebox';
import { type App, scoped } from '../http/app.ts';
import { requireBearerToken } from '../http/auth.ts';
import { CURSOR_POSITION, decodeCursor, encodeCursor, PageLimit, pageLimit } from '../http/cursor.ts';
import { Problem } from '../http/problems.ts';
import { currencyExponent, formatAmount } from '../money.ts';
import type { StoredRule } from './rules.ts';
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
const Operator = Type.String({ minLength: 1, maxLength: 80 });
const literals = <T extends string>(values: readonly T[]) =>
  Type.Union(values.map((value) => Type.Literal(value)));

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
              cursor: Type.Optional(Type.String({ maxLength: 128 })),
              limit: Type.Optional(PageLimit),
            },
            { additionalProperties: false },
          ),
        },
      },
      async (request) => {
        const limit = pageLimit(request.query.limit, 50, CASES_PAGE_MAX);
        // The status is part of the cursor's kind: a cursor from one filter is refused under another.
        const kind = `fc-${request.query.status ?? 'all'}`;
        const after = request.query.cursor && decodeCursor(request.query.cursor, kind, CURSOR_POSITION.uuid);
        const page = await fraud.listCases(request.query.status, after || undefined, limit + 1);
        const last = page.length > limit ? page[limit - 1] : undefined;
        return {
          cases: page.slice(0, limit).map(caseJson),
          nextCursor: last ? encodeCursor(kind, last.id) : null,
        };
      },
    );

    operator.get(
      '/v1/admin/fraud/cases/:id',
      { schema: { params: Type.Object({ id: Id }) } },
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
        },
      },
      async (request) => caseOrProblem(await fraud.resolveCase(request.params.id, request.body)),
    );

    // ------------------------------------------------------------------------------------------ rules

    operator.get('/v1/admin/fraud/rules', async () => ({ rules: (await fraud.rules()).map(ruleJson) }));

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
          querystring: Type.Object(
            { cursor: Type.Optional(Type.String({ maxLength: 128 })), limit: Type.Optional(PageLimit) },
            { additionalProperties: false },
          ),
        },
      },
      async (request) => {
        const limit = pageLimit(request.query.limit, 100, BLOCKLIST_PAGE_MAX);
        const after = request.query.cursor && decodeCursor(request.query.cursor, 'fb', IBAN_CURSOR);
        const page = await fraud.listBlocklist(after || undefined, limit + 1);
        const last = page.length > limit ? page[limit - 1] : undefined;
        return {
          entries: page.slice(0, limit).map(blocklistJson),
          nextCursor: last ? encodeCursor('fb', last.iban) : null,
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
      { schema: { params: Type.Object({ iban: Iban }) } },
      async (request, reply) => {
        if (!(await fraud.removeFromBlocklist(request.params.iban)))
          throw new Problem('not_found', 'this IBAN is not on the block list');
        return reply.code(204).send();
      },
    );
  });
}
