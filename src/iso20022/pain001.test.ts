// pain.001.001.09: what the writer produces passes the official schema and reads back as written; what the
// reader refuses (a schema violation, a header that disagrees with its transactions, a DOCTYPE) it refuses
// with reasons.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crowdedElementLine, decimalScaled, readPain001, writePain001 } from './pain001.ts';
import { validateMessage } from './schema.ts';

const initiation = {
  messageId: 'PAYROLL-2026-03',
  createdAt: new Date('2026-03-27T08:30:00Z'),
  initiatingPartyName: 'Smith & Sons <Payroll>',
  paymentInformationId: 'PMT-1',
  requestedExecutionDate: '2026-03-31',
  debtorName: 'Smith & Sons',
  debtorIban: 'GB33BUKB20201555555555',
  transactions: [
    {
      endToEndId: 'E2E-1',
      amount: '1500.00',
      currency: 'EUR',
      creditorName: 'Zoë "Zed" O\'Brien',
      creditorIban: 'DE89370400440532013000',
      remittance: 'March salary <net>',
    },
    {
      endToEndId: 'E2E-2',
      amount: '0.5',
      currency: 'EUR',
      creditorName: 'Łukasz Nowak',
      creditorIban: 'NL91ABNA0417164300',
    },
  ],
};

/** A hand-written document: two payment information blocks, a date-time, InstrId, two Ustrd lines. */
const HAND_WRITTEN = `<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">
  <CstmrCdtTrfInitn>
    <GrpHdr>
      <MsgId>0042</MsgId><CreDtTm>2026-03-27T08:30:00</CreDtTm><NbOfTxs>2</NbOfTxs><CtrlSum>30.00</CtrlSum>
      <InitgPty><Nm>Acme</Nm></InitgPty>
    </GrpHdr>
    <PmtInf>
      <PmtInfId>A</PmtInfId><PmtMtd>TRF</PmtMtd><NbOfTxs>1</NbOfTxs>
      <ReqdExctnDt><DtTm>2026-03-31T09:00:00</DtTm></ReqdExctnDt>
      <Dbtr><Nm>Acme</Nm></Dbtr><DbtrAcct><Id><IBAN>GB33BUKB20201555555555</IBAN></Id></DbtrAcct>
      <DbtrAgt><FinInstnId><BICFI>BUKBGB22</BICFI></FinInstnId></DbtrAgt>
      <CdtTrfTxInf>
        <PmtId><InstrId>I-1</InstrId><EndToEndId>E-1</EndToEndId></PmtId>
        <Amt><InstdAmt Ccy="EUR">10.00</InstdAmt></Amt>
        <Cdtr><Nm>First</Nm></Cdtr><CdtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></CdtrAcct>
        <RmtInf><Ustrd>Line one</Ustrd><Ustrd>line two</Ustrd></RmtInf>
      </CdtTrfTxInf>
    </PmtInf>
    <PmtInf>
      <PmtInfId>B</PmtInfId><PmtMtd>TRF</PmtMtd>
      <ReqdExctnDt><Dt>2026-04-01</Dt></ReqdExctnDt>
      <Dbtr><Nm>Acme</Nm></Dbtr><DbtrAcct><Id><IBAN>GB33BUKB20201555555555</IBAN></Id></DbtrAcct>
      <DbtrAgt><FinInstnId><Othr><Id>NOTPROVIDED</Id></Othr></FinInstnId></DbtrAgt>
      <CdtTrfTxInf>
        <PmtId><EndToEndId>E-2</EndToEndId></PmtId>
        <Amt><InstdAmt Ccy="EUR">20</InstdAmt></Amt>
        <CdtrAcct><Id><Othr><Id>12345678</Id></Othr></Id></CdtrAcct>
      </CdtTrfTxInf>
    </PmtInf>
  </CstmrCdtTrfInitn>
</Document>
`;

describe('pain.001.001.09', () => {
  it('writes a document the official schema accepts, and reads it back as written', async () => {
    const xml = writePain001(initiation);
    assert.deepEqual(await validateMessage('pain.001.001.09', xml), { valid: true, errors: [] });
    assert.match(xml, /<CtrlSum>1500.5<\/CtrlSum>/);
    assert.match(
      xml,
      /<Othr><Id>NOTPROVIDED<\/Id><\/Othr>/,
      'an unknown debtor agent is written as EPC says',
    );
    const reading = await readPain001(xml);
    assert.ok(reading.ok, JSON.stringify(reading));
    assert.deepEqual(reading.message, {
      messageId: 'PAYROLL-2026-03',
      createdAt: '2026-03-27T08:30:00.000Z',
      initiatingPartyName: 'Smith & Sons <Payroll>',
      paymentInformation: [
        {
          id: 'PMT-1',
          method: 'TRF',
          requestedExecutionDate: '2026-03-31',
          debtorName: 'Smith & Sons',
          debtorIban: 'GB33BUKB20201555555555',
          transactions: initiation.transactions.map((t) => ({
            instructionId: null,
            endToEndId: t.endToEndId,
            amount: t.amount,
            currency: t.currency,
            creditorName: t.creditorName,
            creditorIban: t.creditorIban,
            remittance: t.remittance ?? null,
          })),
        },
      ],
    });
    // And what was read writes the same document again.
    const block = reading.message.paymentInformation[0];
    assert.ok(block);
    assert.equal(
      writePain001({
        ...initiation,
        transactions: block.transactions.map((t) => ({
          endToEndId: t.endToEndId,
          amount: t.amount ?? '',
          currency: t.currency ?? '',
          creditorName: t.creditorName ?? '',
          creditorIban: t.creditorIban ?? '',
          remittance: t.remittance,
        })),
      }),
      xml,
    );
  });

  it('reads what other writers put in: several blocks, date-times, ids kept as text', async () => {
    const reading = await readPain001(HAND_WRITTEN);
    assert.ok(reading.ok, JSON.stringify(reading));
    const { message } = reading;
    assert.equal(message.messageId, '0042', 'an id is text, never the number 42');
    assert.deepEqual(
      message.paymentInformation.map((block) => [block.id, block.requestedExecutionDate, block.debtorIban]),
      [
        ['A', '2026-03-31T09:00:00', 'GB33BUKB20201555555555'],
        ['B', '2026-04-01', 'GB33BUKB20201555555555'],
      ],
    );
    assert.deepEqual(message.paymentInformation[0]?.transactions[0], {
      instructionId: 'I-1',
      endToEndId: 'E-1',
      amount: '10.00',
      currency: 'EUR',
      creditorName: 'First',
      creditorIban: 'DE89370400440532013000',
      remittance: 'Line one line two',
    });
    // No creditor name, an account without an IBAN: read as missing, for the line checks to report.
    assert.deepEqual(message.paymentInformation[1]?.transactions[0], {
      instructionId: null,
      endToEndId: 'E-2',
      amount: '20',
      currency: 'EUR',
      creditorName: null,
      creditorIban: null,
      remittance: null,
    });
  });

  it('refuses what the schema refuses, with the line libxml2 names', async () => {
    const broken = writePain001(initiation).replace('<PmtMtd>TRF</PmtMtd>', '<PmtMtd>CASH</PmtMtd>');
    const reading = await readPain001(broken);
    assert.equal(reading.ok, false);
    assert.ok(!reading.ok);
    assert.match(reading.errors[0]?.message ?? '', /PmtMtd/);
    assert.equal(reading.errors[0]?.line, 5, "the payment information block's line");
    const notXml = await readPain001('name,iban\nA,B');
    assert.equal(notXml.ok, false);
  });

  it('refuses a header or block whose NbOfTxs or CtrlSum disagrees with its transactions', async () => {
    const xml = writePain001(initiation);
    const cases: [string, RegExp][] = [
      [xml.replace('<NbOfTxs>2</NbOfTxs>', '<NbOfTxs>3</NbOfTxs>'), /GrpHdr NbOfTxs is 3, the file has 2/],
      [xml.replace('<CtrlSum>1500.5</CtrlSum>', '<CtrlSum>1500.51</CtrlSum>'), /GrpHdr CtrlSum 1500.51/],
      [HAND_WRITTEN.replace('<NbOfTxs>1</NbOfTxs>', '<NbOfTxs>5</NbOfTxs>'), /PmtInf 1 NbOfTxs is 5/],
    ];
    for (const [document, reason] of cases) {
      const reading = await readPain001(document);
      assert.ok(!reading.ok);
      assert.match(reading.errors.map((e) => e.message).join('\n'), reason);
    }
    // The same value written another way is the same sum.
    const reading = await readPain001(
      xml.replace('<CtrlSum>1500.5</CtrlSum>', '<CtrlSum>1500.500</CtrlSum>'),
    );
    assert.equal(reading.ok, true);
  });

  it('refuses a document type declaration before any parser sees it', async () => {
    const bomb = `<?xml version="1.0"?><!DOCTYPE Document [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>${writePain001(initiation).replace(/^<\?xml[^>]*>\n/, '')}`;
    const reading = await readPain001(bomb);
    assert.ok(!reading.ok);
    assert.match(reading.errors[0]?.message ?? '', /document type declaration/);
  });

  it('refuses an element with more attributes than pain.001 has, before the validator lists each', async () => {
    const crowded = writePain001(initiation).replace(
      '<InstdAmt Ccy="EUR">',
      `<InstdAmt Ccy="EUR" ${Array.from({ length: 100_000 }, (_, i) => `a${i}="1"`).join(' ')}>`,
    );
    const reading = await readPain001(crowded);
    assert.ok(!reading.ok);
    assert.deepEqual(reading.errors, [
      {
        line: crowded.split('\n').findIndex((l) => l.includes('a99999')) + 1,
        message: 'an element has more than 16 attributes',
      },
    ]);
  });

  it('counts attributes in tags only, by their = outside quoted values', () => {
    assert.equal(crowdedElementLine('<a x="1" y=\'2\'><b z="=>="/></a>', 2), undefined);
    assert.equal(crowdedElementLine('<a x="1" y="2" z="3"/>', 2), 1);
    assert.equal(crowdedElementLine('<a>x=1 y=2 z=3</a>', 2), undefined, 'text is not markup');
    assert.equal(
      crowdedElementLine('<a><!-- <b x=1 y=2 z=3> --><![CDATA[<c x=1 y=2 z=3>]]></a>', 2),
      undefined,
    );
    assert.equal(
      crowdedElementLine('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<a/>', 2),
      undefined,
    );
    assert.equal(
      crowdedElementLine('<a>\n<!--\n-->\n<b\nx="1"\ny="2"\nz="3"/></a>', 2),
      4,
      'the line the tag opens on',
    );
  });

  it('gives up a document that takes too long to read, and refuses more than a few waiting', async () => {
    const xml = writePain001(initiation);
    const late = await readPain001(xml, { timeoutMs: 1 });
    assert.deepEqual(late, {
      ok: false,
      errors: [{ line: null, message: 'the document took longer than 0.001 s to read' }],
    });
    const readings = await Promise.allSettled(Array.from({ length: 6 }, () => readPain001(xml)));
    assert.deepEqual(
      readings.map((r) => (r.status === 'fulfilled' ? r.value.ok : (r.reason as Error).name)),
      [true, true, true, true, 'QueueFullError', 'QueueFullError'],
    );
  });

  it('compares decimals exactly', () => {
    assert.equal(decimalScaled('10.5'), decimalScaled('10.50000'));
    assert.equal(decimalScaled('+.5'), decimalScaled('0.5'));
    assert.equal(decimalScaled('-1'), -(decimalScaled('1') as bigint));
    assert.notEqual(decimalScaled('0.1'), decimalScaled('0.10000000000000001'));
    for (const bad of ['', '.', '1e3', '1,5', 'abc', '0.123456789012345678']) {
      assert.equal(decimalScaled(bad), undefined, bad);
    }
  });
});
