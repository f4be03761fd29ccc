// Pure checks on what an account-opening application states: national identity numbers, phone numbers
// and age. No I/O; the only clock read is the default `today` of `checkNationalId`, which callers and
// tests may pass explicitly.
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';

export type NationalIdType = 'cn_resident_id' | 'uk_nino' | 'us_ssn';
export const NATIONAL_ID_TYPES: readonly NationalIdType[] = ['cn_resident_id', 'uk_nino', 'us_ssn'];

/**
 * Why a number was refused, in the order checks run (the first failing one is reported):
 * `format` (shape, characters, letters never used), `check_digit` (CN only), `invalid_date` (CN only: the
 * encoded birth date does not exist, is before 1900 or in the future), `reserved` (well-formed but never
 * issued). None of them can succeed on retry with the same text.
 */
export type NationalIdReason = 'format' | 'check_digit' | 'invalid_date' | 'reserved';
export type NationalIdCheck = { ok: true; value: string } | { ok: false; reason: NationalIdReason };

// Anything longer is not an identity number with some spaces in it; refuse before doing any work.
const NATIONAL_ID_TEXT_MAX = 64;
const PHONE_TEXT_MAX = 64;

/**
 * Strips spaces and hyphens, upper-cases; then validates. `value` is the canonical form stored and indexed.
 * `today` (UTC) bounds the birth date a Chinese number may encode.
 */
export function checkNationalId(
  type: NationalIdType,
  text: string,
  today: Date = new Date(),
): NationalIdCheck {
  if (text.length > NATIONAL_ID_TEXT_MAX) return { ok: false, reason: 'format' };
  const value = text.replace(/[\s-]/g, '').toUpperCase();
  const reason = nationalIdFault(type, value, today);
  return reason === undefined ? { ok: true, value } : { ok: false, reason };
}

function nationalIdFault(type: NationalIdType, value: string, today: Date): NationalIdReason | undefined {
  switch (type) {
    case 'cn_resident_id':
      return cnResidentIdFault(value, today);
    case 'uk_nino':
      return ukNinoFault(value);
    case 'us_ssn':
      return usSsnFault(value);
  }
}

/** The date of birth a number encodes (China's 18-digit resident id encodes YYYYMMDD), as 'YYYY-MM-DD'; undefined for types that do not. */
export function nationalIdBirthDate(type: NationalIdType, value: string): string | undefined {
  if (type !== 'cn_resident_id' || !CN_SHAPE.test(value)) return undefined;
  const date = cnBirthDate(value);
  return date === undefined ? undefined : formatDate(date);
}

/**
 * A valid number of the type, deterministic for a given `random` (returns [0,1)); for CN, encoding
 * `birthDate` ('YYYY-MM-DD') when given, else a date between 1950 and 2005 so the result never depends on
 * the clock. Used by the sandbox generator and tests.
 */
export function generateNationalId(type: NationalIdType, random: () => number, birthDate?: string): string {
  switch (type) {
    case 'cn_resident_id':
      return generateCnResidentId(random, birthDate);
    case 'uk_nino':
      return generateUkNino(random);
    case 'us_ssn':
      return generateUsSsn(random);
  }
}

// --- China: resident identity number, GB 11643-1999 -------------------------------------------------------

// GB 11643-1999 §4: six-digit address code (GB/T 2260), eight-digit birth date, three-digit sequence, one
// check character. The address code's first digit is a region (1 North … 8 Hong Kong, Macao, Taiwan
// residents); 0 and 9 are not resident ids (9 is the 2023 foreigners' permanent residence card).
const CN_SHAPE = /^[1-8]\d{16}[\dX]$/;
// ISO 7064 MOD 11-2 weights, 2^(17-i) mod 11, for positions 1-17 (GB 11643-1999 §8.2).
const CN_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2] as const;
// Not in the standard: nobody alive holds an id encoding an earlier birth year.
const CN_BIRTH_YEAR_MIN = 1900;

function cnResidentIdFault(value: string, today: Date): NationalIdReason | undefined {
  if (!CN_SHAPE.test(value)) return 'format';
  // Check character before the date: a mistyped digit is the common error and the check character is
  // what catches it; only a number whose check agrees can be said to encode an impossible date.
  if (cnCheckCharacter(value.slice(0, 17)) !== value[17]) return 'check_digit';
  const birth = cnBirthDate(value);
  if (birth === undefined || birth.year < CN_BIRTH_YEAR_MIN || compareDates(birth, utcDate(today)) > 0) {
    return 'invalid_date';
  }
  return undefined;
}

/** ISO 7064 MOD 11-2 over the first 17 digits: (12 − Σ dᵢ·wᵢ mod 11) mod 11, with 10 written 'X'. */
function cnCheckCharacter(first17: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(first17[i]) * (CN_WEIGHTS[i] ?? 0);
  const check = (12 - (sum % 11)) % 11;
  return check === 10 ? 'X' : String(check);
}

function cnBirthDate(value: string): CalendarDate | undefined {
  // Positions 7-14 (1-based) are YYYYMMDD.
  return calendarDate(Number(value.slice(6, 10)), Number(value.slice(10, 12)), Number(value.slice(12, 14)));
}

// GB/T 2260 province-level codes, so generated numbers look like real ones (71 Taiwan, 81 Hong Kong,
// 82 Macao, 83 Taiwan residents' residence permits).
const CN_PROVINCES = [
  '11',
  '12',
  '13',
  '14',
  '15',
  '21',
  '22',
  '23',
  '31',
  '32',
  '33',
  '34',
  '35',
  '36',
  '37',
  '41',
  '42',
  '43',
  '44',
  '45',
  '46',
  '50',
  '51',
  '52',
  '53',
  '54',
  '61',
  '62',
  '63',
  '64',
  '65',
  '71',
  '81',
  '82',
  '83',
] as const;
const GENERATED_BIRTH_FIRST = { year: 1950, month: 1, day: 1 } as const;
const GENERATED_BIRTH_LAST = { year: 2005, month: 12, day: 31 } as const;

function generateCnResidentId(random: () => number, birthDate: string | undefined): string {
  let birth: CalendarDate;
  if (birthDate === undefined) {
    const first = daysSinceEpoch(GENERATED_BIRTH_FIRST);
    birth = fromDaysSinceEpoch(first + pick(random, daysSinceEpoch(GENERATED_BIRTH_LAST) - first + 1));
  } else {
    const parsed = parseDate(birthDate);
    // A generator that returned an invalid number would be a bug at the caller, not an outcome.
    if (
      parsed === undefined ||
      parsed.year < CN_BIRTH_YEAR_MIN ||
      compareDates(parsed, utcDate(new Date())) > 0
    ) {
      throw new RangeError(`no valid resident id encodes birth date ${birthDate}`);
    }
    birth = parsed;
  }
  const province = CN_PROVINCES[pick(random, CN_PROVINCES.length)];
  const first17 = `${province}${digits(random, 4)}${formatDate(birth).replaceAll('-', '')}${digits(random, 3)}`;
  return `${first17}${cnCheckCharacter(first17)}`;
}

// --- United Kingdom: National Insurance number, HMRC NIM39110 ---------------------------------------------

// HMRC NIM39110: two prefix letters, six digits, a suffix A, B, C or D. There is no check digit; a
// well-formed number can only be confirmed as issued by HMRC/DWP.
const UK_NINO_SHAPE = /^([A-Z])([A-Z])\d{6}[A-D]$/;
// NIM39110: D, F, I, Q, U and V are never used in the prefix; O is not used as the second letter.
const UK_NINO_FIRST_LETTER_UNUSED = new Set(['D', 'F', 'I', 'Q', 'U', 'V']);
const UK_NINO_SECOND_LETTER_UNUSED = new Set(['D', 'F', 'I', 'O', 'Q', 'U', 'V']);
// NIM39110: prefixes not allocated (TN is the old temporary-number prefix, ZZ an administrative filler).
const UK_NINO_UNALLOCATED_PREFIXES = new Set(['BG', 'GB', 'KN', 'NK', 'NT', 'TN', 'ZZ']);

function ukNinoFault(value: string): NationalIdReason | undefined {
  const match = UK_NINO_SHAPE.exec(value);
  if (!match) return 'format';
  const [, first = '', second = ''] = match;
  // A letter never used is a malformed number (QQ123456C, HMRC's own specimen); a usable pair that is
  // never allocated is reserved.
  if (UK_NINO_FIRST_LETTER_UNUSED.has(first) || UK_NINO_SECOND_LETTER_UNUSED.has(second)) return 'format';
  if (UK_NINO_UNALLOCATED_PREFIXES.has(`${first}${second}`)) return 'reserved';
  return undefined;
}

const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
// Every prefix that may be issued, so generation is one pick with no retry loop.
const UK_NINO_ALLOCATABLE_PREFIXES: readonly string[] = [...LETTERS]
  .filter((first) => !UK_NINO_FIRST_LETTER_UNUSED.has(first))
  .flatMap((first) =>
    [...LETTERS]
      .filter((second) => !UK_NINO_SECOND_LETTER_UNUSED.has(second))
      .map((second) => first + second),
  )
  .filter((prefix) => !UK_NINO_UNALLOCATED_PREFIXES.has(prefix));

function generateUkNino(random: () => number): string {
  const prefix = UK_NINO_ALLOCATABLE_PREFIXES[pick(random, UK_NINO_ALLOCATABLE_PREFIXES.length)];
  return `${prefix}${digits(random, 6)}${'ABCD'[pick(random, 4)]}`;
}

// --- United States: Social Security number, SSA ------------------------------------------------------------

// AAA-GG-SSSS. Since randomisation (25 June 2011) the area is no longer geographic, so only the SSA's
// never-issued values can be refused: area 000, 666 and 900-999 (ITINs and advertising), group 00,
// serial 0000. There is no check digit.
const US_SSN_SHAPE = /^(\d{3})(\d{2})(\d{4})$/;
// Published by mistake and then used by thousands: the Woolworth wallet card (1938) and the SSA's own
// pamphlet specimen. SSA voided both.
const US_SSN_ADVERTISING = new Set(['078051120', '219099999']);

function usSsnFault(value: string): NationalIdReason | undefined {
  const match = US_SSN_SHAPE.exec(value);
  if (!match) return 'format';
  const [, area = '', group = '', serial = ''] = match;
  if (area === '000' || area === '666' || area[0] === '9' || group === '00' || serial === '0000') {
    return 'reserved';
  }
  if (US_SSN_ADVERTISING.has(value)) return 'reserved';
  return undefined;
}

function generateUsSsn(random: () => number): string {
  // Areas 001-899 less 666: pick among 898 and skip over 666.
  let area = 1 + pick(random, 898);
  if (area >= 666) area += 1;
  const group = 1 + pick(random, 99);
  let serial = 1 + pick(random, 9999);
  // Step off the two void advertising numbers (serials 1120 and 9999) rather than draw again.
  if (US_SSN_ADVERTISING.has(`${pad(area, 3)}${pad(group, 2)}${pad(serial, 4)}`)) serial -= 1;
  return `${pad(area, 3)}${pad(group, 2)}${pad(serial, 4)}`;
}

// --- Phone --------------------------------------------------------------------------------------------------

/**
 * A phone number in international format (leading '+'), valid in its country's numbering plan
 * (libphonenumber's full metadata, not just a length check), as E.164. Extensions are refused: E.164 has
 * none and the number is for reaching the customer directly.
 */
export function checkPhone(text: string): { ok: true; e164: string } | { ok: false; reason: 'format' } {
  const trimmed = text.trim();
  if (trimmed.length > PHONE_TEXT_MAX || !trimmed.startsWith('+')) return { ok: false, reason: 'format' };
  // extract: false so the whole text must be the number, not merely contain one.
  const phone = parsePhoneNumberFromString(trimmed, { extract: false });
  if (phone === undefined || !phone.isValid() || phone.ext !== undefined)
    return { ok: false, reason: 'format' };
  return { ok: true, e164: phone.number };
}

// --- Age ----------------------------------------------------------------------------------------------------

/** Whole years old on `today` (UTC), or undefined if dateOfBirth is not a real 'YYYY-MM-DD' date or lies in the future. */
export function ageOn(dateOfBirth: string, today: Date): number | undefined {
  const birth = parseDate(dateOfBirth);
  const now = utcDate(today);
  if (birth === undefined || compareDates(birth, now) > 0) return undefined;
  // Compare month and day rather than adding years to a Date: someone born on 29 February is a year
  // older on 1 March in a common year, never on a rolled-over or clamped date.
  const birthdayPassed = now.month > birth.month || (now.month === birth.month && now.day >= birth.day);
  return now.year - birth.year - (birthdayPassed ? 0 : 1);
}

// Statutory ages of majority other than 18, by ISO 3166-1 alpha-2 nationality. Nationality rather than
// residence because civil-law systems take capacity from the national law (e.g. EGBGB Art. 7). Federal
// states that vary by province or state (US: AL, NE 19, MS 21; CA: 19 in BC, NB, NL, NS, NT, NU, YT) are
// not expressible by nationality and stay at 18. Japan (2022) and Taiwan (2023) lowered theirs to 18.
const AGE_OF_MAJORITY: ReadonlyMap<string, number> = new Map([
  ['BH', 21],
  ['DZ', 19], // Civil Code art. 40
  ['EG', 21], // Civil Code art. 44
  ['KR', 19], // Civil Act art. 4 (since 2013)
  ['KW', 21],
  ['NZ', 20], // Age of Majority Act 1970 s 4
  ['SG', 21], // common law; the Civil Law Act s 35 lets 18-year-olds contract
  ['TH', 20], // Civil and Commercial Code s 19
]);
const DEFAULT_AGE_OF_MAJORITY = 18;

/** Age of majority by ISO 3166 alpha-2 nationality (default 18). */
export function ageOfMajority(nationality: string): number {
  return AGE_OF_MAJORITY.get(nationality.toUpperCase()) ?? DEFAULT_AGE_OF_MAJORITY;
}

// --- Calendar dates (proleptic Gregorian, no time zone) ----------------------------------------------------

interface CalendarDate {
  readonly year: number;
  readonly month: number;
  readonly day: number;
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

function parseDate(text: string): CalendarDate | undefined {
  const match = ISO_DATE.exec(text);
  if (!match) return undefined;
  return calendarDate(Number(match[1]), Number(match[2]), Number(match[3]));
}

/** The date if it exists; JavaScript's Date would roll 2023-02-29 over into March instead. */
function calendarDate(year: number, month: number, day: number): CalendarDate | undefined {
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  return { year, month, day };
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

function utcDate(instant: Date): CalendarDate {
  return { year: instant.getUTCFullYear(), month: instant.getUTCMonth() + 1, day: instant.getUTCDate() };
}

function compareDates(a: CalendarDate, b: CalendarDate): number {
  return a.year - b.year || a.month - b.month || a.day - b.day;
}

function formatDate(date: CalendarDate): string {
  return `${pad(date.year, 4)}-${pad(date.month, 2)}-${pad(date.day, 2)}`;
}

const DAY_MS = 86_400_000;

function daysSinceEpoch(date: CalendarDate): number {
  return Date.UTC(date.year, date.month - 1, date.day) / DAY_MS;
}

function fromDaysSinceEpoch(days: number): CalendarDate {
  return utcDate(new Date(days * DAY_MS));
}

// --- Deterministic picks ------------------------------------------------------------------------------------

/** An integer in [0, n) from one call to `random`; a `random` outside [0, 1) is a caller's bug. */
function pick(random: () => number, n: number): number {
  const r = random();
  if (!(r >= 0 && r < 1)) throw new RangeError(`random() must return a number in [0, 1), got ${r}`);
  return Math.floor(r * n);
}

function digits(random: () => number, count: number): string {
  let text = '';
  for (let i = 0; i < count; i++) text += String(pick(random, 10));
  return text;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}
