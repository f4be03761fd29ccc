import type { Sql } from '../db/db.ts';

export type RiskRating = 'low' | 'medium' | 'high';
/** A business has several users (logins) acting for it; a person has one. */
export type CustomerKind = 'personal' | 'business';

/** A customer row: every personal field sealed (pii.ts) under `customers.<column>:<id>`. */
export interface StoredCustomer {
  readonly id: string;
  readonly legalNameEnc: string;
  readonly dateOfBirthEnc: string;
  readonly nationalityEnc: string;
  readonly nationalIdType: string;
  readonly nationalIdEnc: string | null;
  readonly nationalIdIndex: string | null;
  readonly addressEnc: string;
  readonly emailEnc: string;
  readonly phoneEnc: string;
  readonly riskRating: RiskRating;
  readonly status: 'active' | 'closed';
  readonly applicationId: string | null;
  readonly createdAt: Date;
  readonly kind: CustomerKind;
}

interface Row {
  id: string;
  legal_name_enc: string;
  date_of_birth_enc: string;
  nationality_enc: string;
  national_id_type: string;
  national_id_enc: string | null;
  national_id_index: string | null;
  address_enc: string;
  email_enc: string;
  phone_enc: string;
  risk_rating: RiskRating;
  status: 'active' | 'closed';
  application_id: string | null;
  created_at: Date;
  kind: CustomerKind;
}

const fromRow = (row: Row): StoredCustomer => ({
  id: row.id,
  legalNameEnc: row.legal_name_enc,
  dateOfBirthEnc: row.date_of_birth_enc,
  nationalityEnc: row.nationality_enc,
  nationalIdType: row.national_id_type,
  nationalIdEnc: row.national_id_enc,
  nationalIdIndex: row.national_id_index,
  addressEnc: row.address_enc,
  emailEnc: row.email_enc,
  phoneEnc: row.phone_enc,
  riskRating: row.risk_rating,
  status: row.status,
  applicationId: row.application_id,
  createdAt: row.created_at,
  kind: row.kind,
});

/** False when a customer with the same national id exists (the unique blind index decides, race-free). */
export async function insertCustomer(sql: Sql, c: StoredCustomer): Promise<boolean> {
  const rows = await sql.query(
    `insert into customers (id, legal_name_enc, date_of_birth_enc, nationality_enc, national_id_type, national_id_enc,
       national_id_index, address_enc, email_enc, phone_enc, risk_rating, status, application_id, created_at, kind)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
     on conflict (national_id_index) do nothing returning 1`,
    [
      c.id,
      c.legalNameEnc,
      c.dateOfBirthEnc,
      c.nationalityEnc,
      c.nationalIdType,
      c.nationalIdEnc,
      c.nationalIdIndex,
      c.addressEnc,
      c.emailEnc,
      c.phoneEnc,
      c.riskRating,
      c.status,
      c.applicationId,
      c.createdAt,
      c.kind,
    ],
  );
  return rows.length === 1;
}

export async function findCustomer(sql: Sql, id: string): Promise<StoredCustomer | undefined> {
  const [row] = await sql.query<Row>('select * from customers where id = $1', [id]);
  return row && fromRow(row);
}

export async function customerKind(sql: Sql, id: string): Promise<CustomerKind | undefined> {
  const [row] = await sql.query<{ kind: CustomerKind }>('select kind from customers where id = $1', [id]);
  return row?.kind;
}

export async function customerWithNationalId(sql: Sql, index: string): Promise<string | undefined> {
  const [row] = await sql.query<{ id: string }>('select id from customers where national_id_index = $1', [
    index,
  ]);
  return row?.id;
}
