// The periods a mandate's limits count in: calendar days, ISO 8601 weeks (Monday to Sunday) and calendar
// months, all in UTC. UK Open Banking VRP calls these calendar-aligned periodic limits; one time zone for every
// customer keeps "today" the same for the merchant, the customer and the bank's statements.

export const PERIODS = ['day', 'week', 'month'] as const;
export type Period = (typeof PERIODS)[number];

const DAY_MS = 86_400_000;

/** The calendar period (UTC) that contains `at`, as [start, end). */
export function periodOf(period: Period, at: Date): { start: Date; end: Date } {
  const year = at.getUTCFullYear();
  const month = at.getUTCMonth();
  const day = at.getUTCDate();
  if (period === 'month')
    return { start: new Date(Date.UTC(year, month, 1)), end: new Date(Date.UTC(year, month + 1, 1)) };
  const midnight = Date.UTC(year, month, day);
  if (period === 'day') return { start: new Date(midnight), end: new Date(midnight + DAY_MS) };
  // getUTCDay: Sunday is 0; an ISO week starts on Monday.
  const sinceMonday = (at.getUTCDay() + 6) % 7;
  const start = midnight - sinceMonday * DAY_MS;
  return { start: new Date(start), end: new Date(start + 7 * DAY_MS) };
}
