// Payout files as uploaded: a CSV with a header row, or an ISO 20022 pain.001.001.09 document. Reading
// turns either into the same lines of text, numbered from 1 in file order; what each line means (a valid
// IBAN, an amount in the payer's currency) is checked afterwards, line by line (lines.ts). What makes a
// file unreadable as a whole (not UTF-8, no header, a schema violation) is reported here, for the file.
import { parse } from 'csv-parse/sync';
import { PAIN_001, readPain001 } from '../iso20022/pain001.ts';

export type PayoutFormat = 'csv' | typeof PAIN_001;

/** The most credit transfers one batch carries. */
export const PAYOUT_LINES_MAX = 10_000;

/** One credit transfer as the file gives it; any field may be missing or wrong. */
export interface RawLine {
  /** The transfer's position in the file, from 1 (a CSV's header row is not counted). */
  readonly line: number;
  readonly name: string | null;
  readonly iban: string | null;
  readonly amount: string | null;
  readonly currency: string | null;
  readonly reference: string | null;
  readonly endToEndId: string | null;
}

export interface PayoutFile {
  readonly format: PayoutFormat;
  /** pain.001 GrpHdr/MsgId. */
  readonly messageId: string | null;
  /** pain.001: the one account every payment information block pays from. */
  readonly debtorIban: string | null;
  readonly lines: readonly RawLine[];
}

export interface FileError {
  /** The line of the file, when one is to blame. */
  readonly line: number | null;
  readonly message: string;
}

export type FileReading =
  | { readonly ok: true; readonly file: PayoutFile }
  | {
      readonly ok: false;
      readonly code: 'payout_file_invalid' | 'payout_batch_too_large';
      readonly detail: string;
      readonly errors: readonly FileError[];
    };

const refuse = (detail: string, errors: readonly FileError[] = []): FileReading => ({
  ok: false,
  code: 'payout_file_invalid',
  detail,
  errors,
});
const tooLarge = (count: number): FileReading => ({
  ok: false,
  code: 'payout_batch_too_large',
  detail: `the file has ${count} transfers; a batch carries at most ${PAYOUT_LINES_MAX}`,
  errors: [],
});

export async function readPayoutFile(format: PayoutFormat, bytes: Buffer): Promise<FileReading> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    return refuse('the file is not UTF-8 text');
  }
  return format === 'csv' ? readCsv(text) : readXml(text);
}

// The CSV columns, by header name; the order is free. Optional columns may be absent or empty.
const CSV_COLUMNS = ['name', 'iban', 'amount', 'currency', 'reference', 'end_to_end_id'] as const;
const CSV_REQUIRED = ['name', 'iban', 'amount', 'currency'] as const;
type CsvColumn = (typeof CSV_COLUMNS)[number];

function readCsv(text: string): FileReading {
  let rows: string[][];
  try {
    rows = parse(text, {
      bom: true,
      trim: true,
      skip_empty_lines: true,
      // A row with a wrong number of cells is that line's error, not the file's.
      relax_column_count: true,
      // Bounded: one payout line is a few hundred characters; a runaway quote must not swallow the file.
      max_record_size: 4096,
    }) as string[][];
  } catch (error) {
    const line = (error as { lines?: unknown }).lines;
    return refuse('the file is not valid CSV', [
      { line: typeof line === 'number' ? line : null, message: (error as Error).message },
    ]);
  }
  const [header, ...records] = rows;
  if (!header) return refuse('the file is empty');
  const names = header.map((cell) => cell.toLowerCase());
  const unknown = names.filter((name) => !(CSV_COLUMNS as readonly string[]).includes(name));
  const missing = CSV_REQUIRED.filter((name) => !names.includes(name));
  const repeated = names.filter((name, i) => names.indexOf(name) !== i);
  if (unknown.length > 0 || missing.length > 0 || repeated.length > 0) {
    const problems = [
      ...(missing.length ? [`missing column(s) ${missing.join(', ')}`] : []),
      ...(unknown.length ? [`unknown column(s) ${unknown.join(', ')}`] : []),
      ...(repeated.length ? [`repeated column(s) ${repeated.join(', ')}`] : []),
    ];
    return refuse(`the first row must name the columns (${CSV_COLUMNS.join(', ')}): ${problems.join('; ')}`, [
      { line: 1, message: problems.join('; ') },
    ]);
  }
  if (records.length === 0) return refuse('the file has no transfers');
  if (records.length > PAYOUT_LINES_MAX) return tooLarge(records.length);
  const at = new Map(names.map((name, i) => [name as CsvColumn, i]));
  const cell = (record: string[], column: CsvColumn) => {
    const index = at.get(column);
    const value = index === undefined ? undefined : record[index];
    return value === undefined || value === '' ? null : value;
  };
  const lines = records.map(
    (record, i): RawLine =>
      // A short row leaves its missing cells null; the line's checks then name each one.
      ({
        line: i + 1,
        name: cell(record, 'name'),
        iban: cell(record, 'iban'),
        amount: cell(record, 'amount'),
        currency: cell(record, 'currency'),
        reference: cell(record, 'reference'),
        endToEndId: cell(record, 'end_to_end_id'),
      }),
  );
  return { ok: true, file: { format: 'csv', messageId: null, debtorIban: null, lines } };
}

async function readXml(text: string): Promise<FileReading> {
  const reading = await readPain001(text);
  if (!reading.ok) return refuse(`the file is not a valid ${PAIN_001} document`, reading.errors);
  const { message } = reading;
  const blocks = message.paymentInformation;
  const notTransfers = blocks.filter((block) => block.method !== 'TRF');
  if (notTransfers.length > 0) {
    return refuse('every payment information block must be a credit transfer (PmtMtd TRF)');
  }
  const debtors = new Set(blocks.map((block) => block.debtorIban));
  if (debtors.size !== 1 || debtors.has(null)) {
    return refuse('every payment information block must pay from the same account, given by its IBAN');
  }
  const transfers = blocks.flatMap((block) => block.transactions);
  if (transfers.length > PAYOUT_LINES_MAX) return tooLarge(transfers.length);
  // ISO 20022's placeholder for an end-to-end id the initiator does not use (EPC SCT rulebook).
  const endToEnd = (id: string) => (id === 'NOTPROVIDED' ? null : id);
  const lines = transfers.map(
    (t, i): RawLine => ({
      line: i + 1,
      name: t.creditorName,
      iban: t.creditorIban,
      amount: t.amount,
      currency: t.currency,
      reference: t.remittance,
      endToEndId: endToEnd(t.endToEndId),
    }),
  );
  return {
    ok: true,
    file: { format: PAIN_001, messageId: message.messageId, debtorIban: [...debtors][0] ?? null, lines },
  };
}
