// ISO 20022 pain.001.001.09 (CustomerCreditTransferInitiationV09): the file a business sends its bank to pay
// many creditors at once. The reader checks the document against the official schema before it reads a
// value, then checks what a schema cannot (the header's NbOfTxs and CtrlSum against the transactions), and
// keeps every value as text: amounts are xs:decimal and stay exact. The writer produces documents that pass
// the same schema (examples, tests, and a payroll system's side of a round trip).
import { XMLParser } from 'fast-xml-parser';
import { type SchemaError, validateMessage } from './schema.ts';

export const PAIN_001 = 'pain.001.001.09';
const NAMESPACE = `urn:iso:std:iso:20022:tech:xsd:${PAIN_001}`;

export interface CreditTransfer {
  readonly instructionId: string | null;
  readonly endToEndId: string;
  /** InstdAmt as written (xs:decimal); null when the transaction gives an equivalent amount instead. */
  readonly amount: string | null;
  readonly currency: string | null;
  readonly creditorName: string | null;
  /** Null when the creditor's account is not identified by an IBAN (or not at all). */
  readonly creditorIban: string | null;
  /** The unstructured remittance lines (Ustrd), joined with a space; structured remittance is not read. */
  readonly remittance: string | null;
}

export interface PaymentInformation {
  readonly id: string;
  readonly method: string;
  /** ReqdExctnDt: a date, or a date and time, as written. */
  readonly requestedExecutionDate: string;
  readonly debtorName: string | null;
  readonly debtorIban: string | null;
  readonly transactions: readonly CreditTransfer[];
}

export interface CreditTransferInitiation {
  readonly messageId: string;
  readonly createdAt: string;
  readonly initiatingPartyName: string | null;
  readonly paymentInformation: readonly PaymentInformation[];
}

export type Pain001Reading =
  | { readonly ok: true; readonly message: CreditTransferInitiation }
  | { readonly ok: false; readonly errors: readonly SchemaError[] };

// Reported schema errors are capped: a file wrong on every line says so in its first few hundred.
const ERRORS_REPORTED_MAX = 200;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  removeNSPrefix: true,
  // Every value stays text: "10.50" must not become the float 10.5, nor a MsgId "0012" the number 12.
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  isArray: (name) => name === 'PmtInf' || name === 'CdtTrfTxInf' || name === 'Ustrd',
});

type Node = Record<string, unknown>;
const child = (node: unknown, name: string): Node | undefined => {
  const value = (node as Node | undefined)?.[name];
  return value !== null && typeof value === 'object' ? (value as Node) : undefined;
};
const text = (node: unknown, name: string): string | null => {
  const value = (node as Node | undefined)?.[name];
  if (typeof value === 'string') return value;
  // An element with attributes: its text is under '#text'.
  const inner = value !== null && typeof value === 'object' ? (value as Node)['#text'] : undefined;
  return typeof inner === 'string' ? inner : null;
};
const list = (node: unknown, name: string): Node[] => {
  const value = (node as Node | undefined)?.[name];
  return Array.isArray(value) ? (value as Node[]) : [];
};
const path = (node: unknown, ...names: string[]): Node | undefined =>
  names.reduce<Node | undefined>((at, name) => child(at, name), node as Node);

/**
 * Reads a pain.001.001.09 document. Refused, with the reasons: a document type declaration (no ISO 20022
 * message has one, and refusing it rules out entity expansion attacks before any parser runs), anything
 * the schema refuses, and a header whose NbOfTxs or CtrlSum disagrees with the transactions.
 */
export async function readPain001(xml: string): Promise<Pain001Reading> {
  if (/<!DOCTYPE/i.test(xml)) {
    return { ok: false, errors: [{ line: null, message: 'a document type declaration is not allowed' }] };
  }
  const report = await validateMessage(PAIN_001, xml);
  if (!report.valid) return { ok: false, errors: report.errors.slice(0, ERRORS_REPORTED_MAX) };
  const document = child(parser.parse(xml), 'Document');
  const initiation = child(document, 'CstmrCdtTrfInitn');
  const header = child(initiation, 'GrpHdr');
  // The schema held: these are present.
  const message: CreditTransferInitiation = {
    messageId: text(header, 'MsgId') ?? '',
    createdAt: text(header, 'CreDtTm') ?? '',
    initiatingPartyName: text(child(header, 'InitgPty'), 'Nm'),
    paymentInformation: list(initiation, 'PmtInf').map(paymentInformation),
  };
  const errors = headerMismatches(initiation, message);
  return errors.length > 0 ? { ok: false, errors } : { ok: true, message };
}

function paymentInformation(node: Node): PaymentInformation {
  const date = child(node, 'ReqdExctnDt');
  return {
    id: text(node, 'PmtInfId') ?? '',
    method: text(node, 'PmtMtd') ?? '',
    requestedExecutionDate: text(date, 'Dt') ?? text(date, 'DtTm') ?? '',
    debtorName: text(child(node, 'Dbtr'), 'Nm'),
    debtorIban: text(path(node, 'DbtrAcct', 'Id'), 'IBAN'),
    transactions: list(node, 'CdtTrfTxInf').map(creditTransfer),
  };
}

function creditTransfer(node: Node): CreditTransfer {
  const instructed = path(node, 'Amt', 'InstdAmt');
  const remittance = list(child(node, 'RmtInf'), 'Ustrd').map(String);
  return {
    instructionId: text(child(node, 'PmtId'), 'InstrId'),
    endToEndId: text(child(node, 'PmtId'), 'EndToEndId') ?? '',
    amount: text(path(node, 'Amt'), 'InstdAmt'),
    currency: typeof instructed?.['@Ccy'] === 'string' ? instructed['@Ccy'] : null,
    creditorName: text(child(node, 'Cdtr'), 'Nm'),
    creditorIban: text(path(node, 'CdtrAcct', 'Id'), 'IBAN'),
    remittance: remittance.length > 0 ? remittance.join(' ') : null,
  };
}

/** What the schema cannot check: the counts and control sums the header and each block declare. */
function headerMismatches(initiation: Node | undefined, message: CreditTransferInitiation): SchemaError[] {
  const errors: SchemaError[] = [];
  const check = (where: string, node: unknown, transactions: readonly CreditTransfer[]) => {
    const count = text(node, 'NbOfTxs');
    if (count !== null && BigInt(count) !== BigInt(transactions.length)) {
      errors.push({
        line: null,
        message: `${where} NbOfTxs is ${count}, the file has ${transactions.length}`,
      });
    }
    const declared = text(node, 'CtrlSum');
    if (declared === null) return;
    const sum = decimalSum(transactions.map((t) => t.amount ?? '0'));
    if (sum === undefined || sum !== decimalScaled(declared)) {
      errors.push({ line: null, message: `${where} CtrlSum ${declared} is not the sum of the amounts` });
    }
  };
  check(
    'GrpHdr',
    child(initiation, 'GrpHdr'),
    message.paymentInformation.flatMap((block) => block.transactions),
  );
  // Each block's own counts, where given, must hold too.
  for (const [index, node] of list(initiation, 'PmtInf').entries()) {
    check(`PmtInf ${index + 1}`, node, message.paymentInformation[index]?.transactions ?? []);
  }
  return errors;
}

// Control sums compare exactly: decimals as integers of 10^-17 (DecimalNumber's fraction digits).
const SUM_SCALE = 17;

/** An xs:decimal as an integer count of 10^-17, or undefined when it is not one. */
export function decimalScaled(value: string): bigint | undefined {
  const match = /^([+-])?([0-9]*)(?:\.([0-9]*))?$/.exec(value.trim());
  if (!match || (match[2] === '' && (match[3] ?? '') === '')) return undefined;
  const fraction = match[3] ?? '';
  if (fraction.length > SUM_SCALE) return undefined;
  const scaled = BigInt(`${match[2] || '0'}${fraction.padEnd(SUM_SCALE, '0')}`);
  return match[1] === '-' ? -scaled : scaled;
}

function decimalSum(values: readonly string[]): bigint | undefined {
  let sum = 0n;
  for (const value of values) {
    const scaled = decimalScaled(value);
    if (scaled === undefined) return undefined;
    sum += scaled;
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------- writing

export interface CreditTransferToWrite {
  readonly endToEndId: string;
  /** A decimal string: "10.50". */
  readonly amount: string;
  readonly currency: string;
  readonly creditorName: string;
  readonly creditorIban: string;
  readonly remittance?: string | null | undefined;
}

export interface InitiationToWrite {
  readonly messageId: string;
  readonly createdAt: Date;
  readonly initiatingPartyName: string;
  readonly paymentInformationId: string;
  /** YYYY-MM-DD */
  readonly requestedExecutionDate: string;
  readonly debtorName: string;
  readonly debtorIban: string;
  /** The debtor's bank's BIC, when known; otherwise the agent is written as NOTPROVIDED, as EPC guidance does. */
  readonly debtorAgentBic?: string | undefined;
  readonly transactions: readonly CreditTransferToWrite[];
}

const escapeXml = (value: string) =>
  value.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] as string,
  );

/** A pain.001.001.09 document with one payment information block; valid against the schema. */
export function writePain001(message: InitiationToWrite): string {
  const e = escapeXml;
  const sum = decimalSum(message.transactions.map((t) => t.amount));
  if (sum === undefined) throw new RangeError('an amount is not a decimal');
  const controlSum = formatScaled(sum);
  const count = message.transactions.length;
  const agent = message.debtorAgentBic
    ? `<BICFI>${e(message.debtorAgentBic)}</BICFI>`
    : '<Othr><Id>NOTPROVIDED</Id></Othr>';
  const parts: string[] = [
    '<?xml version="1.0" encoding="UTF-8"?>\n',
    `<Document xmlns="${NAMESPACE}">\n<CstmrCdtTrfInitn>\n`,
    `<GrpHdr><MsgId>${e(message.messageId)}</MsgId><CreDtTm>${message.createdAt.toISOString()}</CreDtTm>`,
    `<NbOfTxs>${count}</NbOfTxs><CtrlSum>${controlSum}</CtrlSum>`,
    `<InitgPty><Nm>${e(message.initiatingPartyName)}</Nm></InitgPty></GrpHdr>\n`,
    `<PmtInf><PmtInfId>${e(message.paymentInformationId)}</PmtInfId><PmtMtd>TRF</PmtMtd>`,
    `<NbOfTxs>${count}</NbOfTxs><CtrlSum>${controlSum}</CtrlSum>`,
    `<ReqdExctnDt><Dt>${e(message.requestedExecutionDate)}</Dt></ReqdExctnDt>`,
    `<Dbtr><Nm>${e(message.debtorName)}</Nm></Dbtr>`,
    `<DbtrAcct><Id><IBAN>${e(message.debtorIban)}</IBAN></Id></DbtrAcct>`,
    `<DbtrAgt><FinInstnId>${agent}</FinInstnId></DbtrAgt>\n`,
  ];
  for (const t of message.transactions) {
    parts.push(
      `<CdtTrfTxInf><PmtId><EndToEndId>${e(t.endToEndId)}</EndToEndId></PmtId>`,
      `<Amt><InstdAmt Ccy="${e(t.currency)}">${e(t.amount)}</InstdAmt></Amt>`,
      `<Cdtr><Nm>${e(t.creditorName)}</Nm></Cdtr>`,
      `<CdtrAcct><Id><IBAN>${e(t.creditorIban)}</IBAN></Id></CdtrAcct>`,
      t.remittance ? `<RmtInf><Ustrd>${e(t.remittance)}</Ustrd></RmtInf>` : '',
      '</CdtTrfTxInf>\n',
    );
  }
  parts.push('</PmtInf>\n</CstmrCdtTrfInitn>\n</Document>\n');
  return parts.join('');
}

/** A count of 10^-17 as the shortest decimal that says it: 1050000…0 -> "10.5". */
function formatScaled(scaled: bigint): string {
  const digits = scaled.toString().padStart(SUM_SCALE + 1, '0');
  const whole = digits.slice(0, -SUM_SCALE);
  const fraction = digits.slice(-SUM_SCALE).replace(/0+$/, '');
  return fraction === '' ? whole : `${whole}.${fraction}`;
}
