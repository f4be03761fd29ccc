import assert from 'node:assert/strict';
import anyAscii from 'any-ascii';
import PDFDocument from 'pdfkit';

export interface StatementLine {
  readonly bookedAt: string; // ISO 8601 timestamp
  readonly description: string; // counterparty and reference; may hold commas, quotes, newlines, any script
  readonly category: string | null;
  readonly direction: 'credit' | 'debit';
  readonly amount: string; // decimal string, always positive, e.g. "1250.00"
  readonly balance: string; // running balance after the line, may be negative: "-12.50"
}

export interface Statement {
  readonly bank: { readonly name: string };
  readonly account: {
    readonly id: string;
    readonly iban: string;
    readonly name: string;
    readonly currency: string;
    readonly holderName: string;
  };
  readonly period: { readonly month: string /* 'YYYY-MM' */; readonly from: string; readonly to: string };
  readonly openingBalance: string;
  readonly closingBalance: string;
  readonly totalCredits: string;
  readonly totalDebits: string;
  readonly lines: readonly StatementLine[];
  readonly generatedAt: string;
}

/**
 * The most lines one statement renders; the caller splits or refuses anything longer. 500 lines take
 * about 0.1 s, so this bounds one render to a couple of seconds of CPU.
 */
export const MAX_STATEMENT_LINES = 10_000;

const ISO_DATE_START = /^[0-9]{4}-[0-9]{2}-[0-9]{2}/;
const POSITIVE_DECIMAL = /^[0-9]+(\.[0-9]+)?$/;
const SIGNED_DECIMAL = /^-?[0-9]+(\.[0-9]+)?$/;

function assertStatement(statement: Statement): void {
  assert.ok(
    statement.lines.length <= MAX_STATEMENT_LINES,
    'statement has more lines than MAX_STATEMENT_LINES',
  );
  assert.match(statement.period.month, /^[0-9]{4}-(0[1-9]|1[0-2])$/);
  for (const bound of [statement.period.from, statement.period.to]) assert.match(bound, ISO_DATE_START);
  assert.ok(!Number.isNaN(Date.parse(statement.generatedAt)), 'generatedAt is not a timestamp');
  for (const total of [statement.totalCredits, statement.totalDebits]) assert.match(total, POSITIVE_DECIMAL);
  for (const balance of [statement.openingBalance, statement.closingBalance]) {
    assert.match(balance, SIGNED_DECIMAL);
  }
  for (const line of statement.lines) {
    assert.match(line.bookedAt, ISO_DATE_START);
    assert.ok(line.direction === 'credit' || line.direction === 'debit', 'direction is credit or debit');
    // The CSV leaves these two columns unguarded against formula injection, so they must be numbers.
    assert.match(line.amount, POSITIVE_DECIMAL);
    assert.match(line.balance, SIGNED_DECIMAL);
  }
}

// ---------------------------------------------------------------------------------------------- CSV

const CSV_HEADER = ['booked_at', 'description', 'category', 'direction', 'amount', 'balance'] as const;

// A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV Injection"); a leading
// apostrophe makes it text. Numbers are exempt: "-12.50" is a balance, and assertStatement proved it one.
const FORMULA_START = /^[=+\-@\t\r]/;

function guardFormula(text: string): string {
  return FORMULA_START.test(text) ? `'${text}` : text;
}

// RFC 4180 §2.6-2.7: a field holding a comma, quote, CR or LF is quoted, inner quotes doubled.
function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * The statement as RFC 4180 CSV: CRLF record ends, a header row and one row per line, nothing else, so
 * a machine can read it. UTF-8 without a byte-order mark; text is kept as it is, whatever its script.
 */
export function statementCsv(statement: Statement): string {
  assertStatement(statement);
  const records = [CSV_HEADER.join(',')];
  for (const line of statement.lines) {
    const text = [line.bookedAt, line.description, line.category ?? '', line.direction].map(guardFormula);
    records.push([...text, line.amount, line.balance].map(csvField).join(','));
  }
  return `${records.join('\r\n')}\r\n`;
}

// ---------------------------------------------------------------------------------------------- PDF

// The standard 14 fonts are not embedded and speak only WinAnsi (Latin-1 and these extras, PDF 32000-1
// Annex D.2). pdfkit writes any other code unit as raw hex, which draws garbage. No Unicode font ships
// with the server (a CJK one is ~10 MB, and system fonts may be missing), so such text is transliterated.
const WIN_ANSI_EXTRAS = 'ŒœŠšŸŽžƒˆ˜–—‘’‚“”„†‡•…‰‹›€™';
const NOT_WIN_ANSI = new RegExp(`[^\\u0020-\\u007e\\u00a0-\\u00ff${WIN_ANSI_EXTRAS}]+`, 'gu');

// Descriptions are bounded before measuring: the cell shows two lines at most.
const DRAWN_TEXT_MAX_CHARS = 300;

/** Text the standard fonts can draw: control characters become spaces, other scripts become ASCII. */
export function drawableText(text: string): string {
  return text
    .slice(0, DRAWN_TEXT_MAX_CHARS)
    .replace(/[\p{Cc}\p{Zl}\p{Zp}]/gu, ' ')
    .replace(NOT_WIN_ANSI, (run) => anyAscii(run))
    .replace(/\s+/g, ' ')
    .trim();
}

/** "-1234567.50" as "-1,234,567.50": digits grouped as text, never through a float. */
function groupedAmount(decimal: string): string {
  const [whole = '', fraction] = decimal.split('.');
  const grouped = whole.replace(/\B(?=([0-9]{3})+$)/g, ',');
  return fraction === undefined ? grouped : `${grouped}.${fraction}`;
}

/** "DE89370400440532013000" as "DE89 3704 0044 0532 0130 00", the paper format of ISO 13616. */
export function groupedIban(iban: string): string {
  return iban
    .replace(/\s+/g, '')
    .toUpperCase()
    .replace(/(.{4})(?=.)/g, '$1 ');
}

const MONTH_NAMES = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

function monthLabel(month: string): string {
  const [year, number] = month.split('-');
  return `${MONTH_NAMES[Number(number) - 1]} ${year}`;
}

// Dates as written (a timestamp's own day), so the server's time zone never moves one to another day.
function periodLabel(period: Statement['period']): string {
  return `${period.from.slice(0, 10)} – ${period.to.slice(0, 10)}`;
}

function generatedLabel(generatedAt: string): string {
  return `${new Date(generatedAt).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

// A4 in points; pdfkit measures y down from the top edge.
const PAGE_WIDTH = 595.28;
const PAGE_HEIGHT = 841.89;
const PAGE_MARGIN = 40;
const FOOTER_Y = PAGE_HEIGHT - 32;
const CONTENT_BOTTOM = FOOTER_Y - 14;
const CONTENT_WIDTH = PAGE_WIDTH - 2 * PAGE_MARGIN;
const CELL_PADDING = 4;
const TABLE_FONT_SIZE = 8.5;
const DESCRIPTION_MAX_LINES = 2;

const REGULAR = 'Helvetica';
const BOLD = 'Helvetica-Bold';
const INK = '#1a1a1a';
const MUTED = '#6b6b6b';
const RULE = '#c8c8c8';
const HEADER_FILL = '#e9edf1';
const STRIPE_FILL = '#f6f7f9';

interface Column {
  readonly title: string;
  readonly width: number;
  readonly align: 'left' | 'right';
}

function tableColumns(currency: string): readonly Column[] {
  const date = 58;
  const money = 80;
  const balance = 90;
  return [
    { title: 'Date', width: date, align: 'left' },
    { title: 'Description', width: CONTENT_WIDTH - date - 2 * money - balance, align: 'left' },
    { title: `Debit ${currency}`, width: money, align: 'right' },
    { title: `Credit ${currency}`, width: money, align: 'right' },
    { title: `Balance ${currency}`, width: balance, align: 'right' },
  ];
}

type Doc = PDFKit.PDFDocument;

interface Cell {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly size: number;
  readonly align?: 'left' | 'right';
}

/** One line of text in the current font that never wraps nor starts a page, shrunk to fit `width`. */
function drawCell(doc: Doc, text: string, { x, y, width, size, align = 'left' }: Cell): void {
  doc.fontSize(size);
  const natural = doc.widthOfString(text);
  if (natural > width) doc.fontSize((size * width) / natural);
  doc.text(text, x, y, { width, align, lineBreak: false });
}

function drawRule(doc: Doc, y: number): void {
  doc
    .moveTo(PAGE_MARGIN, y)
    .lineTo(PAGE_MARGIN + CONTENT_WIDTH, y)
    .lineWidth(0.75)
    .strokeColor(RULE)
    .stroke();
}

function drawFirstPageHeader(doc: Doc, statement: Statement): number {
  const top = PAGE_MARGIN;
  doc.font(BOLD).fillColor(INK);
  drawCell(doc, drawableText(statement.bank.name), {
    x: PAGE_MARGIN,
    y: top,
    width: CONTENT_WIDTH * 0.6,
    size: 16,
  });
  drawCell(doc, 'Account statement', {
    x: PAGE_MARGIN,
    y: top + 2,
    width: CONTENT_WIDTH,
    size: 12,
    align: 'right',
  });
  doc.font(REGULAR).fillColor(MUTED);
  const month = monthLabel(statement.period.month);
  drawCell(doc, month, { x: PAGE_MARGIN, y: top + 18, width: CONTENT_WIDTH, size: 10, align: 'right' });
  drawRule(doc, top + 36);

  const half = CONTENT_WIDTH / 2;
  const labelWidth = 78;
  const rowHeight = 15;
  const details: readonly (readonly (readonly [string, string])[])[] = [
    [
      ['Account holder', statement.account.holderName],
      ['Account name', statement.account.name],
      ['IBAN', groupedIban(statement.account.iban)],
    ],
    [
      ['Currency', statement.account.currency],
      ['Period', periodLabel(statement.period)],
      ['Generated', generatedLabel(statement.generatedAt)],
    ],
  ];
  const detailsTop = top + 46;
  details.forEach((column, index) => {
    const x = PAGE_MARGIN + index * half;
    column.forEach(([label, value], row) => {
      const y = detailsTop + row * rowHeight;
      doc.font(REGULAR).fillColor(MUTED);
      drawCell(doc, label, { x, y, width: labelWidth, size: 9 });
      doc.font(BOLD).fillColor(INK);
      drawCell(doc, drawableText(value), { x: x + labelWidth, y, width: half - labelWidth - 8, size: 9 });
    });
  });

  const boxTop = detailsTop + 3 * rowHeight + 10;
  const boxHeight = 40;
  const cellWidth = CONTENT_WIDTH / 4;
  const inset = 8;
  doc.rect(PAGE_MARGIN, boxTop, CONTENT_WIDTH, boxHeight).lineWidth(0.75).fillAndStroke(STRIPE_FILL, RULE);
  const summary = [
    ['Opening balance', statement.openingBalance],
    ['Total credits', statement.totalCredits],
    ['Total debits', statement.totalDebits],
    ['Closing balance', statement.closingBalance],
  ] as const;
  summary.forEach(([label, amount], index) => {
    const x = PAGE_MARGIN + index * cellWidth;
    if (index > 0) {
      doc
        .moveTo(x, boxTop)
        .lineTo(x, boxTop + boxHeight)
        .strokeColor(RULE)
        .stroke();
    }
    const width = cellWidth - 2 * inset;
    doc.font(REGULAR).fillColor(MUTED);
    drawCell(doc, label, { x: x + inset, y: boxTop + 7, width, size: 8 });
    doc.font(BOLD).fillColor(INK);
    const text = `${groupedAmount(amount)} ${statement.account.currency}`;
    drawCell(doc, text, { x: x + inset, y: boxTop + 21, width, size: 11, align: 'right' });
  });
  return boxTop + boxHeight + 16;
}

function drawContinuationHeader(doc: Doc, statement: Statement): number {
  const top = PAGE_MARGIN;
  doc.font(BOLD).fillColor(INK);
  drawCell(doc, drawableText(statement.bank.name), {
    x: PAGE_MARGIN,
    y: top,
    width: CONTENT_WIDTH * 0.5,
    size: 10,
  });
  doc.font(REGULAR).fillColor(MUTED);
  const context = `Account statement ${monthLabel(statement.period.month)} · ${groupedIban(statement.account.iban)}`;
  drawCell(doc, context, { x: PAGE_MARGIN, y: top + 1, width: CONTENT_WIDTH, size: 9, align: 'right' });
  drawRule(doc, top + 18);
  return top + 28;
}

function drawTableHeader(doc: Doc, columns: readonly Column[], y: number): number {
  const height = 18;
  doc.rect(PAGE_MARGIN, y, CONTENT_WIDTH, height).fill(HEADER_FILL);
  doc.font(BOLD).fillColor(INK);
  let x = PAGE_MARGIN;
  for (const column of columns) {
    const width = column.width - 2 * CELL_PADDING;
    drawCell(doc, column.title, {
      x: x + CELL_PADDING,
      y: y + 5,
      width,
      size: TABLE_FONT_SIZE,
      align: column.align,
    });
    x += column.width;
  }
  return y + height;
}

interface Row {
  readonly date: string;
  readonly description: string;
  readonly debit: string;
  readonly credit: string;
  readonly balance: string;
}

function tableRow(line: StatementLine): Row {
  const amount = groupedAmount(line.amount);
  return {
    date: line.bookedAt.slice(0, 10),
    description: drawableText(line.description),
    debit: line.direction === 'debit' ? amount : '',
    credit: line.direction === 'credit' ? amount : '',
    balance: groupedAmount(line.balance),
  };
}

function rowHeight(doc: Doc, row: Row, descriptionWidth: number): number {
  doc.font(REGULAR).fontSize(TABLE_FONT_SIZE);
  const lineHeight = doc.currentLineHeight(true);
  const text = doc.heightOfString(row.description || ' ', { width: descriptionWidth });
  return Math.min(text, DESCRIPTION_MAX_LINES * lineHeight) + 2 * CELL_PADDING;
}

function drawRow(doc: Doc, columns: readonly Column[], row: Row, y: number, height: number): void {
  const cells = [row.date, row.description, row.debit, row.credit, row.balance];
  doc.font(REGULAR).fillColor(INK);
  let x = PAGE_MARGIN;
  columns.forEach((column, index) => {
    const text = cells[index] ?? '';
    const cell = { x: x + CELL_PADDING, y: y + CELL_PADDING, width: column.width - 2 * CELL_PADDING };
    if (index === 1) {
      // Wraps within the row; what does not fit ends in an ellipsis rather than a third line.
      doc.fontSize(TABLE_FONT_SIZE);
      doc.text(text, cell.x, cell.y, {
        width: cell.width,
        height: height - 2 * CELL_PADDING,
        ellipsis: true,
      });
    } else if (text !== '') {
      drawCell(doc, text, { ...cell, size: TABLE_FONT_SIZE, align: column.align });
    }
    x += column.width;
  });
}

function drawFooters(doc: Doc, statement: Statement): void {
  const range = doc.bufferedPageRange();
  for (let index = 0; index < range.count; index++) {
    doc.switchToPage(range.start + index);
    doc.font(REGULAR).fillColor(MUTED);
    const source = `${drawableText(statement.bank.name)} · account ${drawableText(statement.account.id)}`;
    drawCell(doc, source, { x: PAGE_MARGIN, y: FOOTER_Y, width: CONTENT_WIDTH * 0.7, size: 8 });
    const page = `Page ${index + 1} of ${range.count}`;
    drawCell(doc, page, { x: PAGE_MARGIN, y: FOOTER_Y, width: CONTENT_WIDTH, size: 8, align: 'right' });
  }
}

/**
 * The statement as an A4 PDF: header, summary box, and a table of lines that repeats its header on
 * every page, each page numbered "Page n of m". The same statement gives the same bytes: the creation
 * date is `generatedAt`, and pdfkit derives the file ID from the metadata.
 */
export function statementPdf(statement: Statement): Promise<Buffer> {
  assertStatement(statement);
  const doc = new PDFDocument({
    size: [PAGE_WIDTH, PAGE_HEIGHT],
    // Pagination is ours (CONTENT_BOTTOM); the small bottom margin only lets the footer sit below it
    // without pdfkit starting a page of its own.
    margins: { top: PAGE_MARGIN, left: PAGE_MARGIN, right: PAGE_MARGIN, bottom: 16 },
    bufferPages: true,
    lang: 'en',
    displayTitle: true,
    info: {
      Title: `Account statement ${statement.period.month} ${statement.account.name}`,
      Author: statement.bank.name,
      Subject: `${groupedIban(statement.account.iban)} ${periodLabel(statement.period)}`,
      Creator: statement.bank.name,
      CreationDate: new Date(statement.generatedAt),
    },
  });
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('data', (chunk: Buffer) => chunks.push(chunk));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });

  const columns = tableColumns(statement.account.currency);
  const descriptionWidth = (columns[1]?.width ?? 0) - 2 * CELL_PADDING;
  let y = drawTableHeader(doc, columns, drawFirstPageHeader(doc, statement));
  if (statement.lines.length === 0) {
    doc.font(REGULAR).fillColor(MUTED);
    const cell = {
      x: PAGE_MARGIN + CELL_PADDING,
      y: y + CELL_PADDING,
      width: CONTENT_WIDTH,
      size: TABLE_FONT_SIZE,
    };
    drawCell(doc, 'No transactions in this period.', cell);
    y += TABLE_FONT_SIZE + 2 * CELL_PADDING;
  }
  statement.lines.forEach((line, index) => {
    const row = tableRow(line);
    const height = rowHeight(doc, row, descriptionWidth);
    if (y + height > CONTENT_BOTTOM) {
      doc.addPage();
      y = drawTableHeader(doc, columns, drawContinuationHeader(doc, statement));
    }
    if (index % 2 === 1) doc.rect(PAGE_MARGIN, y, CONTENT_WIDTH, height).fill(STRIPE_FILL);
    drawRow(doc, columns, row, y, height);
    y += height;
  });
  drawRule(doc, y);

  drawFooters(doc, statement);
  doc.end();
  return done;
}
