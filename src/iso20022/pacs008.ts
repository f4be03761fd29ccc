// pacs.008.001.08 (FIToFICustomerCreditTransferV08): the message one bank sends the next to move a customer's
// credit transfer on, here one transaction per message for an outbound cross-border payment settled through
// the bank's nostro account at its correspondent (settlement method INDA: the instructed agent debits the
// account it holds for us). Built with fast-xml-parser's XMLBuilder, which escapes text and attributes;
// pacs008.test.ts validates what it builds against the official schema (schemas/pacs.008.001.08.xsd).
import { XMLBuilder } from 'fast-xml-parser';
import { formatAmount } from '../money.ts';

const NAMESPACE = 'urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08';
// SEPA and CBPR+ usage for an agent or party identifier the sender does not know.
export const NOT_PROVIDED = 'NOTPROVIDED';

export interface Pacs008Amount {
  readonly currency: string;
  readonly minor: bigint;
  readonly exponent: number;
}

export interface Pacs008Party {
  readonly name: string;
  readonly iban: string;
}

/** A financial institution: its BIC when it has one, else a name and an identifier in the sender's scheme. */
export interface Pacs008Agent {
  readonly bic?: string;
  readonly name?: string;
  readonly otherId?: string;
}

export interface Pacs008Transfer {
  /** Max35Text identifiers. */
  readonly messageId: string;
  readonly instructionId: string;
  readonly endToEndId: string;
  readonly transactionId: string;
  /** UUID v4 (SWIFT gpi's unique end-to-end transaction reference). */
  readonly uetr: string;
  readonly createdAt: Date;
  /** YYYY-MM-DD */
  readonly settlementDate: string;
  /** What the creditor's side is paid: interbank settlement amount. */
  readonly settlementAmount: Pacs008Amount;
  /** What the debtor instructed, in the currency they instructed it in. */
  readonly instructedAmount: Pacs008Amount;
  /** Units of the settlement currency per unit of the instructed one, when the two differ (BaseOneRate). */
  readonly exchangeRate?: string;
  /** DEBT: the debtor bears every charge, so the creditor is paid the settlement amount in full. */
  readonly chargeBearer: 'DEBT' | 'CRED' | 'SHAR' | 'SLEV';
  /** The debtor agent's own charge, when it took one. */
  readonly debtorAgentCharge?: Pacs008Amount;
  readonly debtor: Pacs008Party;
  readonly debtorAgent: Pacs008Agent;
  readonly creditor: Pacs008Party;
  readonly creditorAgent: Pacs008Agent;
  /** Unstructured remittance information. */
  readonly remittance?: string | null;
}

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  format: true,
  suppressEmptyNode: true,
});

// XML 1.0 §2.2 Char: tab, line breaks and U+0020 upwards, less surrogates and U+FFFE/F. A name holding any
// other character (a control character, a lone surrogate) is sent with a space in its place rather than
// making the message unparsable.
const isXmlChar = (codePoint: number) =>
  codePoint === 0x9 ||
  codePoint === 0xa ||
  codePoint === 0xd ||
  (codePoint >= 0x20 && codePoint <= 0xd7ff) ||
  (codePoint >= 0xe000 && codePoint <= 0xfffd) ||
  codePoint >= 0x10000;

/** Text for a MaxNText element: XML-safe, at most `max` characters, never empty. */
export function isoText(text: string, max: number): string {
  // By code point, so a character outside the BMP is kept or cut whole, never split.
  const safe = [...text].map((char) => (isXmlChar(char.codePointAt(0) ?? 0) ? char : ' '));
  const clean = safe.join('').trim();
  const bounded = [...clean].slice(0, max).join('').trim();
  return bounded === '' ? NOT_PROVIDED : bounded;
}

const amount = (value: Pacs008Amount) => ({
  '@_Ccy': value.currency,
  '#text': formatAmount(value.minor, value.exponent),
});

function agent(value: Pacs008Agent) {
  return {
    FinInstnId: {
      ...(value.bic && { BICFI: value.bic }),
      ...(value.name && { Nm: isoText(value.name, 140) }),
      ...(value.otherId && { Othr: { Id: isoText(value.otherId, 35) } }),
    },
  };
}

const party = (value: Pacs008Party) => ({ Nm: isoText(value.name, 140) });
const account = (value: Pacs008Party) => ({ Id: { IBAN: value.iban } });

export function buildPacs008(transfer: Pacs008Transfer): string {
  const createdAt = transfer.createdAt.toISOString();
  const remittance = transfer.remittance ? { RmtInf: { Ustrd: isoText(transfer.remittance, 140) } } : {};
  return builder.build({
    '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' },
    Document: {
      '@_xmlns': NAMESPACE,
      FIToFICstmrCdtTrf: {
        GrpHdr: {
          MsgId: isoText(transfer.messageId, 35),
          CreDtTm: createdAt,
          NbOfTxs: '1',
          SttlmInf: { SttlmMtd: 'INDA' },
        },
        CdtTrfTxInf: {
          PmtId: {
            InstrId: isoText(transfer.instructionId, 35),
            EndToEndId: isoText(transfer.endToEndId, 35),
            TxId: isoText(transfer.transactionId, 35),
            UETR: transfer.uetr,
          },
          IntrBkSttlmAmt: amount(transfer.settlementAmount),
          IntrBkSttlmDt: transfer.settlementDate,
          AccptncDtTm: createdAt,
          InstdAmt: amount(transfer.instructedAmount),
          ...(transfer.exchangeRate !== undefined && { XchgRate: transfer.exchangeRate }),
          ChrgBr: transfer.chargeBearer,
          ...(transfer.debtorAgentCharge && {
            ChrgsInf: { Amt: amount(transfer.debtorAgentCharge), Agt: agent(transfer.debtorAgent) },
          }),
          Dbtr: party(transfer.debtor),
          DbtrAcct: account(transfer.debtor),
          DbtrAgt: agent(transfer.debtorAgent),
          CdtrAgt: agent(transfer.creditorAgent),
          Cdtr: party(transfer.creditor),
          CdtrAcct: account(transfer.creditor),
          ...remittance,
        },
      },
    },
  });
}
