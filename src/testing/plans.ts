// The plan PostgreSQL makes for a statement, for tests that a statement reads through an index.
import { arrayLiteral, type Db, type Sql } from '../db/db.ts';

/** A node of PostgreSQL's JSON plan, as far as the tests read it. */
export interface PlanNode {
  readonly 'Node Type': string;
  readonly 'Relation Name'?: string;
  readonly 'Index Name'?: string;
  readonly 'Index Cond'?: string;
  readonly Plans?: readonly PlanNode[];
}

/** Every node of a plan, the root first, then each subtree in order. */
export function planNodes(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(planNodes)];
}

/** A test's parameter as an SQL literal, of no type yet: the prepared statement gives it one. */
function literal(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  const text =
    value instanceof Date
      ? value.toISOString()
      : Array.isArray(value)
        ? arrayLiteral(value as (string | number | bigint | boolean | null)[])
        : String(value);
  return `'${text.replaceAll("'", "''")}'`;
}

/**
 * The plan of `text` with `params`, with scans made as dear as they go: the planner takes an index wherever
 * one can answer, so a plan that still reads a whole table (or a whole index) has no index to answer with.
 * The generic plan, made without the parameters' values: the bank's statements are prepared, and after a
 * few runs PostgreSQL may keep one plan for every value (a custom plan for the values given could use an
 * index the generic one cannot, a partial index on a status given as a parameter, say).
 */
export async function planPreferringIndexes(
  db: Db,
  text: string,
  params: readonly unknown[],
): Promise<PlanNode> {
  return db.session(async (session) => {
    // The connection goes back to the pool: whatever fails, it leaves with its settings as they were.
    let prepared = false;
    try {
      await session.query('set enable_seqscan = off');
      await session.query('set plan_cache_mode = force_generic_plan');
      await session.script(`prepare planned as ${text}`);
      prepared = true;
      // EXECUTE's arguments are not parameters of the EXPLAIN around it: they go as literals.
      const values = params.map(literal).join(', ');
      const [row] = await session.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
        `explain (format json) execute planned${params.length > 0 ? `(${values})` : ''}`,
      );
      if (!row) throw new Error('explain returned no plan');
      return row['QUERY PLAN'][0].Plan;
    } finally {
      if (prepared) await session.script('deallocate planned');
      await session.query('reset plan_cache_mode');
      await session.query('reset enable_seqscan');
    }
  });
}

/** The statement a store function sends, with its parameters, sent nowhere: to plan it as it is sent. */
export async function statementSentBy(
  send: (sql: Sql) => Promise<unknown>,
): Promise<{ text: string; params: unknown[] }> {
  let sent: { text: string; params: unknown[] } | undefined;
  await send({
    query: async (text, params = []) => {
      sent = { text, params: [...params] };
      return [];
    },
    script: async () => {},
  });
  if (!sent) throw new Error('no statement sent');
  return sent;
}
