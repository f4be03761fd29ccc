// Reading payout files (CSV and pain.001) into lines, and the amounts a file may carry; no database.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { writePain001 } from '../iso20022/pain001.ts';
import { PAYOUT_LINES_MAX, readPayoutFile } from './files.ts';
import { fileAmount } from './lines.ts';

const csv = (text: string) => readPayoutFile('csv', Buffer.from(text));

describe('payout files', () => {
  it('reads a CSV whatever its column order, quoting, BOM, case or blank lines', async () => {
    const reading = await csv(
      '\ufeffIBAN,Amount,Name,Currency,End_To_End_Id,Reference\r\n' +
        'DE89370400440532013000,10.50,"Smith, Jane",EUR,E-1,"Salary ""March"""\r\n' +
        '\r\n' +
        ' NL91ABNA0417164300 , 2 ,  Bob  ,EUR,,\r\n',
    );
    assert.ok(reading.ok, JSON.stringify(reading));
    assert.deepEqual(reading.file.lines, [
      {
        line: 1,
        name: 'Smith, Jane',
        iban: 'DE89370400440532013000',
        amount: '10.50',
        currency: 'EUR',
        reference: 'Salary "March"',
        endToEndId: 'E-1',
      },
      {
        line: 2,
        name: 'Bob',
        iban: 'NL91ABNA0417164300',
        amount: '2',
        currency: 'EUR',
        reference: null,
        endToEndId: null,
      },
    ]);
    // Optional columns may be left out altogether; a short row leaves its cells missing for the line checks.
    const short = await csv('name,iban,amount,currency\nA,DE89370400440532013000\n');
    assert.ok(short.ok);
    assert.deepEqual(short.file.lines[0], {
      line: 1,
      name: 'A',
      iban: 'DE89370400440532013000',
      amount: null,
      currency: null,
      reference: null,
      endToEndId: null,
    });
  });

  it('refuses a CSV it cannot read as a whole, saying why', async () => {
    const refusals: [string, RegExp][] = [
      ['', /empty/],
      ['name,iban,amount,currency\n', /no transfers/],
      ['name,iban,amount\nA,B,1', /missing column\(s\) currency/],
      ['name,iban,amount,currency,colour\nA,B,1,EUR,red', /unknown column\(s\) colour/],
      ['name,iban,amount,currency,name\nA,B,1,EUR,C', /repeated column\(s\) name/],
      ['name,iban,amount,currency\n"A,B,1,EUR', /not valid CSV/],
    ];
    for (const [text, reason] of refusals) {
      const reading = await csv(text);
      assert.ok(!reading.ok, text);
      assert.equal(reading.code, 'payout_file_invalid');
      assert.match(reading.detail, reason, text);
    }
    const latin1 = await readPayoutFile(
      'csv',
      Buffer.from('name,iban,amount,currency\nZo\xeb,X,1,EUR', 'latin1'),
    );
    assert.ok(!latin1.ok);
    assert.match(latin1.detail, /UTF-8/);
    const rows = Array.from({ length: PAYOUT_LINES_MAX + 1 }, () => 'A,DE89370400440532013000,1,EUR');
    const tooMany = await csv(`name,iban,amount,currency\n${rows.join('\n')}`);
    assert.ok(!tooMany.ok);
    assert.equal(tooMany.code, 'payout_batch_too_large');
  });

  it('reads a pain.001 into the same lines, from the one account it names', async () => {
    const document = {
      messageId: 'M-1',
      createdAt: new Date('2026-01-01T00:00:00Z'),
      initiatingPartyName: 'Acme',
      paymentInformationId: 'P-1',
      requestedExecutionDate: '2026-01-02',
      debtorName: 'Acme',
      debtorIban: 'GB33BUKB20201555555555',
      transactions: [
        {
          endToEndId: 'NOTPROVIDED',
          amount: '5',
          currency: 'EUR',
          creditorName: 'Jane',
          creditorIban: 'DE89370400440532013000',
          remittance: 'Fees',
        },
      ],
    };
    const reading = await readPayoutFile('pain.001.001.09', Buffer.from(writePain001(document)));
    assert.ok(reading.ok, JSON.stringify(reading));
    assert.deepEqual(reading.file, {
      format: 'pain.001.001.09',
      messageId: 'M-1',
      debtorIban: 'GB33BUKB20201555555555',
      lines: [
        {
          line: 1,
          name: 'Jane',
          iban: 'DE89370400440532013000',
          amount: '5',
          currency: 'EUR',
          reference: 'Fees',
          // ISO's placeholder for "no end-to-end id" is not an id.
          endToEndId: null,
        },
      ],
    });
    // Cheques are valid pain.001, and not a payout.
    const cheques = writePain001(document).replace('<PmtMtd>TRF</PmtMtd>', '<PmtMtd>CHK</PmtMtd>');
    const refused = await readPayoutFile('pain.001.001.09', Buffer.from(cheques));
    assert.ok(!refused.ok);
    assert.match(refused.detail, /PmtMtd TRF/);
  });

  it('takes amounts as decimal values, exact to the currency’s minor unit', () => {
    const cases: [string, number, bigint | string][] = [
      ['10.50', 2, 1050n],
      ['10.5', 2, 1050n],
      ['10', 2, 1000n],
      ['+10.500', 2, 1050n],
      ['0.01', 2, 1n],
      ['1050', 0, 1050n],
      ['1.234', 3, 1234n],
      ['10.505', 2, 'too_many_decimals'],
      ['1.5', 0, 'too_many_decimals'],
      ['0.00', 2, 'invalid'],
      ['-1.00', 2, 'invalid'],
      ['1e3', 2, 'invalid'],
      ['1,50', 2, 'invalid'],
      ['', 2, 'invalid'],
      ['92233720368547758.08', 2, 'invalid'],
    ];
    for (const [text, exponent, expected] of cases) assert.equal(fileAmount(text, exponent), expected, text);
  });
});
