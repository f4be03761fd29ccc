// When standing orders fall due: pure date arithmetic on calendar dates ('YYYY-MM-DD', no time zone).
// A monthly or yearly order keeps the day of its first date, and where a month is shorter it falls on the
// month's last day: an order from 31 January is paid on 28 (or 29) February, 31 March, 30 April.
import { daysInMonth, utcDay } from '../time.ts';

export type Frequency = 'daily' | 'weekly' | 'monthly' | 'yearly';

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** A real calendar date in 'YYYY-MM-DD', years 0001 to 9999, or undefined. */
export function parseDate(text: string): Date | undefined {
  const match = DATE.exec(text);
  if (!match || match[1] === '0000') return undefined;
  const date = utcDay(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  return formatDate(date) === text ? date : undefined;
}

export const formatDate = (date: Date) => date.toISOString().slice(0, 10);

/** The `n`-th occurrence (0 = the first date) of a schedule. */
export function occurrence(first: string, frequency: Frequency, n: number): string {
  const start = parseDate(first);
  if (!start || !Number.isSafeInteger(n) || n < 0) throw new RangeError(`occurrence(${first}, ${n})`);
  const day = start.getUTCDate();
  switch (frequency) {
    case 'daily':
      return formatDate(new Date(start.getTime() + n * 86_400_000));
    case 'weekly':
      return formatDate(new Date(start.getTime() + 7 * n * 86_400_000));
    case 'monthly': {
      const months = start.getUTCMonth() + n;
      const year = start.getUTCFullYear() + Math.floor(months / 12);
      const month = months % 12;
      return formatDate(utcDay(year, month, Math.min(day, daysInMonth(year, month + 1))));
    }
    case 'yearly': {
      const year = start.getUTCFullYear() + n;
      const month = start.getUTCMonth();
      return formatDate(utcDay(year, month, Math.min(day, daysInMonth(year, month + 1))));
    }
  }
}

export interface Schedule {
  readonly first: string;
  /** Null: once, on the first date (a scheduled payment). */
  readonly frequency: Frequency | null;
  readonly last: string | null;
  readonly countMax: number | null;
}

/** The occurrence with index `n`, or undefined when the schedule has ended before it. */
export function nthRun(schedule: Schedule, n: number): string | undefined {
  if (schedule.frequency === null) return n === 0 ? schedule.first : undefined;
  if (schedule.countMax !== null && n >= schedule.countMax) return undefined;
  const date = occurrence(schedule.first, schedule.frequency, n);
  return schedule.last !== null && date > schedule.last ? undefined : date;
}
