import { arrayLiteral, type Sql, UUID_MIN } from '../db/db.ts';
import type { CheckRecord, Outcome } from './checks.ts';
import type { CheckedDocument } from './documents.ts';

export interface StoredApplication {
  readonly id: string;
  readonly clientId: string | null;
  readonly channel: 'partner' | 'bank_page';
  readonly status: Outcome;
  readonly applicantEnc: string;
  readonly loginPasswordHash: string | null;
  readonly nationalIdIndex: string | null;
  readonly product: 'current' | 'savings';
  readonly currency: string;
  readonly riskRating: 'low' | 'medium' | 'high';
  readonly reasons: readonly string[];
  readonly customerId: string | null;
  readonly accountId: string | null;
  readonly reviewClaimedBy: string | null;
  readonly reviewClaimedAt: Date | null;
  readonly decidedBy: string | null;
  readonly decisionNoteEnc: string | null;
  readonly decidedAt: Date | null;
  readonly createdAt: Date;
}

interface Row {
  id: string;
  client_id: string | null;
  channel: 'partner' | 'bank_page';
  status: Outcome;
  applicant_enc: string;
  login_password_hash: string | null;
  national_id_index: string | null;
  product: 'current' | 'savings';
  currency: string;
  risk_rating: 'low' | 'medium' | 'high';
  reasons: string[];
  customer_id: string | null;
  account_id: string | null;
  review_claimed_by: string | null;
  review_claimed_at: Date | null;
  decided_by: string | null;
  decision_note_enc: string | null;
  decided_at: Date | null;
  created_at: Date;
}

const fromRow = (row: Row): StoredApplication => ({
  id: row.id,
  clientId: row.client_id,
  channel: row.channel,
  status: row.status,
  applicantEnc: row.applicant_enc,
  loginPasswordHash: row.login_password_hash,
  nationalIdIndex: row.national_id_index,
  product: row.product,
  currency: row.currency,
  riskRating: row.risk_rating,
  reasons: row.reasons,
  customerId: row.customer_id,
  accountId: row.account_id,
  reviewClaimedBy: row.review_claimed_by,
  reviewClaimedAt: row.review_claimed_at,
  decidedBy: row.decided_by,
  decisionNoteEnc: row.decision_note_enc,
  decidedAt: row.decided_at,
  createdAt: row.created_at,
});

export async function insertApplication(sql: Sql, a: StoredApplication): Promise<void> {
  await sql.query(
    `insert into onboarding_applications (id, client_id, channel, status, applicant_enc, national_id_index, product,
       currency, risk_rating, reasons, customer_id, account_id, decided_by, decided_at, created_at, login_password_hash)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::text[], $11, $12, $13, $14, $15, $16)`,
    [
      a.id,
      a.clientId,
      a.channel,
      a.status,
      a.applicantEnc,
      a.nationalIdIndex,
      a.product,
      a.currency,
      a.riskRating,
      arrayLiteral(a.reasons),
      a.customerId,
      a.accountId,
      a.decidedBy,
      a.decidedAt,
      a.createdAt,
      a.loginPasswordHash,
    ],
  );
}

export async function insertChecks(
  sql: Sql,
  applicationId: string,
  checks: readonly CheckRecord[],
  at: Date,
) {
  for (const [position, check] of checks.entries()) {
    await sql.query(
      `insert into kyc_checks (application_id, position, name, result, reason, details, created_at)
       values ($1, $2, $3, $4, $5, $6::text::jsonb, $7)`,
      [applicationId, position, check.name, check.result, check.reason, JSON.stringify(check.details), at],
    );
  }
}

export async function insertDocument(
  sql: Sql,
  document: Omit<CheckedDocument, 'bytes'> & {
    id: string;
    applicationId: string;
    sizeBytes: number;
    contentEnc: string;
    createdAt: Date;
  },
): Promise<void> {
  await sql.query(
    `insert into onboarding_documents (id, application_id, kind, media_type, size_bytes, sha256, content_enc, created_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [
      document.id,
      document.applicationId,
      document.kind,
      document.mediaType,
      document.sizeBytes,
      document.sha256,
      document.contentEnc,
      document.createdAt,
    ],
  );
}

export async function findApplication(
  sql: Sql,
  id: string,
  forUpdate = false,
): Promise<StoredApplication | undefined> {
  const [row] = await sql.query<Row>(
    `select * from onboarding_applications where id = $1${forUpdate ? ' for update' : ''}`,
    [id],
  );
  return row && fromRow(row);
}

/** Whether an application for this national id is waiting for a reviewer. */
export async function pendingApplicationExists(sql: Sql, nationalIdIndex: string): Promise<boolean> {
  const rows = await sql.query(
    `select 1 from onboarding_applications where national_id_index = $1 and status = 'in_review' limit 1`,
    [nationalIdIndex],
  );
  return rows.length > 0;
}

export async function listInReview(
  sql: Sql,
  afterId: string | undefined,
  limit: number,
): Promise<StoredApplication[]> {
  const rows = await sql.query<Row>(
    `select * from onboarding_applications where status = 'in_review' and id > coalesce($1::uuid, '${UUID_MIN}')
      order by id limit $2`,
    [afterId ?? null, limit],
  );
  return rows.map(fromRow);
}

export async function findChecks(
  sql: Sql,
  applicationId: string,
): Promise<(CheckRecord & { createdAt: Date })[]> {
  const rows = await sql.query<{
    name: CheckRecord['name'];
    result: CheckRecord['result'];
    reason: string | null;
    details: Record<string, unknown>;
    created_at: Date;
  }>(
    'select name, result, reason, details, created_at from kyc_checks where application_id = $1 order by position',
    [applicationId],
  );
  return rows.map((row) => ({
    name: row.name,
    result: row.result,
    reason: row.reason,
    details: row.details,
    createdAt: row.created_at,
  }));
}

export async function findDocuments(
  sql: Sql,
  applicationId: string,
): Promise<{ id: string; kind: string; mediaType: string; sizeBytes: number; sha256: string }[]> {
  const rows = await sql.query<{
    id: string;
    kind: string;
    media_type: string;
    size_bytes: number;
    sha256: string;
  }>(
    'select id, kind, media_type, size_bytes, sha256 from onboarding_documents where application_id = $1 order by id',
    [applicationId],
  );
  return rows.map((row) => ({
    id: row.id,
    kind: row.kind,
    mediaType: row.media_type,
    sizeBytes: row.size_bytes,
    sha256: row.sha256,
  }));
}

export async function findDocumentContent(
  sql: Sql,
  applicationId: string,
  documentId: string,
): Promise<{ mediaType: string; contentEnc: string } | undefined> {
  const [row] = await sql.query<{ media_type: string; content_enc: string }>(
    'select media_type, content_enc from onboarding_documents where application_id = $1 and id = $2',
    [applicationId, documentId],
  );
  return row && { mediaType: row.media_type, contentEnc: row.content_enc };
}

export async function claimReview(sql: Sql, id: string, reviewer: string, at: Date, staleBefore: Date) {
  const [row] = await sql.query<Row>(
    `update onboarding_applications set review_claimed_by = $2, review_claimed_at = $3
      where id = $1 and status = 'in_review'
        and (review_claimed_by is null or review_claimed_by = $2 or review_claimed_at < $4)
      returning *`,
    [id, reviewer, at, staleBefore],
  );
  return row && fromRow(row);
}

export async function recordDecision(
  sql: Sql,
  id: string,
  decision: {
    status: 'approved' | 'rejected';
    reviewer: string;
    noteEnc: string;
    at: Date;
    customerId: string | null;
    accountId: string | null;
    /** Replaces the reasons, when the decision found more. */
    reasons?: readonly string[];
  },
): Promise<void> {
  await sql.query(
    `update onboarding_applications set status = $2, decided_by = $3, decision_note_enc = $4, decided_at = $5,
        customer_id = $6, account_id = $7, reasons = coalesce($8::text::text[], reasons) where id = $1`,
    [
      id,
      decision.status,
      decision.reviewer,
      decision.noteEnc,
      decision.at,
      decision.customerId,
      decision.accountId,
      decision.reasons ? arrayLiteral(decision.reasons) : null,
    ],
  );
}
