// pacs.008 messages as built for cross-border payments, checked against the official ISO 20022 schema: one
// worked example read back field by field, and generated ones (every exponent, hostile names) all valid.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { XMLParser } from 'fast-xml-parser';
import { buildPacs008, isoText, NOT_PROVIDED, type Pacs008Transfer } from './pacs008.ts';
import { validateMessage } from './schema.ts';

const example: Pacs008Transfer = {
  messageId: '0194f2c8a1b27c3d9e8f00112233aabb',
  instructionId: '0194f2c8a1b27c3d9e8f001122334455',
  endToEndId: '0194f2c8a1b27c3d9e8f001122334455',
  transactionId: '0194f2c8a1b27c3d9e8f001122334455',
  uetr: 'f47ac10b-58cc-4372-a567-0e02b2c3d479',
  createdAt: new Date('2026-03-02T10:15:00Z'),
  settlementDate: '2026-03-02',
  settlementAmount: { currency: 'JPY', minor: 16_158n, exponent: 0 },
  instructedAmount: { currency: 'EUR', minor: 10_000n, exponent: 2 },
  exchangeRate: '161.5880000000',
  chargeBearer: 'DEBT',
  debtorAgentCharge: { currency: 'EUR', minor: 10n, exponent: 2 },
  debtor: { name: 'Alice Able', iban: 'GB33APIB40000000000001' },
  debtorAgent: { name: 'apibank Sandbox Bank', otherId: 'APIB400000' },
  creditor: { name: 'Tōkyō Trading & Sons <KK>', iban: 'DE89370400440532013000' },
  creditorAgent: { otherId: NOT_PROVIDED },
  remittance: 'Invoice 42',
};

describe('pacs.008.001.08', () => {
  it('builds a message the official schema accepts, carrying the payment as given', async () => {
    const xml = buildPacs008(example);
    assert.deepEqual(await validateMessage('pacs.008.001.08', xml), { valid: true, errors: [] });
    const parsed = new XMLParser({
      ignoreAttributes: false,
      attributeNamePrefix: '@_',
      parseTagValue: false,
    }).parse(xml).Document.FIToFICstmrCdtTrf;
    assert.equal(parsed.GrpHdr.NbOfTxs, '1');
    assert.equal(parsed.GrpHdr.SttlmInf.SttlmMtd, 'INDA');
    const tx = parsed.CdtTrfTxInf;
    assert.deepEqual(tx.IntrBkSttlmAmt, { '@_Ccy': 'JPY', '#text': '16158' });
    assert.deepEqual(tx.InstdAmt, { '@_Ccy': 'EUR', '#text': '100.00' });
    assert.equal(tx.XchgRate, '161.5880000000');
    assert.equal(tx.ChrgBr, 'DEBT');
    assert.deepEqual(tx.ChrgsInf.Amt, { '@_Ccy': 'EUR', '#text': '0.10' });
    assert.equal(tx.Cdtr.Nm, 'Tōkyō Trading & Sons <KK>', 'escaped in the XML, the same name read back');
    assert.equal(tx.CdtrAcct.Id.IBAN, 'DE89370400440532013000');
    assert.equal(tx.DbtrAcct.Id.IBAN, 'GB33APIB40000000000001');
    assert.equal(tx.PmtId.UETR, example.uetr);
    assert.equal(tx.RmtInf.Ustrd, 'Invoice 42');
    assert.match(xml, /&amp; Sons &lt;KK&gt;/);
  });

  it('the schema refuses what it should, so the checks above mean something', async () => {
    const tooPrecise = buildPacs008({ ...example, exchangeRate: '161.58800000001' });
    assert.equal((await validateMessage('pacs.008.001.08', tooPrecise)).valid, false);
    const badIban = buildPacs008({ ...example, creditor: { ...example.creditor, iban: 'de89 3704' } });
    assert.equal((await validateMessage('pacs.008.001.08', badIban)).valid, false);
  });

  it('keeps text XML-safe, bounded and never empty', () => {
    assert.equal(isoText('a\u0000b\u001Fc', 140), 'a b c');
    assert.equal(isoText('\u0001  ', 140), NOT_PROVIDED);
    assert.equal(isoText('x'.repeat(200), 140).length, 140);
    assert.equal(isoText('😀'.repeat(50), 35), '😀'.repeat(35), 'cut at characters, never inside one');
  });

  it('is valid for any amounts, exponents, names and references a payment may carry', async () => {
    const money = (exponent: number) =>
      fc.record({
        currency: fc.constantFrom(
          ...{ 0: ['JPY', 'KRW'], 2: ['EUR', 'USD', 'GBP'], 3: ['KWD', 'BHD', 'JOD'] }[exponent as 0 | 2 | 3],
        ),
        minor: fc.bigInt({ min: 1n, max: 10n ** 15n }),
        exponent: fc.constant(exponent),
      });
    const anyMoney = fc.constantFrom(0, 2, 3).chain(money);
    await fc.assert(
      fc.asyncProperty(
        anyMoney,
        anyMoney,
        fc.string({ minLength: 1, maxLength: 140, unit: 'binary' }),
        fc.string({ minLength: 1, maxLength: 140, unit: 'grapheme' }),
        fc.option(fc.string({ maxLength: 140 }), { nil: null }),
        fc.bigInt({ min: 1n, max: 99_999_999_999n }),
        fc.integer({ min: 0, max: 10 }),
        async (settlement, instructed, debtorName, creditorName, remittance, rateUnits, rateScale) => {
          const digits = rateUnits.toString();
          const scale = Math.min(rateScale, digits.length);
          const rate =
            scale === 0
              ? digits
              : `${digits.slice(0, -scale) || '0'}.${digits.slice(-scale).padStart(scale, '0')}`;
          const xml = buildPacs008({
            ...example,
            uetr: randomUUID(),
            settlementAmount: settlement,
            instructedAmount: instructed,
            exchangeRate: rate,
            debtor: { ...example.debtor, name: debtorName },
            creditor: { ...example.creditor, name: creditorName },
            remittance,
          });
          const report = await validateMessage('pacs.008.001.08', xml);
          assert.deepEqual(report.errors, []);
        },
      ),
      { numRuns: 30 },
    );
  });
});
