// ISO 20022 pain.001.001.09 (CustomerCreditTransferInitiationV09): the file a business sends its bank to pay
// many creditors at once. The reader checks the document against the official schema before it reads a
// value, then checks what a schema cannot (the header's NbOfTxs and CtrlSum against the transactions), and
// keeps every value as text: amounts are xs:decimal and stay exact. The writer produces documents that pass
// the same schema (examples, tests, and a payroll system's side of a round trip).
import { Worker } from 'node:worker_threads';
import { XMLParser } from 'fast-xml-parser';
import { QueueFullError } from '../db/batcher.ts';
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

/** Most attributes one element may carry: pain.001's elements carry one (Ccy), the root a few xmlns. */
export const ATTRIBUTES_PER_ELEMENT_MAX = 16;
/** How long reading one document may take, validation included, before it is given up. */
export const READ_TIMEOUT_MS = 60_000;
// Documents are read one at a time per process, each in a worker thread of its own; a few more may wait,
// and past those an upload is refused (503) rather than queued without end.
const READS_PENDING_MAX = 4;
// Heap for a reading worker: a 10,000-transfer document takes about a tenth of it.
const READER_HEAP_MB = 512;
const READER = new URL('./pain001-reader.ts', import.meta.url);

const refused = (message: string): Pain001Reading => ({ ok: false, errors: [{ line: null, message }] });

let reading: Promise<unknown> = Promise.resolve();
let pending = 0;

/**
 * Reads a pain.001.001.09 document (parsePain001) in a worker thread: a document can be schema-valid yet
 * take seconds to parse (unbounded repetitions, free content in SplmtryData), and the thread that answers
 * every other request must not wait for it. One document at a time; one past its time or its memory is
 * stopped and refused. Throws QueueFullError when too many documents wait.
 */
export function readPain001(xml: string, options: { timeoutMs?: number } = {}): Promise<Pain001Reading> {
  if (pending >= READS_PENDING_MAX) {
    return Promise.reject(new QueueFullError('pain.001 readers are busy', 'the bank is reading other files'));
  }
  pending++;
  const turn = reading.then(() => inWorker(xml, options.timeoutMs ?? READ_TIMEOUT_MS));
  reading = turn.catch(() => {});
  return turn.finally(() => {
    pending--;
  });
}

function inWorker(xml: string, timeoutMs: number): Promise<Pain001Reading> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(READER, {
      workerData: xml,
      resourceLimits: { maxOldGenerationSizeMb: READER_HEAP_MB },
    });
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      outcome();
    };
    const timer = setTimeout(
      () => settle(() => resolve(refused(`the document took longer than ${timeoutMs / 1000} s to read`))),
      timeoutMs,
    );
    worker.once('message', (answer: Pain001Reading) => settle(() => resolve(answer)));
    worker.once('error', (error: Error & { code?: string }) =>
      settle(() =>
        error.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? resolve(refused('the document needs more memory to read than the bank gives one file'))
          : reject(error),
      ),
    );
    worker.once('exit', (code) =>
      settle(() => reject(new Error(`the pain.001 reader stopped (exit code ${code}) without an answer`))),
    );
  });
}

/**
 * Reads a pain.001.001.09 document, on this thread. Refused, with the reasons: a document type
 * declaration (no ISO 20022 message has one, and refusing it rules out entity expansion attacks before any
 * parser runs), an element with more attributes than any pain.001 element has (each wrong attribute would
 * be one more schema error to hold), anything the schema refuses, and a header whose NbOfTxs or CtrlSum
 * disagrees with the transactions.
 */
export async function parsePain001(xml: string): Promise<Pain001Reading> {
  if (/<!DOCTYPE/i.test(xml)) return refused('a document type declaration is not allowed');
  const crowded = crowdedElementLine(xml, ATTRIBUTES_PER_ELEMENT_MAX);
  if (crowded !== undefined) {
    return {
      ok: false,
      errors: [
        { line: crowded, message: `an element has more than ${ATTRIBUTES_PER_ELEMENT_MAX} attributes` },
      ],
    };
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

/**
 * The line of the first element with more than `max` attributes, or undefined. A scan of the markup, not a
 * parse: comments, CDATA sections and processing instructions are skipped, and an attribute is counted by
 * its `=` outside quoted values. Malformed markup is left to the schema validator to name.
 */
export function crowdedElementLine(xml: string, max: number): number | undefined {
  let line = 1;
  const skipTo = (from: number, end: string) => {
    const at = xml.indexOf(end, from);
    const stop = at < 0 ? xml.length : at + end.length;
    for (let i = from; i < stop; i++) if (xml.charCodeAt(i) === 0x0a) line++;
    return stop;
  };
  for (let i = 0; i < xml.length; i++) {
    const c = xml.charCodeAt(i);
    if (c === 0x0a) line++;
    if (c !== 0x3c) continue; // '<'
    if (xml.startsWith('<!--', i)) i = skipTo(i, '-->') - 1;
    else if (xml.startsWith('<![CDATA[', i)) i = skipTo(i, ']]>') - 1;
    else if (xml.startsWith('<?', i)) i = skipTo(i, '?>') - 1;
    else {
      const startLine = line;
      let attributes = 0;
      let quote = 0;
      for (i++; i < xml.length; i++) {
        const d = xml.charCodeAt(i);
        if (d === 0x0a) line++;
        if (quote !== 0) {
          if (d === quote) quote = 0;
        } else if (d === 0x22 || d === 0x27) quote = d;
        else if (d === 0x3d && ++attributes > max) return startLine;
        else if (d === 0x3e) break; // '>'
      }
    }
  }
  return undefined;
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
