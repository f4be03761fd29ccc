// The KYC decision, as pure steps over what is known about an applicant: each check records its result
// (pass, refer to a person, fail) and a stable reason; the outcome and the risk rating follow from them.
// Nothing here reads the database or the clock.
import type { PersonalData } from '../customers/service.ts';
import type { RiskRating } from '../customers/store.ts';
import type { ScreeningHit } from '../kyc/screening.ts';
import { ageOfMajority, ageOn, nationalIdBirthDate } from '../kyc/validators.ts';
import { type DocumentKind, IDENTITY_DOCUMENT_KINDS } from './documents.ts';

export type CheckResult = 'pass' | 'refer' | 'fail';

export interface CheckRecord {
  readonly name: 'field_validation' | 'age' | 'national_id' | 'duplicate' | 'sanctions' | 'pep' | 'documents';
  readonly result: CheckResult;
  readonly reason: string | null;
  readonly details: Readonly<Record<string, unknown>>;
}

export interface KycFacts {
  readonly applicant: PersonalData;
  readonly today: Date;
  readonly existingCustomer: boolean;
  readonly pendingApplication: boolean;
  readonly hits: readonly ScreeningHit[];
  readonly documentKinds: readonly DocumentKind[];
}

export type Outcome = 'approved' | 'in_review' | 'rejected';

export interface KycDecision {
  readonly checks: readonly CheckRecord[];
  readonly outcome: Outcome;
  readonly riskRating: RiskRating;
  /** The reasons of every check that did not pass, in check order. */
  readonly reasons: readonly string[];
}

// A hit this close, with a date of birth that does not contradict the list, is the listed person: the
// application is rejected outright rather than queued (an operator still sees it in the audit).
const CERTAIN_MATCH_SCORE = 0.97;

function ageCheck(facts: KycFacts): CheckRecord {
  const age = ageOn(facts.applicant.dateOfBirth, facts.today);
  const majority = ageOfMajority(facts.applicant.nationality);
  if (age === undefined) return { name: 'age', result: 'fail', reason: 'invalid_date_of_birth', details: {} };
  return age >= majority
    ? { name: 'age', result: 'pass', reason: null, details: { ageOfMajority: majority } }
    : { name: 'age', result: 'fail', reason: 'under_age_of_majority', details: { ageOfMajority: majority } };
}

function nationalIdCheck(facts: KycFacts): CheckRecord {
  const id = facts.applicant.nationalId;
  if (!id) return { name: 'national_id', result: 'refer', reason: 'national_id_missing', details: {} };
  const encoded = nationalIdBirthDate(id.type, id.number);
  if (encoded !== undefined && encoded !== facts.applicant.dateOfBirth) {
    return { name: 'national_id', result: 'refer', reason: 'national_id_birth_date_mismatch', details: {} };
  }
  return { name: 'national_id', result: 'pass', reason: null, details: { type: id.type } };
}

function duplicateCheck(facts: KycFacts): CheckRecord {
  if (facts.existingCustomer)
    return { name: 'duplicate', result: 'fail', reason: 'already_a_customer', details: {} };
  if (facts.pendingApplication) {
    return { name: 'duplicate', result: 'fail', reason: 'application_pending', details: {} };
  }
  return { name: 'duplicate', result: 'pass', reason: null, details: {} };
}

const hitDetails = (hits: readonly ScreeningHit[]) => ({
  hits: hits.map((hit) => ({
    list: hit.listSource,
    entryId: hit.entryId,
    listedName: hit.listedName,
    score: hit.score,
    dateOfBirthMatches: hit.dateOfBirthMatches ?? null,
  })),
});

function sanctionsCheck(facts: KycFacts): CheckRecord {
  const hits = facts.hits.filter((hit) => hit.kind === 'sanctions');
  if (hits.length === 0) return { name: 'sanctions', result: 'pass', reason: null, details: { hits: [] } };
  const certain = hits.some((hit) => hit.score >= CERTAIN_MATCH_SCORE && hit.dateOfBirthMatches !== false);
  return certain
    ? { name: 'sanctions', result: 'fail', reason: 'sanctions_match', details: hitDetails(hits) }
    : { name: 'sanctions', result: 'refer', reason: 'possible_sanctions_match', details: hitDetails(hits) };
}

// Politically exposed people may bank; they need enhanced due diligence, so a person decides.
function pepCheck(facts: KycFacts): CheckRecord {
  const hits = facts.hits.filter((hit) => hit.kind === 'pep');
  return hits.length === 0
    ? { name: 'pep', result: 'pass', reason: null, details: { hits: [] } }
    : { name: 'pep', result: 'refer', reason: 'politically_exposed_person', details: hitDetails(hits) };
}

function documentsCheck(facts: KycFacts): CheckRecord {
  const identity = facts.documentKinds.some((kind) => IDENTITY_DOCUMENT_KINDS.includes(kind));
  return identity
    ? { name: 'documents', result: 'pass', reason: null, details: { kinds: facts.documentKinds } }
    : {
        name: 'documents',
        result: 'refer',
        reason: 'identity_document_missing',
        details: { kinds: facts.documentKinds },
      };
}

/** Low when everything passed; high with any screening concern; medium for anything else a person must look at. */
function riskRatingOf(checks: readonly CheckRecord[]): RiskRating {
  const concern = (name: CheckRecord['name']) =>
    checks.some((check) => check.name === name && check.result !== 'pass');
  if (concern('sanctions') || concern('pep')) return 'high';
  return checks.every((check) => check.result === 'pass') ? 'low' : 'medium';
}

export function decide(facts: KycFacts): KycDecision {
  const checks: CheckRecord[] = [
    { name: 'field_validation', result: 'pass', reason: null, details: {} },
    ageCheck(facts),
    nationalIdCheck(facts),
    duplicateCheck(facts),
    sanctionsCheck(facts),
    pepCheck(facts),
    documentsCheck(facts),
  ];
  const reasons = checks.flatMap((check) => (check.reason ? [check.reason] : []));
  const outcome: Outcome = checks.some((check) => check.result === 'fail')
    ? 'rejected'
    : checks.some((check) => check.result === 'refer')
      ? 'in_review'
      : 'approved';
  return { checks, outcome, riskRating: riskRatingOf(checks), reasons };
}
