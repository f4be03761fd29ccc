// The plan PostgreSQL makes for a statement, for tests that a statement reads through an index.
import type { Db } from '../db/db.ts';

/** A node of PostgreSQL's JSON plan, as far as the tests read it. */
export interface PlanNode {
  readonly 'Node Type': string;
  readonly 'Relation Name'?: string;
  readonly 'Index Name'?: string;
  readonly 'Index Cond'?: string;
  readonly Plans?: readonly PlanNode[];
}

/**
 * The plan of `text` with `params`, with scans made as dear as they go: the planner takes an index wherever
 * one can answer, so a plan that still reads a whole table (or a whole index) has no index to answer with.
 */
export async function planPreferringIndexes(
  db: Db,
  text: string,
  params: readonly unknown[],
): Promise<PlanNode> {
  return db.session(async (session) => {
    await session.query('set enable_seqscan = off');
    try {
      const [row] = await session.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
        `explain (format json) ${text}`,
        params,
      );
      if (!row) throw new Error('explain returned no plan');
      return row['QUERY PLAN'][0].Plan;
    } finally {
      await session.query('reset enable_seqscan');
    }
  });
}
