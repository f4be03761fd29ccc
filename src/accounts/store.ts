import { arrayLiteral, type Sql } from '../db/db.ts';

export type AccountProduct = 'current' | 'savings';
export type AccountStatus = 'active' | 'frozen' | 'closed';

export interface BankAccount {
  readonly id: string;
  readonly customerId: string;
  readonly ledgerAccountId: string;
  readonly product: AccountProduct;
  readonly currency: string;
  readonly iban: string;
  readonly name: string;
  readonly status: AccountStatus;
  readonly createdAt: Date;
  readonly statusUpdatedAt: Date;
}

interface Row {
  id: string;
  customer_id: string;
  ledger_account_id: string;
  product: AccountProduct;
  currency: string;
  iban: string;
  name: string;
  status: AccountStatus;
  created_at: Date;
  status_updated_at: Date;
}

const fromRow = (row: Row): BankAccount => ({
  id: row.id,
  customerId: row.customer_id,
  ledgerAccountId: row.ledger_account_id,
  product: row.product,
  currency: row.currency,
  iban: row.iban,
  name: row.name,
  status: row.status,
  createdAt: row.created_at,
  statusUpdatedAt: row.status_updated_at,
});

export async function nextAccountSerial(sql: Sql): Promise<bigint> {
  const [row] = await sql.query<{ serial: bigint }>("select nextval('bank_account_serial') as serial");
  if (!row) throw new Error('nextval returned no row');
  return row.serial;
}

export async function insertBankAccount(sql: Sql, account: BankAccount): Promise<void> {
  await sql.query(
    `insert into bank_accounts (id, customer_id, ledger_account_id, product, currency, iban, name, status, created_at, status_updated_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [
      account.id,
      account.customerId,
      account.ledgerAccountId,
      account.product,
      account.currency,
      account.iban,
      account.name,
      account.status,
      account.createdAt,
      account.statusUpdatedAt,
    ],
  );
}

export async function findBankAccount(sql: Sql, id: string): Promise<BankAccount | undefined> {
  const [row] = await sql.query<Row>('select * from bank_accounts where id = $1', [id]);
  return row && fromRow(row);
}

/** A customer's accounts in opening order, optionally only those in `onlyIds` (a consent's selection). */
export async function listBankAccounts(
  sql: Sql,
  customerId: string,
  onlyIds: readonly string[] | undefined,
  afterId: string | undefined,
  limit: number,
): Promise<BankAccount[]> {
  const rows = await sql.query<Row>(
    `select * from bank_accounts
      where customer_id = $1 and ($2::text is null or id = any($2::text::uuid[])) and ($3::uuid is null or id > $3)
      order by id limit $4`,
    [customerId, onlyIds ? arrayLiteral(onlyIds) : null, afterId ?? null, limit],
  );
  return rows.map(fromRow);
}

export async function findBankAccountByIban(sql: Sql, iban: string): Promise<BankAccount | undefined> {
  const [row] = await sql.query<Row>('select * from bank_accounts where iban = $1', [iban]);
  return row && fromRow(row);
}

/** An account by id and another by IBAN, in one statement (a payment's two sides); either may be absent. */
export async function findBankAccountByIdAndIban(
  sql: Sql,
  id: string | undefined,
  iban: string | undefined,
): Promise<{ byId: BankAccount | undefined; byIban: BankAccount | undefined }> {
  const rows = await sql.query<Row>('select * from bank_accounts where id = $1::uuid or iban = $2', [
    id ?? null,
    iban ?? null,
  ]);
  const accounts = rows.map(fromRow);
  // PostgreSQL reads a UUID in either case and writes it in lower case.
  const lowerId = id?.toLowerCase();
  return {
    byId: lowerId === undefined ? undefined : accounts.find((account) => account.id === lowerId),
    byIban: iban === undefined ? undefined : accounts.find((account) => account.iban === iban),
  };
}

export async function findBankAccountsByIban(sql: Sql, ibans: readonly string[]): Promise<BankAccount[]> {
  if (ibans.length === 0) return [];
  const rows = await sql.query<Row>('select * from bank_accounts where iban = any($1::text::text[])', [
    arrayLiteral(ibans),
  ]);
  return rows.map(fromRow);
}

export async function bankAccountsByLedgerIds(
  sql: Sql,
  ledgerIds: readonly string[],
): Promise<BankAccount[]> {
  if (ledgerIds.length === 0) return [];
  const rows = await sql.query<Row>(
    'select * from bank_accounts where ledger_account_id = any($1::text::uuid[])',
    [arrayLiteral(ledgerIds)],
  );
  return rows.map(fromRow);
}

export async function updateBankAccountStatus(
  sql: Sql,
  id: string,
  status: AccountStatus,
  at: Date,
): Promise<BankAccount | undefined> {
  const [row] = await sql.query<Row>(
    `update bank_accounts set status = $2, status_updated_at = $3 where id = $1 and status <> 'closed' returning *`,
    [id, status, at],
  );
  return row && fromRow(row);
}
