import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inflateSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import {
  drawableText,
  groupedIban,
  type Statement,
  type StatementLine,
  statementCsv,
  statementPdf,
} from './statement-formats.ts';

function line(overrides: Partial<StatementLine> = {}): StatementLine {
  return {
    bookedAt: '2026-03-02T09:30:00Z',
    description: 'Coffee Roasters Ltd ref 1001',
    category: 'food',
    direction: 'debit',
    amount: '4.20',
    balance: '995.80',
    ...overrides,
  };
}

function statement(lines: readonly StatementLine[] = [line()]): Statement {
  return {
    bank: { name: 'API Bank' },
    account: {
      id: 'acc_0001',
      iban: 'DE89370400440532013000',
      name: 'Everyday account',
      currency: 'EUR',
      holderName: 'Zoë Müller',
    },
    period: { month: '2026-03', from: '2026-03-01', to: '2026-03-31' },
    openingBalance: '1000.00',
    closingBalance: '-1234.50',
    totalCredits: '250.00',
    totalDebits: '2484.50',
    lines,
    generatedAt: '2026-04-01T06:00:00Z',
  };
}

function numbered(count: number): StatementLine[] {
  return Array.from({ length: count }, (_, index) =>
    line({ description: `Payment number ${index + 1}`, direction: index % 2 ? 'credit' : 'debit' }),
  );
}

// Reading the PDF back. Rather than a switch that turns compression off for tests only, the test reads
// the very bytes a client gets: it follows the xref table from the trailer to each page, inflates the page
// content stream with node:zlib (pdfkit writes FlateDecode) and decodes the hex strings of the TJ
// operators, which pdfkit writes in WinAnsi for the standard fonts. A test that wants more than the text
// of the tables and headers drawn here would need a real PDF parser.

interface DrawnText {
  readonly y: number; // PDF user space: points up from the bottom edge
  readonly text: string;
  readonly bytes: readonly number[];
}

interface ReadPdf {
  readonly pageCount: number;
  readonly pages: readonly (readonly DrawnText[])[];
  readonly info: ReadonlyMap<string, string>;
}

const winAnsi = new TextDecoder('windows-1252');

function readPdf(pdf: Buffer): ReadPdf {
  const raw = pdf.toString('latin1');
  const xrefAt = Number(/startxref\n([0-9]+)\n%%EOF\n?$/.exec(raw)?.[1]);
  const xref = /^xref\n0 ([0-9]+)\n/.exec(raw.slice(xrefAt));
  assert.ok(xref, 'xref table');
  const offsets = raw
    .slice(xrefAt + xref[0].length)
    .split('\n')
    .slice(0, Number(xref[1]))
    .map((entry) => Number(entry.slice(0, 10)));
  const objectAt = (id: number) => {
    const start = offsets[id];
    assert.ok(start !== undefined && raw.startsWith(`${id} 0 obj\n`, start), `object ${id}`);
    return start;
  };
  const dictionary = (id: number) => raw.slice(objectAt(id), raw.indexOf('endobj', objectAt(id)));
  const reference = (text: string, key: string) => Number(new RegExp(`/${key} ([0-9]+) 0 R`).exec(text)?.[1]);
  const stream = (id: number) => {
    const head = raw.slice(objectAt(id), raw.indexOf('stream\n', objectAt(id)) + 'stream\n'.length);
    const length = Number(/\/Length ([0-9]+)/.exec(head)?.[1]);
    const body = pdf.subarray(objectAt(id) + head.length, objectAt(id) + head.length + length);
    return head.includes('/FlateDecode') ? inflateSync(body).toString('latin1') : body.toString('latin1');
  };

  const trailer = raw.slice(raw.lastIndexOf('trailer\n'));
  const pagesId = reference(dictionary(reference(trailer, 'Root')), 'Pages');
  const pageTree = dictionary(pagesId);
  const pageIds = [...(/\/Kids \[([^\]]*)\]/.exec(pageTree)?.[1] ?? '').matchAll(/([0-9]+) 0 R/g)].map((m) =>
    Number(m[1]),
  );
  const pages = pageIds.map((pageId) =>
    [...stream(reference(dictionary(pageId), 'Contents')).matchAll(/BT\n([\s\S]*?)\nET/g)].map((block) => {
      const body = block[1] ?? '';
      const y = Number(/^1 0 0 1 [0-9.-]+ ([0-9.-]+) Tm$/m.exec(body)?.[1]);
      const hex = [...body.matchAll(/\[(.*)\] TJ/g)].flatMap((tj) =>
        [...(tj[1] ?? '').matchAll(/<([0-9a-f]*)>/g)].map((h) => h[1] ?? ''),
      );
      for (const h of hex) assert.equal(h.length % 2, 0, `whole bytes in <${h}>`);
      const bytes = [...Buffer.from(hex.join(''), 'hex')];
      return { y, text: winAnsi.decode(Uint8Array.from(bytes)), bytes };
    }),
  );
  const info = new Map<string, string>();
  const infoDictionary = dictionary(reference(trailer, 'Info'));
  for (const [, key, id] of infoDictionary.matchAll(/\/([A-Za-z]+) ([0-9]+) 0 R/g)) {
    info.set(key ?? '', /\n\((.*)\)\n/.exec(dictionary(Number(id)))?.[1] ?? '');
  }
  return { pageCount: Number(/\/Count ([0-9]+)/.exec(pageTree)?.[1]), pages, info };
}

function pageText(page: readonly DrawnText[]): string[] {
  return page.map((drawn) => drawn.text);
}

describe('statement CSV', () => {
  it('has the header, then one CRLF-ended record per line, and nothing else', () => {
    const csv = statementCsv(statement(numbered(3)));
    const records = csv.split('\r\n');
    assert.equal(records[0], 'booked_at,description,category,direction,amount,balance');
    assert.equal(records.length, 1 + 3 + 1);
    assert.equal(records.at(-1), '', 'the last record ends in CRLF too');
    assert.equal(records[1], '2026-03-02T09:30:00Z,Payment number 1,food,debit,4.20,995.80');
    assert.doesNotMatch(csv.replaceAll('\r\n', ''), /[\r\n]/, 'no bare CR or LF');
    assert.equal(statementCsv(statement([])), 'booked_at,description,category,direction,amount,balance\r\n');
  });

  it('quotes fields holding commas, quotes or line breaks (RFC 4180 §2.6-2.7)', () => {
    const csv = statementCsv(
      statement([
        line({ description: 'Smith, Jones & "Partners"\nInvoice 7', category: null, direction: 'credit' }),
      ]),
    );
    assert.equal(
      csv.split('\r\n')[1],
      '2026-03-02T09:30:00Z,"Smith, Jones & ""Partners""\nInvoice 7",,credit,4.20,995.80',
    );
    const [header, record] = parse(csv, { relax_column_count: false }) as string[][];
    assert.equal(header?.length, 6);
    assert.deepEqual(record, [
      '2026-03-02T09:30:00Z',
      'Smith, Jones & "Partners"\nInvoice 7',
      '',
      'credit',
      '4.20',
      '995.80',
    ]);
  });

  it('turns cells a spreadsheet would run as formulas into text, but leaves negative balances numbers', () => {
    const dangerous = ['=HYPERLINK("http://x")', '+1+1', '-2+3', '@SUM(A1)', '\tcmd', '\rcmd'];
    const csv = statementCsv(
      statement([
        ...dangerous.map((description) => line({ description })),
        line({ category: '=1+1', balance: '-12.50' }),
      ]),
    );
    const records = (parse(csv) as string[][]).slice(1);
    assert.deepEqual(
      records.slice(0, dangerous.length).map((record) => record[1]),
      dangerous.map((text) => `'${text}`),
    );
    assert.deepEqual(records.at(-1), [
      '2026-03-02T09:30:00Z',
      'Coffee Roasters Ltd ref 1001',
      "'=1+1",
      'debit',
      '4.20',
      '-12.50',
    ]);
  });

  it('refuses amounts that are not decimals, since those columns are not guarded', () => {
    assert.throws(() => statementCsv(statement([line({ amount: '=1+1' })])), assert.AssertionError);
    assert.throws(() => statementCsv(statement([line({ balance: '-@1' })])), assert.AssertionError);
    assert.throws(() => statementCsv(statement([line({ amount: '-4.20' })])), assert.AssertionError);
  });

  it('keeps non-Latin text as UTF-8 without a byte-order mark', () => {
    const csv = statementCsv(
      statement([line({ description: '北京银行 转账 张伟' }), line({ description: 'Иван Петров' })]),
    );
    const records = (parse(csv) as string[][]).slice(1);
    assert.deepEqual(
      records.map((record) => record[1]),
      ['北京银行 转账 张伟', 'Иван Петров'],
    );
    assert.notEqual(Buffer.from(csv, 'utf8')[0], 0xef);
    assert.ok(csv.startsWith('booked_at'));
  });
});

describe('statement PDF', () => {
  it('is an A4 PDF with metadata, identical bytes for an identical statement', async () => {
    const first = await statementPdf(statement(numbered(10)));
    const second = await statementPdf(statement(numbered(10)));
    assert.equal(first.subarray(0, 5).toString('latin1'), '%PDF-');
    assert.ok(first.equals(second), 'deterministic');
    assert.match(first.toString('latin1'), /\/MediaBox \[0 0 595\.28 841\.89\]/);
    const { info } = readPdf(first);
    assert.equal(info.get('Title'), 'Account statement 2026-03 Everyday account');
    assert.equal(info.get('Author'), 'API Bank');
    assert.equal(info.get('CreationDate'), 'D:20260401060000Z');
  });

  it('shows the holder, the IBAN in groups of four and the summary on the first page', async () => {
    const [first] = readPdf(await statementPdf(statement())).pages;
    const text = pageText(first ?? []);
    for (const expected of [
      'API Bank',
      'March 2026',
      'Zoë Müller',
      'Everyday account',
      'DE89 3704 0044 0532 0130 00',
      'EUR',
      '2026-03-01 – 2026-03-31',
      '2026-04-01 06:00 UTC',
      '1,000.00 EUR',
      '250.00 EUR',
      '2,484.50 EUR',
      '-1,234.50 EUR',
      'Coffee Roasters Ltd ref 1001',
      'Page 1 of 1',
    ]) {
      assert.ok(text.includes(expected), `${expected} in ${JSON.stringify(text)}`);
    }
  });

  for (const [lineCount, expectedPages] of [
    [0, 1],
    [10, 1],
    // 32 one-line rows fit under the first page's header and summary, 39 under each later page's header.
    [500, 13],
  ] as const) {
    it(`paginates ${lineCount} lines onto ${expectedPages} page(s), every row once, headers repeated`, async () => {
      const pdf = readPdf(await statementPdf(statement(numbered(lineCount))));
      assert.equal(pdf.pageCount, expectedPages);
      assert.equal(pdf.pages.length, expectedPages);
      const rows: string[] = [];
      pdf.pages.forEach((page, index) => {
        const text = pageText(page);
        for (const title of ['Date', 'Description', 'Debit EUR', 'Credit EUR', 'Balance EUR']) {
          assert.ok(text.includes(title), `table header on page ${index + 1}`);
        }
        assert.ok(text.includes(`Page ${index + 1} of ${expectedPages}`));
        const footer = page.find((drawn) => drawn.text.startsWith('Page '));
        const rowsHere = page.filter((drawn) => drawn.text.startsWith('Payment number '));
        if (lineCount > 0) assert.ok(rowsHere.length > 0, `no empty page ${index + 1}`);
        for (const row of rowsHere) assert.ok(row.y > (footer?.y ?? 0) + 10, 'rows stay above the footer');
        rows.push(...rowsHere.map((drawn) => drawn.text));
      });
      assert.deepEqual(
        rows,
        numbered(lineCount).map((line) => line.description),
      );
      if (lineCount === 0)
        assert.ok(pageText(pdf.pages[0] ?? []).includes('No transactions in this period.'));
    });
  }

  it('draws text outside WinAnsi as ASCII, never as garbage', async () => {
    const pdf = readPdf(
      await statementPdf({
        ...statement([
          line({ description: '北京银行 转账' }),
          line({ description: 'Иван Петров\nвозврат' }),
          line({ description: 'Zoë paid €5 — “thanks”' }),
        ]),
        account: { ...statement().account, holderName: 'Анна Смирнова' },
      }),
    );
    const text = pageText(pdf.pages[0] ?? []);
    for (const expected of [
      'BeiJingYinXing ZhuanZhang',
      'Ivan Petrov vozvrat',
      'Zoë paid €5 — “thanks”',
      'Anna Smirnova',
    ]) {
      assert.ok(text.includes(expected), `${expected} in ${JSON.stringify(text)}`);
    }
    for (const drawn of pdf.pages.flat()) {
      assert.doesNotMatch(drawn.text, /\p{Cc}/u, `only printable WinAnsi in ${JSON.stringify(drawn.text)}`);
    }
  });
});

describe('drawableText', () => {
  it('keeps WinAnsi, transliterates other scripts and flattens control characters', () => {
    assert.equal(drawableText('Müller € “ok” – 5‰'), 'Müller € “ok” – 5‰');
    assert.equal(drawableText('Иван'), 'Ivan');
    assert.equal(drawableText('  line one\r\nline\ttwo\u2028three\u0000 '), 'line one line two three');
    assert.equal(drawableText('x'.repeat(10_000)).length, 300);
  });

  it('groups an IBAN in fours whatever its spacing', () => {
    assert.equal(groupedIban('de89 3704 0044 0532 0130 00'), 'DE89 3704 0044 0532 0130 00');
    assert.equal(groupedIban('NO9386011117947'), 'NO93 8601 1117 947');
  });
});
