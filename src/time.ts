// RFC 3339 date-time with a required offset. JavaScript's Date accepts "2026-02-30" and rolls it over
// into March; a bank must refuse a date that does not exist rather than move it.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-](\d{2}):(\d{2}))$/;
export const TIMESTAMP_PATTERN = RFC3339.source;

// The instants a timestamp may name: RFC 3339 years 0001 to 9999 once the offset is applied. PostgreSQL
// reads neither year 0000 nor a five-digit year in the ISO text these are stored as.
const EARLIEST_MS = Date.parse('0001-01-01T00:00:00Z');
const LATEST_MS = Date.parse('9999-12-31T23:59:59.999Z');

/** Midnight UTC of a day of any year (`Date.UTC` would read years 0 to 99 as 1900 to 1999). */
export function utcDay(year: number, monthIndex: number, day: number): Date {
  const date = new Date(0);
  date.setUTCFullYear(year, monthIndex, day);
  return date;
}

/** Days in a month (1-12) of any year. */
export const daysInMonth = (year: number, month: number): number => utcDay(year, month, 0).getUTCDate();

export function parseTimestamp(text: string): Date | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const offsetOk = m[8] === 'Z' || (Number(m[9]) <= 23 && Number(m[10]) <= 59);
  if (
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > daysInMonth(year, month) ||
    hour > 23 ||
    minute > 59 ||
    second > 59 ||
    !offsetOk
  ) {
    return undefined;
  }
  const date = new Date(text);
  const ms = date.getTime();
  return ms >= EARLIEST_MS && ms <= LATEST_MS ? date : undefined;
}
