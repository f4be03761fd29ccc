// The transactional outbox (ARCHITECTURE.md "after commit: outbox -> event dispatcher"): an event is a row
// written in the same transaction as the change it reports, so it exists if and only if the change
// committed. Payloads carry ids and stable codes, never personal data: webhooks will deliver them as they are.
import type { Sql } from '../db/db.ts';

export interface OutboxEvent {
  readonly type: string;
  readonly subjectId: string;
  readonly payload: Readonly<Record<string, unknown>>;
}

export async function emit(sql: Sql, at: Date, ...events: OutboxEvent[]): Promise<void> {
  for (const event of events) {
    await sql.query(
      'insert into outbox_events (type, subject_id, payload, created_at) values ($1, $2, $3::text::jsonb, $4)',
      [event.type, event.subjectId, JSON.stringify(event.payload), at],
    );
  }
}

/** Events about one subject, oldest first (tests and the operator's timeline). */
export async function eventsAbout(
  sql: Sql,
  subjectId: string,
): Promise<{ type: string; payload: Record<string, unknown>; createdAt: Date }[]> {
  const rows = await sql.query<{ type: string; payload: Record<string, unknown>; created_at: Date }>(
    'select type, payload, created_at from outbox_events where subject_id = $1 order by id',
    [subjectId],
  );
  return rows.map((row) => ({ type: row.type, payload: row.payload, createdAt: row.created_at }));
}
