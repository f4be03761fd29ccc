// Sanctions and politically-exposed-person (PEP) screening for account opening.
//
// Lists are loaded from the files their publishers distribute (OFAC sdn.csv + alt.csv, the EU
// consolidated financial sanctions XML), reduced to natural persons, and matched by name with a
// token-wise fuzzy comparison that survives transliteration, word order, middle names present on one
// side only and small spelling differences. A date of birth that agrees raises a hit's score; one that
// contradicts lowers it. See data/screening/README.md for the formats and how to point the bank at
// the real lists.

import { open } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import anyAscii from 'any-ascii';
import { parse as parseCsv } from 'csv-parse/sync';
import { XMLParser, XMLValidator } from 'fast-xml-parser';

export type ListKind = 'sanctions' | 'pep';

export interface ListedPerson {
  readonly listSource: string;
  readonly kind: ListKind;
  readonly entryId: string;
  /** The primary name first, then aliases, as the list spells them. */
  readonly names: readonly string[];
  /** 'YYYY-MM-DD', or 'YYYY' where the list gives only a year. */
  readonly birthDates: readonly string[];
  /** Sanctions programme(s), comma-separated; 'PEP' on a PEP list. */
  readonly program: string;
}

export interface ScreeningList {
  readonly source: string;
  readonly kind: ListKind;
  readonly people: readonly ListedPerson[];
}

export interface ScreeningHit {
  readonly listSource: string;
  readonly kind: ListKind;
  readonly entryId: string;
  /** The listed name (primary or alias) that matched best. */
  readonly listedName: string;
  /** 0..1, three decimals; the date-of-birth adjustment included. */
  readonly score: number;
  /** undefined: the subject or the listed person has no date of birth to compare. */
  readonly dateOfBirthMatches: boolean | undefined;
}

export interface LoadListOptions {
  /** Default 'sanctions'. A PEP list is shipped in the OFAC CSV format and loaded with kind 'pep'. */
  readonly kind?: ListKind;
  /** Default: the file name without its extension. */
  readonly source?: string;
  /** OFAC alt.csv with the aliases of the entries in the sdn.csv at `path`. */
  readonly altPath?: string;
}

// The real lists weigh megabytes to tens of megabytes and hold some thousands to tens of thousands of
// entries. The limits leave room for growth and stop a wrong (or hostile) file from exhausting memory.
export const LIST_BYTES_MAX = 64 * 1024 * 1024;
export const LIST_ENTRIES_MAX = 100_000;
/** EU entries carry a name in many of the EU languages, and some OFAC entries have dozens of aliases. */
const NAMES_PER_PERSON_MAX = 200;
const NAME_LENGTH_MAX = 500;
const BIRTH_DATES_PER_PERSON_MAX = 50;
/** An OFAC "DOB 1958 to 1962" range becomes one entry per year, up to this many. */
const BIRTH_YEAR_RANGE_MAX = 20;
const CSV_RECORD_BYTES_MAX = 1024 * 1024;
const LIST_SETTINGS_MAX = 32;

/** A list file that cannot be used; `location` names the line or entry where that is known. */
export class ScreeningListError extends Error {
  readonly file: string;
  readonly location: string | undefined;
  constructor(file: string, location: string | undefined, problem: string, options?: ErrorOptions) {
    super(`${file}${location === undefined ? '' : ` (${location})`}: ${problem}`, options);
    this.name = 'ScreeningListError';
    this.file = file;
    this.location = location;
  }
}

// ---------------------------------------------------------------------------------------------------
// Loading

export async function loadScreeningList(path: string, options: LoadListOptions = {}): Promise<ScreeningList> {
  const kind = options.kind ?? 'sanctions';
  const source = options.source ?? basename(path, extname(path));
  const text = await readListFile(path);
  let people: ListedPerson[];
  if (text.trimStart().startsWith('<')) {
    if (options.altPath !== undefined) {
      throw new ScreeningListError(path, undefined, 'an alt file belongs with an OFAC CSV, not an XML list');
    }
    people = parseEuConsolidatedXml(text, path, kind, source);
  } else {
    const altText = options.altPath === undefined ? undefined : await readListFile(options.altPath);
    people = parseOfacCsv(text, path, kind, source, altText, options.altPath);
  }
  return { source, kind, people };
}

async function readListFile(path: string): Promise<string> {
  let text: string;
  try {
    const file = await open(path, 'r');
    try {
      const { size } = await file.stat();
      if (size > LIST_BYTES_MAX) {
        throw new ScreeningListError(
          path,
          undefined,
          `is ${size} bytes, more than the ${LIST_BYTES_MAX} allowed`,
        );
      }
      text = await file.readFile('utf8');
    } finally {
      await file.close();
    }
  } catch (error) {
    if (error instanceof ScreeningListError) throw error;
    throw new ScreeningListError(path, undefined, 'cannot be read', { cause: error });
  }
  // Without a byte-order mark, and without the end-of-file character (SUB) that ends OFAC's CSV files.
  text = text.replace(/^\uFEFF/, '').trimEnd();
  return text.endsWith(END_OF_FILE) ? text.slice(0, -1) : text;
}

const END_OF_FILE = String.fromCharCode(0x1a);

const OFAC_SDN_COLUMNS = 12;
const OFAC_ALT_COLUMNS = 5;
const SDN = { entNum: 0, name: 1, type: 2, program: 3, remarks: 11 } as const;
const ALT = { entNum: 0, name: 3 } as const;

/** Rows of an OFAC CSV file, each with the line it ends on; "-0-" (OFAC's empty) becomes ''. */
function readOfacRows(text: string, file: string, columns: number): { line: number; fields: string[] }[] {
  let records: { record: string[]; info: { lines: number } }[];
  try {
    // With `info`, csv-parse returns { record, info } objects; its typings only know plain rows.
    records = parseCsv(text, {
      info: true,
      relax_column_count: true,
      skip_empty_lines: true,
      max_record_size: CSV_RECORD_BYTES_MAX,
      to: LIST_ENTRIES_MAX + 1,
    }) as unknown as typeof records;
  } catch (error) {
    throw new ScreeningListError(file, undefined, `not valid CSV: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (records.length > LIST_ENTRIES_MAX) {
    throw new ScreeningListError(file, undefined, `has more than ${LIST_ENTRIES_MAX} rows`);
  }
  return records.map(({ record, info }) => {
    if (record.length !== columns) {
      throw new ScreeningListError(
        file,
        `line ${info.lines}`,
        `expected ${columns} columns of the OFAC format, found ${record.length}`,
      );
    }
    return { line: info.lines, fields: record.map((field) => ofacValue(field)) };
  });
}

function ofacValue(field: string): string {
  const trimmed = field.trim();
  return trimmed === '-0-' ? '' : trimmed;
}

function parseOfacCsv(
  text: string,
  file: string,
  kind: ListKind,
  source: string,
  altText: string | undefined,
  altFile: string | undefined,
): ListedPerson[] {
  const byEntNum = new Map<string, { names: string[]; birthDates: string[]; program: string }>();
  const seen = new Set<string>();
  for (const { line, fields } of readOfacRows(text, file, OFAC_SDN_COLUMNS)) {
    const where = `line ${line}`;
    const entNum = fields[SDN.entNum] ?? '';
    const name = fields[SDN.name] ?? '';
    if (!/^\d{1,12}$/.test(entNum)) {
      throw new ScreeningListError(file, where, `ent_num "${entNum}" is not a number`);
    }
    if (seen.has(entNum)) throw new ScreeningListError(file, where, `ent_num ${entNum} appears twice`);
    seen.add(entNum);
    // Entities, vessels and aircraft have no SDN_Type "individual": account opening screens people.
    if ((fields[SDN.type] ?? '').toLowerCase() !== 'individual') continue;
    checkName(name, file, where);
    byEntNum.set(entNum, {
      names: [name],
      birthDates: ofacBirthDates(fields[SDN.remarks] ?? '', file, where),
      // Several programmes read "SDGT] [IRAQ2" in sdn.csv.
      program: (fields[SDN.program] ?? '')
        .split(/\]\s*\[/)
        .map((p) => p.replace(/[[\]]/g, '').trim())
        .filter((p) => p !== '')
        .join(', '),
    });
  }
  if (altText !== undefined && altFile !== undefined) {
    for (const { line, fields } of readOfacRows(altText, altFile, OFAC_ALT_COLUMNS)) {
      const where = `line ${line}`;
      const entNum = fields[ALT.entNum] ?? '';
      const name = fields[ALT.name] ?? '';
      if (!/^\d{1,12}$/.test(entNum)) {
        throw new ScreeningListError(altFile, where, `ent_num "${entNum}" is not a number`);
      }
      checkName(name, altFile, where);
      const person = byEntNum.get(entNum);
      // Aliases of entities (skipped above) and of entries absent from this sdn.csv do not apply.
      if (person === undefined || person.names.includes(name)) continue;
      if (person.names.length === NAMES_PER_PERSON_MAX) {
        throw new ScreeningListError(
          altFile,
          where,
          `ent_num ${entNum} has more than ${NAMES_PER_PERSON_MAX} names`,
        );
      }
      person.names.push(name);
    }
  }
  return [...byEntNum].map(([entryId, person]) => ({ listSource: source, kind, entryId, ...person }));
}

function checkName(name: string, file: string, where: string): void {
  if (name === '') throw new ScreeningListError(file, where, 'the name is empty');
  if (name.length > NAME_LENGTH_MAX) {
    throw new ScreeningListError(file, where, `the name is longer than ${NAME_LENGTH_MAX} characters`);
  }
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/**
 * Dates of birth from the Remarks of an sdn.csv row: "DOB 01 Jan 1960; alt. DOB 1961; DOB circa 1955;
 * DOB 1958 to 1962; DOB Feb 1970". A month without a day is kept as its year, the precision
 * `ListedPerson.birthDates` has. Remarks are free text: a DOB phrase in another shape is skipped.
 */
export function ofacBirthDates(remarks: string, file = 'remarks', where?: string): string[] {
  const dates: string[] = [];
  const add = (date: string): void => {
    if (dates.includes(date)) return;
    if (dates.length === BIRTH_DATES_PER_PERSON_MAX) {
      throw new ScreeningListError(file, where, `more than ${BIRTH_DATES_PER_PERSON_MAX} dates of birth`);
    }
    dates.push(date);
  };
  for (const match of remarks.matchAll(/\bDOB\s+([^;]*)/g)) {
    const phrase = (match[1] ?? '').trim().replace(/\.$/, '');
    const full = /^(\d{1,2}) ([A-Za-z]{3}) (\d{4})$/.exec(phrase);
    if (full !== null) {
      const month = MONTHS.indexOf((full[2] ?? '').toLowerCase()) + 1;
      const day = Number(full[1]);
      const date = `${full[3]}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
      if (month === 0 || !isCalendarDate(date)) {
        throw new ScreeningListError(file, where, `"DOB ${phrase}" is not a calendar date`);
      }
      add(date);
      continue;
    }
    const range = /^(\d{4}) to (\d{4})$/.exec(phrase);
    if (range !== null) {
      const from = Number(range[1]);
      const to = Number(range[2]);
      if (to < from || to - from >= BIRTH_YEAR_RANGE_MAX) {
        throw new ScreeningListError(file, where, `"DOB ${phrase}" is not a usable range of years`);
      }
      for (let year = from; year <= to; year++) add(String(year));
      continue;
    }
    const year = /^(?:circa |[A-Za-z]{3} )?(\d{4})$/.exec(phrase);
    if (year !== null) add(year[1] ?? '');
  }
  return dates;
}

function isCalendarDate(date: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) return false;
  const parsed = new Date(`${date}T00:00:00Z`);
  return !Number.isNaN(parsed.getTime()) && parsed.toISOString().startsWith(date);
}

// The EU list's elements that may repeat; the parser gives them as arrays even when there is one.
const EU_REPEATED = new Set(['sanctionEntity', 'nameAlias', 'birthdate', 'regulation']);

type XmlNode = Record<string, unknown>;

function parseEuConsolidatedXml(text: string, file: string, kind: ListKind, source: string): ListedPerson[] {
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    throw new ScreeningListError(
      file,
      `line ${valid.err.line}, column ${valid.err.col}`,
      `not valid XML: ${valid.err.msg}`,
    );
  }
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '@_',
    removeNSPrefix: true,
    parseTagValue: false,
    parseAttributeValue: false,
    htmlEntities: false,
    isArray: (name) => EU_REPEATED.has(name),
  });
  const document = parser.parse(text) as XmlNode;
  if (!('export' in document)) {
    throw new ScreeningListError(
      file,
      undefined,
      'not an EU consolidated list: the root element is not <export>',
    );
  }
  // An <export> without entities parses as the empty string.
  const root = document.export;
  const entities = typeof root === 'object' && root !== null ? asNodes((root as XmlNode).sanctionEntity) : [];
  if (entities.length > LIST_ENTRIES_MAX) {
    throw new ScreeningListError(file, undefined, `has more than ${LIST_ENTRIES_MAX} entries`);
  }
  const people: ListedPerson[] = [];
  const seen = new Set<string>();
  entities.forEach((entity, index) => {
    const entryId = attribute(entity, 'logicalId');
    const where = `sanctionEntity #${index + 1}${entryId === '' ? '' : ` logicalId=${entryId}`}`;
    if (!/^\d{1,12}$/.test(entryId)) {
      throw new ScreeningListError(file, where, 'logicalId is missing or not a number');
    }
    if (seen.has(entryId)) throw new ScreeningListError(file, where, `logicalId ${entryId} appears twice`);
    seen.add(entryId);
    const subjectType = entity.subjectType as XmlNode | undefined;
    if (subjectType === undefined) throw new ScreeningListError(file, where, 'subjectType is missing');
    if (attribute(subjectType, 'code') !== 'person') return;
    const names = euNames(entity, file, where);
    if (names.length === 0) throw new ScreeningListError(file, where, 'a person without a nameAlias');
    const birthDates = euBirthDates(entity, file, where);
    const programmes = asNodes(entity.regulation).map((regulation) => attribute(regulation, 'programme'));
    const program = [...new Set(programmes.filter((p) => p !== ''))].join(', ');
    people.push({ listSource: source, kind, entryId, names, birthDates, program });
  });
  return people;
}

function euNames(entity: XmlNode, file: string, where: string): string[] {
  const names: string[] = [];
  for (const alias of asNodes(entity.nameAlias)) {
    const whole = attribute(alias, 'wholeName');
    const name =
      whole !== ''
        ? whole
        : ['firstName', 'middleName', 'lastName']
            .map((part) => attribute(alias, part))
            .filter((part) => part !== '')
            .join(' ');
    if (name === '' || names.includes(name)) continue;
    checkName(name, file, where);
    if (names.length === NAMES_PER_PERSON_MAX) {
      throw new ScreeningListError(file, where, `more than ${NAMES_PER_PERSON_MAX} names`);
    }
    names.push(name);
  }
  return names;
}

function euBirthDates(entity: XmlNode, file: string, where: string): string[] {
  const dates: string[] = [];
  for (const birth of asNodes(entity.birthdate)) {
    const full = attribute(birth, 'birthdate');
    const year = attribute(birth, 'year');
    let date: string;
    if (full !== '') {
      if (!isCalendarDate(full)) {
        throw new ScreeningListError(file, where, `birthdate "${full}" is not a date`);
      }
      date = full;
    } else if (year !== '') {
      if (!/^\d{4}$/.test(year)) {
        throw new ScreeningListError(file, where, `birth year "${year}" is not a year`);
      }
      date = year;
    } else {
      continue; // A birthdate element may carry only the place of birth.
    }
    if (dates.includes(date)) continue;
    if (dates.length === BIRTH_DATES_PER_PERSON_MAX) {
      throw new ScreeningListError(file, where, `more than ${BIRTH_DATES_PER_PERSON_MAX} dates of birth`);
    }
    dates.push(date);
  }
  return dates;
}

function asNodes(value: unknown): XmlNode[] {
  return Array.isArray(value) ? value.filter((v): v is XmlNode => typeof v === 'object' && v !== null) : [];
}

function attribute(node: XmlNode, name: string): string {
  const value = node[`@_${name}`];
  return typeof value === 'string' ? value.trim() : '';
}

// ---------------------------------------------------------------------------------------------------
// Which lists to load: APIBANK_SCREENING_LISTS

export interface ListSetting {
  readonly kind: ListKind;
  readonly path: string;
  /** OFAC alt.csv that goes with the sdn.csv at `path`. */
  readonly altPath?: string;
}

const SYNTHETIC_LISTS_DIR = fileURLToPath(new URL('../../data/screening/', import.meta.url));

/** The synthetic lists shipped in data/screening: what the bank screens against when nothing is set. */
export const DEFAULT_SCREENING_LISTS: readonly ListSetting[] = [
  {
    kind: 'sanctions',
    path: `${SYNTHETIC_LISTS_DIR}ofac-sdn.csv`,
    altPath: `${SYNTHETIC_LISTS_DIR}ofac-alt.csv`,
  },
  { kind: 'sanctions', path: `${SYNTHETIC_LISTS_DIR}eu-consolidated.xml` },
  { kind: 'pep', path: `${SYNTHETIC_LISTS_DIR}pep.csv` },
];

/**
 * Parses `APIBANK_SCREENING_LISTS`: comma-separated `kind:path` entries, kind `sanctions` or `pep`;
 * `kind:sdn.csv+alt.csv` loads an OFAC alt file with its sdn.csv. Throws on anything else, so a typo
 * stops the bank at start-up instead of leaving a list unscreened.
 */
export function parseListsSetting(text: string): ListSetting[] {
  const entries = text.split(',').map((entry) => entry.trim());
  if (entries.length > LIST_SETTINGS_MAX) {
    throw new Error(`APIBANK_SCREENING_LISTS has more than ${LIST_SETTINGS_MAX} entries`);
  }
  return entries.map((entry) => {
    const colon = entry.indexOf(':');
    const kind = entry.slice(0, colon);
    const [path = '', altPath, ...rest] = entry.slice(colon + 1).split('+');
    if (colon === -1 || (kind !== 'sanctions' && kind !== 'pep')) {
      throw new Error(`APIBANK_SCREENING_LISTS entry "${entry}" must start with "sanctions:" or "pep:"`);
    }
    if (path.trim() === '' || altPath?.trim() === '' || rest.length > 0) {
      throw new Error(`APIBANK_SCREENING_LISTS entry "${entry}" must be kind:path or kind:path+altPath`);
    }
    return altPath === undefined
      ? { kind, path: path.trim() }
      : { kind, path: path.trim(), altPath: altPath.trim() };
  });
}

export async function loadScreeningLists(settings: readonly ListSetting[]): Promise<ScreeningList[]> {
  return Promise.all(
    settings.map((setting) =>
      loadScreeningList(setting.path, {
        kind: setting.kind,
        ...(setting.altPath === undefined ? {} : { altPath: setting.altPath }),
      }),
    ),
  );
}

// ---------------------------------------------------------------------------------------------------
// Name normalisation

/** Tokens longer than this are cut: no name part is, and the comparison keeps flags in 31-bit masks. */
const TOKEN_LENGTH_MAX = 24;
/** Tokens of a name beyond this are ignored (bit masks again; real names have far fewer). */
const TOKENS_PER_NAME_MAX = 12;
/** Adjacent tokens joined so "Abdul Rahman" meets "Abdulrahman" and "Xi Jin Ping" meets "Xi Jinping". */
const MERGED_TOKENS_MAX = 3;

// Han and Hangul characters are one syllable each; any-ascii runs them together ("XiJinPing"), so
// each becomes a token of its own and the merging above rejoins them as needed.
const SYLLABIC_CHARACTER = /([\p{Script=Han}\p{Script=Hangul}])/u;
const ONE_SYLLABIC_CHARACTER = /^[\p{Script=Han}\p{Script=Hangul}]$/u;

// Spellings that differ between transliteration systems (Müller/Mueller, Aleksei/Alexei,
// Sergei/Sergey, Khabib/Habib, Youssef/Yusuf, Qaddafi/Kaddafi) fold to one form on both sides.
const FOLDINGS: Readonly<Record<string, string>> = {
  sch: 'sh',
  ph: 'f',
  kh: 'h',
  gh: 'g',
  dh: 'd',
  th: 't',
  ck: 'k',
  ue: 'u',
  oe: 'o',
  ae: 'a',
  ou: 'u',
  oo: 'u',
  ee: 'i',
  q: 'k',
  x: 'ks',
  w: 'v',
  y: 'i',
};
const FOLDING_PATTERN = /sch|ph|kh|gh|dh|th|ck|ue|oe|ae|ou|oo|ee|[qxwy]/g;

interface NameTokens {
  readonly tokens: string[];
  /** Bit mask of the tokens written as one Han or Hangul character. */
  readonly syllables: number;
}

/** The comparable tokens of a name: transliterated to ASCII, lower case, letters only, folded. */
export function nameTokens(name: string): string[] {
  return tokenize(name).tokens;
}

function tokenize(name: string): NameTokens {
  const tokens: string[] = [];
  let syllables = 0;
  // The capturing split keeps each syllabic character as a piece of its own.
  for (const piece of name.split(SYLLABIC_CHARACTER)) {
    const syllabic = ONE_SYLLABIC_CHARACTER.test(piece);
    // Apostrophes vanish: O'Brien, Ma'mun, the ayn of "`Abd".
    const ascii = anyAscii(piece).toLowerCase().replace(/['`]/g, '');
    for (const word of ascii.split(/[^a-z]+/)) {
      if (word === '') continue;
      if (tokens.length === TOKENS_PER_NAME_MAX) return { tokens, syllables };
      if (syllabic) syllables |= 1 << tokens.length;
      tokens.push(
        word
          .replace(FOLDING_PATTERN, (part) => FOLDINGS[part] ?? part)
          .replace(/(.)\1+/g, '$1')
          .slice(0, TOKEN_LENGTH_MAX),
      );
    }
  }
  return { tokens, syllables };
}

// Articles and filiations that one spelling of a name writes and another leaves out (Osama bin Laden,
// Usama BIN LADIN; Abd al-Rahman, Abdul Rahman): left unpaired, they neither fail nor lower a match.
const PARTICLES = new Set([
  'al',
  'el',
  'ul',
  'bin',
  'ben',
  'ibn',
  'bint',
  'de',
  'da',
  'di',
  'du',
  'del',
  'der',
  'van',
  'von',
  'la',
  'le',
  'dos',
  'das',
]);

/** OFAC writes "LAST, First Middle": the family name is known, and a match may not leave it out. */
function familyNameMask(name: string, tokens: readonly string[]): number {
  const comma = name.indexOf(',');
  if (comma === -1) return 0;
  return allTokens(tokenize(name.slice(0, comma)).tokens.length) & ~particleMask(tokens);
}

function particleMask(tokens: readonly string[]): number {
  let mask = 0;
  tokens.forEach((token, position) => {
    if (PARTICLES.has(token)) mask |= 1 << position;
  });
  return mask;
}

/** A run of adjacent tokens of a name, [start, end), joined. */
interface Span {
  readonly start: number;
  readonly end: number;
  readonly text: string;
  /** Bit mask of the tokens the span covers. */
  readonly mask: number;
}

interface PreparedName {
  readonly personIndex: number;
  readonly listedName: string;
  readonly tokens: readonly string[];
  /** Vocabulary ids of `tokens`, position by position. */
  readonly tokenIds: Int32Array;
  /** Bit masks of the tokens that are particles, and of those written as one Han or Hangul character. */
  readonly particles: number;
  readonly syllables: number;
  /** Bit mask of the family name's tokens, particles left out: those before the comma of "LAST, First". */
  readonly familyName: number;
  /** Joined runs of 2..MERGED_TOKENS_MAX tokens. */
  readonly merged: readonly Span[];
}

function mergedSpans(tokens: readonly string[]): Span[] {
  const spans: Span[] = [];
  for (let start = 0; start < tokens.length; start++) {
    for (let end = start + 2; end <= Math.min(tokens.length, start + MERGED_TOKENS_MAX); end++) {
      const text = tokens.slice(start, end).join('');
      if (text.length > TOKEN_LENGTH_MAX) break;
      spans.push({ start, end, text, mask: ((1 << end) - 1) & ~((1 << start) - 1) });
    }
  }
  return spans;
}

// ---------------------------------------------------------------------------------------------------
// String similarity

/** Jaro-Winkler similarity (Winkler 1990), prefix scale 0.1 over at most 4 characters. */
export function jaroWinkler(a: string, b: string): number {
  if (a === b) return 1;
  const lengthA = a.length;
  const lengthB = b.length;
  if (lengthA === 0 || lengthB === 0) return 0;
  if (lengthA > 31 || lengthB > 31) {
    throw new RangeError('jaroWinkler compares tokens of at most 31 characters');
  }
  const window = Math.max(0, (Math.max(lengthA, lengthB) >> 1) - 1);
  let matchedA = 0;
  let matchedB = 0;
  let matches = 0;
  for (let i = 0; i < lengthA; i++) {
    const c = a.charCodeAt(i);
    const last = Math.min(lengthB - 1, i + window);
    for (let j = Math.max(0, i - window); j <= last; j++) {
      if ((matchedB & (1 << j)) === 0 && b.charCodeAt(j) === c) {
        matchedA |= 1 << i;
        matchedB |= 1 << j;
        matches++;
        break;
      }
    }
  }
  if (matches === 0) return 0;
  let halfTranspositions = 0;
  for (let i = 0, j = 0; i < lengthA; i++) {
    if ((matchedA & (1 << i)) === 0) continue;
    while ((matchedB & (1 << j)) === 0) j++;
    if (a.charCodeAt(i) !== b.charCodeAt(j)) halfTranspositions++;
    j++;
  }
  const jaro = (matches / lengthA + matches / lengthB + (matches - halfTranspositions / 2) / matches) / 3;
  if (jaro < 0.7) return jaro;
  let prefix = 0;
  const prefixMax = Math.min(4, lengthA, lengthB);
  while (prefix < prefixMax && a.charCodeAt(prefix) === b.charCodeAt(prefix)) prefix++;
  return jaro + prefix * 0.1 * (1 - jaro);
}

const VOWELS = new Set(['a', 'e', 'i', 'o', 'u'].map((v) => v.charCodeAt(0)));
/** Vowels are where transliterations of one name differ most (Muhammad, Mohamed, Moammar, Muammar). */
const VOWEL_FOR_VOWEL_COST = 0.5;

/**
 * Edit distance counting an adjacent transposition as one edit (optimal string alignment) and a vowel
 * written for another vowel as half of one.
 */
export function editDistance(a: string, b: string): number {
  const lengthB = b.length;
  let beforePrevious = new Array<number>(lengthB + 1).fill(0);
  let previous = Array.from({ length: lengthB + 1 }, (_, j) => j);
  let current = new Array<number>(lengthB + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    current[0] = i;
    const charA = a.charCodeAt(i - 1);
    for (let j = 1; j <= lengthB; j++) {
      const charB = b.charCodeAt(j - 1);
      const cost = charA === charB ? 0 : VOWELS.has(charA) && VOWELS.has(charB) ? VOWEL_FOR_VOWEL_COST : 1;
      let best = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && charA === b.charCodeAt(j - 2) && a.charCodeAt(i - 2) === charB) {
        best = Math.min(best, (beforePrevious[j - 2] ?? 0) + 1);
      }
      current[j] = best;
    }
    [beforePrevious, previous, current] = [previous, current, beforePrevious];
  }
  return previous[lengthB] ?? 0;
}

/** Below this Jaro-Winkler, two tokens are not worth the edit distance. */
const JARO_WINKLER_FLOOR = 0.75;

/**
 * How alike two folded tokens are, 0..1: the mean of Jaro-Winkler, which forgives transposed and
 * shifted letters and favours a shared start, and the share of letters left unedited, which counts
 * every changed letter. Jaro-Winkler alone rates "Sergio Ivanez" 0.9 like "Sergei Ivanov".
 */
export function tokenSimilarity(a: string, b: string): number {
  if (a === b) return 1;
  const shorter = Math.min(a.length, b.length);
  // A letter changed in a short token makes another name ("Ali" and "Al", "Xi" and "Xu"); one added
  // may still be the same name ("Jon", "John").
  if (shorter <= 2) return 0;
  if (shorter === 3 && (Math.abs(a.length - b.length) !== 1 || a[0] !== b[0] || editDistance(a, b) !== 1)) {
    return 0;
  }
  const jw = jaroWinkler(a, b);
  if (jw < JARO_WINKLER_FLOOR) return 0;
  return (jw + 1 - editDistance(a, b) / Math.max(a.length, b.length)) / 2;
}

// ---------------------------------------------------------------------------------------------------
// Screening

/** Default hit threshold; see the calibration in screening.test.ts. */
export const DEFAULT_THRESHOLD = 0.88;
/** Two tokens (or joined runs) below this similarity are not paired. */
const PAIR_MIN = 0.8;
/** Score lost per token of the longer name left unpaired (a middle name on one side only). */
const UNPAIRED_TOKEN_PENALTY = 0.02;
const UNPAIRED_TOKENS_PENALISED_MAX = 5;
/** A single token paired while the other name has more ("Ivanov" against "Sergei Ivanov"). */
const SINGLE_TOKEN_FACTOR = 0.8;
/** A date of birth that agrees closes this share of the gap to 1. */
const BIRTH_DATE_AGREES_GAIN = 0.3;
/** A date of birth in another year; one in the same year is half as damning (day and month mix-ups). */
const BIRTH_DATE_CONTRADICTS_PENALTY = 0.08;

interface Pair {
  readonly subjectMask: number;
  readonly listedMask: number;
  readonly similarity: number;
  readonly weight: number;
}

interface PreparedSubject {
  readonly tokens: readonly string[];
  readonly merged: readonly Span[];
  readonly particles: number;
  readonly syllables: number;
  /** Similarity of subject token i to vocabulary token v, filled lazily: index v * TOKENS_PER_NAME_MAX + i. */
  readonly similarities: Map<number, number>;
}

export interface ScreenerOptions {
  /** Minimum score of a hit, in (0, 1]. Default DEFAULT_THRESHOLD. */
  readonly threshold?: number;
}

export class Screener {
  readonly threshold: number;
  readonly #people: ListedPerson[] = [];
  readonly #names: PreparedName[] = [];
  readonly #vocabulary = new Map<string, number>();
  readonly #vocabularyTokens: string[] = [];
  /** Names (indices into #names) that contain each vocabulary token. */
  readonly #namesByToken: number[][] = [];
  /** Vocabulary ids by padded character bigram: the index that finds a subject token's neighbours. */
  readonly #tokensByBigram: number[][] = Array.from({ length: BIGRAM_CODES }, () => []);
  readonly #bigramCounts: Uint8Array;
  /** Scratch of #candidateNames, zero between calls (screen is synchronous, so one call at a time). */
  readonly #sharedBigrams: Uint16Array;

  constructor(lists: readonly ScreeningList[], options: ScreenerOptions = {}) {
    const threshold = options.threshold ?? DEFAULT_THRESHOLD;
    if (!(threshold > 0 && threshold <= 1)) throw new RangeError('threshold must be in (0, 1]');
    this.threshold = threshold;
    for (const list of lists) {
      for (const person of list.people) {
        const personIndex = this.#people.push(person) - 1;
        for (const listedName of person.names) {
          const { tokens, syllables } = tokenize(listedName);
          if (tokens.length === 0) continue;
          const nameIndex = this.#names.length;
          const tokenIds = new Int32Array(tokens.length);
          tokens.forEach((token, position) => {
            const id = this.#tokenId(token);
            tokenIds[position] = id;
            const names = this.#namesByToken[id];
            if (names !== undefined && names[names.length - 1] !== nameIndex) names.push(nameIndex);
          });
          this.#names.push({
            personIndex,
            listedName,
            tokens,
            tokenIds,
            particles: particleMask(tokens),
            syllables,
            familyName: familyNameMask(listedName, tokens),
            merged: mergedSpans(tokens),
          });
        }
      }
    }
    this.#bigramCounts = Uint8Array.from(this.#vocabularyTokens, (token) => bigramsOf(token).length);
    this.#sharedBigrams = new Uint16Array(this.#vocabularyTokens.length);
  }

  #tokenId(token: string): number {
    const known = this.#vocabulary.get(token);
    if (known !== undefined) return known;
    const id = this.#vocabularyTokens.push(token) - 1;
    this.#vocabulary.set(token, id);
    this.#namesByToken.push([]);
    for (const code of bigramsOf(token)) this.#tokensByBigram[code]?.push(id);
    return id;
  }

  screen(subject: { readonly name: string; readonly dateOfBirth?: string }): ScreeningHit[] {
    const { tokens, syllables } = tokenize(subject.name);
    if (tokens.length === 0) throw new RangeError('the subject name has no letters to screen');
    const dateOfBirth = subject.dateOfBirth;
    if (dateOfBirth !== undefined && !isCalendarDate(dateOfBirth) && !/^\d{4}$/.test(dateOfBirth)) {
      throw new RangeError('dateOfBirth must be YYYY-MM-DD or YYYY');
    }
    const prepared: PreparedSubject = {
      tokens,
      merged: mergedSpans(tokens),
      particles: particleMask(tokens),
      syllables,
      similarities: new Map(),
    };

    const bestByPerson = new Map<number, { score: number; listedName: string }>();
    for (const nameIndex of this.#candidateNames(prepared)) {
      const name = this.#names[nameIndex];
      if (name === undefined) continue;
      const score = this.#nameScore(prepared, name);
      if (score === 0) continue;
      const best = bestByPerson.get(name.personIndex);
      if (best === undefined || score > best.score) {
        bestByPerson.set(name.personIndex, { score, listedName: name.listedName });
      }
    }

    const hits: ScreeningHit[] = [];
    for (const [personIndex, { score: nameScore, listedName }] of bestByPerson) {
      const person = this.#people[personIndex];
      if (person === undefined) continue;
      const birth = compareBirthDates(dateOfBirth, person.birthDates);
      let score = nameScore;
      if (birth === 'agrees') score += (1 - score) * BIRTH_DATE_AGREES_GAIN;
      else if (birth === 'same-year') score -= BIRTH_DATE_CONTRADICTS_PENALTY / 2;
      else if (birth === 'contradicts') score -= BIRTH_DATE_CONTRADICTS_PENALTY;
      score = Math.round(score * 1000) / 1000;
      if (score < this.threshold) continue;
      hits.push({
        listSource: person.listSource,
        kind: person.kind,
        entryId: person.entryId,
        listedName,
        score,
        dateOfBirthMatches: birth === undefined ? undefined : birth === 'agrees',
      });
    }
    return hits.sort(
      (a, b) =>
        b.score - a.score ||
        a.listSource.localeCompare(b.listSource) ||
        a.entryId.localeCompare(b.entryId, 'en', { numeric: true }),
    );
  }

  /**
   * Names with at least one token like a subject token (or a joined run of subject tokens): found
   * through the bigram index, so the cost follows the number of similar tokens, not the list size.
   */
  #candidateNames(subject: PreparedSubject): Set<number> {
    const candidates = new Set<number>();
    const units: { text: string; position: number }[] = subject.tokens.map((text, position) => ({
      text,
      position,
    }));
    for (const span of subject.merged) units.push({ text: span.text, position: -1 });
    const shared = this.#sharedBigrams;
    for (const unit of units) {
      const bigrams = bigramsOf(unit.text);
      const touched: number[] = [];
      for (const code of bigrams) {
        for (const id of this.#tokensByBigram[code] ?? []) {
          if (shared[id] === 0) touched.push(id);
          shared[id] = (shared[id] ?? 0) + 1;
        }
      }
      for (const id of touched) {
        const count = shared[id] ?? 0;
        shared[id] = 0;
        // Two tokens a letter or two apart share at least half the bigrams of the shorter one.
        if (count * 2 < Math.min(bigrams.length, this.#bigramCounts[id] ?? 0)) continue;
        const token = this.#vocabularyTokens[id] ?? '';
        const similarity =
          unit.position >= 0
            ? this.#singleSimilarity(subject, unit.position, id)
            : tokenSimilarity(unit.text, token);
        if (similarity < PAIR_MIN) continue;
        for (const nameIndex of this.#namesByToken[id] ?? []) candidates.add(nameIndex);
      }
    }
    return candidates;
  }

  #singleSimilarity(subject: PreparedSubject, position: number, tokenId: number): number {
    const key = tokenId * TOKENS_PER_NAME_MAX + position;
    const known = subject.similarities.get(key);
    if (known !== undefined) return known;
    const similarity = tokenSimilarity(subject.tokens[position] ?? '', this.#vocabularyTokens[tokenId] ?? '');
    subject.similarities.set(key, similarity);
    return similarity;
  }

  /**
   * Pairs the tokens of the two names greedily, most similar first, each token used once; a joined
   * run of tokens on one side may pair with a single token on the other. Every token of one of the
   * names must be paired ("Sergei Ivanov" inside "IVANOV, Sergei Petrovich"), or the score is 0.
   * The score is the similarity of the pairs averaged by length, less a little per unpaired token.
   */
  #nameScore(subject: PreparedSubject, name: PreparedName): number {
    const pairs: Pair[] = [];
    const subjectCount = subject.tokens.length;
    const listedCount = name.tokens.length;
    for (let i = 0; i < subjectCount; i++) {
      const subjectToken = subject.tokens[i] ?? '';
      for (let j = 0; j < listedCount; j++) {
        const similarity = this.#singleSimilarity(subject, i, name.tokenIds[j] ?? 0);
        if (similarity < PAIR_MIN) continue;
        const listedToken = name.tokens[j] ?? '';
        pairs.push({
          subjectMask: 1 << i,
          listedMask: 1 << j,
          similarity,
          weight: Math.max(subjectToken.length, listedToken.length),
        });
      }
    }
    addMergedPairs(pairs, subject.merged, name.tokens, true);
    addMergedPairs(pairs, name.merged, subject.tokens, false);
    if (pairs.length === 0) return 0;
    // Most similar first; among equals, the pair covering more tokens ("jinping" = "jin"+"ping").
    pairs.sort((a, b) => b.similarity - a.similarity || b.weight - a.weight);

    let subjectCovered = 0;
    let listedCovered = 0;
    let weighted = 0;
    let weights = 0;
    let substantivePairs = 0;
    for (const pair of pairs) {
      if ((pair.subjectMask & subjectCovered) !== 0 || (pair.listedMask & listedCovered) !== 0) continue;
      subjectCovered |= pair.subjectMask;
      listedCovered |= pair.listedMask;
      weighted += pair.similarity * pair.weight;
      weights += pair.weight;
      if ((pair.subjectMask & ~subject.particles) !== 0 && (pair.listedMask & ~name.particles) !== 0) {
        substantivePairs++;
      }
    }
    if (substantivePairs === 0) return 0;
    // A name written in Han or Hangul characters has no optional part: 唐宇哲 (Tang Yuzhe) is not Tang Yu.
    const unpairedSyllables =
      (allTokens(subjectCount) & ~subjectCovered & subject.syllables) |
      (allTokens(listedCount) & ~listedCovered & name.syllables);
    if (unpairedSyllables !== 0) return 0;
    const subjectUnpaired = bitCount(allTokens(subjectCount) & ~subjectCovered & ~subject.particles);
    const listedUnpaired = bitCount(allTokens(listedCount) & ~listedCovered & ~name.particles);
    if (subjectUnpaired > 0 && listedUnpaired > 0) return 0;
    // Middle names may be missing, the family name not: "Yusuf Rahman" is not AL-MAZRAQI, Yusuf Abd al-Rahman.
    if (listedUnpaired > 0 && name.familyName !== 0 && (listedCovered & name.familyName) === 0) return 0;
    const unpaired = subjectUnpaired + listedUnpaired;
    let score =
      (weighted / weights) * (1 - UNPAIRED_TOKEN_PENALTY * Math.min(unpaired, UNPAIRED_TOKENS_PENALISED_MAX));
    if (substantivePairs === 1 && unpaired > 0) score *= SINGLE_TOKEN_FACTOR;
    return score;
  }
}

/** Pairs of a joined run on one side with a single token on the other, when they are alike. */
function addMergedPairs(
  pairs: Pair[],
  spans: readonly Span[],
  singles: readonly string[],
  spansAreSubject: boolean,
): void {
  for (const span of spans) {
    for (let j = 0; j < singles.length; j++) {
      const single = singles[j] ?? '';
      // A run can only equal a token that starts like it and is about as long.
      if (single.charCodeAt(0) !== span.text.charCodeAt(0)) continue;
      if (single.length * 4 < span.text.length * 3 || span.text.length * 4 < single.length * 3) continue;
      const similarity = tokenSimilarity(span.text, single);
      if (similarity < PAIR_MIN) continue;
      pairs.push({
        subjectMask: spansAreSubject ? span.mask : 1 << j,
        listedMask: spansAreSubject ? 1 << j : span.mask,
        similarity,
        weight: Math.max(span.text.length, single.length),
      });
    }
  }
}

function allTokens(count: number): number {
  return (1 << count) - 1;
}

function bitCount(mask: number): number {
  let count = 0;
  for (let rest = mask; rest !== 0; rest &= rest - 1) count++;
  return count;
}

// Bigrams of "^token$" over the alphabet a-z plus the boundary: 27 x 27 codes.
const BIGRAM_CODES = 27 * 27;

function bigramsOf(token: string): number[] {
  const codes: number[] = [];
  let previous = 0;
  for (let i = 0; i <= token.length; i++) {
    const current = i < token.length ? token.charCodeAt(i) - 96 : 0;
    const code = previous * 27 + current;
    if (!codes.includes(code)) codes.push(code);
    previous = current;
  }
  return codes;
}

type BirthDateComparison = 'agrees' | 'same-year' | 'contradicts';

function compareBirthDates(
  subject: string | undefined,
  listed: readonly string[],
): BirthDateComparison | undefined {
  if (subject === undefined || listed.length === 0) return undefined;
  const year = subject.slice(0, 4);
  let sameYear = false;
  for (const date of listed) {
    // A year-only date on either side agrees with any date in that year.
    if (
      date === subject ||
      (date.length === 4 && date === year) ||
      (subject.length === 4 && date.startsWith(year))
    ) {
      return 'agrees';
    }
    if (date.startsWith(year)) sameYear = true;
  }
  return sameYear ? 'same-year' : 'contradicts';
}
