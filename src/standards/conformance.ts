// The conformance table (docs/conformance.md): every operation of each official specification with its
// status, from the spec files and what the conformance tests saw through Prism, never written by hand.
// An operation conforms when the tests exercised both a success and an error response through the
// validating proxy (a violation fails the test, so only conforming exchanges are ever recorded); partly,
// when only one of the two was exercised or a known gap is listed; not implemented, when never exercised.
//
// Each conformance test file keeps a record of what it saw (docs/conformance/<name>.json: per operation, the
// statuses exercised, and the known gaps of what it implements); the document is composed from every spec
// file and every record, so several test files can cover one specification and a specification no test
// covers yet still has its table. Records hold operation ids and statuses, never ids of one run, so a
// record is stable and a test checks that its record is current.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Exchange } from '../testing/prism.ts';

export interface SpecOperation {
  readonly method: string;
  readonly path: string;
  readonly operationId: string;
}

export interface Spec {
  readonly title: string;
  /** The spec file, relative to the repository root. */
  readonly file: string;
  /** Where the bank serves the spec's paths. */
  readonly basePath: string;
}

/** Every official specification the facades answer to, in the order the document lists them. */
export const SPECS = {
  'uk-ob-aisp': {
    title: 'UK Open Banking v4.0: Account and Transaction API',
    file: 'specs/uk-open-banking-v4.0/account-info-openapi.yaml',
    basePath: '/open-banking/v4.0/aisp',
  },
  'uk-ob-pisp': {
    title: 'UK Open Banking v4.0: Payment Initiation API',
    file: 'specs/uk-open-banking-v4.0/payment-initiation-openapi.yaml',
    basePath: '/open-banking/v4.0/pisp',
  },
  'uk-ob-vrp': {
    title: 'UK Open Banking v4.0: Variable Recurring Payments API',
    file: 'specs/uk-open-banking-v4.0/vrp-openapi.yaml',
    basePath: '/open-banking/v4.0/pisp',
  },
  'uk-ob-cbpii': {
    title: 'UK Open Banking v4.0: Confirmation of Funds API',
    file: 'specs/uk-open-banking-v4.0/confirmation-funds-openapi.yaml',
    basePath: '/open-banking/v4.0/cbpii',
  },
  'uk-ob-events': {
    title: 'UK Open Banking v4.0: Events API (subscriptions, aggregated polling)',
    file: 'specs/uk-open-banking-v4.0/events-openapi.yaml',
    basePath: '/open-banking/v4.0',
  },
  'uk-ob-event-notifications': {
    title: 'UK Open Banking v4.0: Event Notification API (the third party’s callback, called by the bank)',
    file: 'specs/uk-open-banking-v4.0/event-notifications-openapi.yaml',
    basePath: '(the third party’s callback URL)',
  },
  'berlin-group': {
    title: 'Berlin Group NextGenPSD2 1.3.9: XS2A Framework',
    file: 'specs/berlin-group-nextgenpsd2-1.3.9/psd2-api-1.3.9.yaml',
    basePath: '/berlin-group',
  },
} as const satisfies Record<string, Spec>;

export type SpecKey = keyof typeof SPECS;

/** What one test file saw of one specification: the statuses exercised per operation, and known gaps. */
export interface ConformanceRecord {
  readonly spec: SpecKey;
  /** The test file that writes the record. */
  readonly test: string;
  readonly seen: Readonly<Record<string, readonly number[]>>;
  /** Known gaps of implemented operations, by operationId: they make it "partly" whatever the tests saw. */
  readonly gaps: Readonly<Record<string, string>>;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RECORDS = `${ROOT}docs/conformance/`;
const DOCUMENT = `${ROOT}docs/conformance.md`;

const METHOD = /^ {4}(get|put|post|delete|patch|head|options):\s*$/;
const PATH = /^ {2}(\/\S*):\s*$/;
const OPERATION_ID = /^ {6}operationId:\s*(\S+)\s*$/;

/**
 * The operations of an OpenAPI YAML file. The official files are block-style YAML with two-space indents,
 * so reading `paths:` line by line is exact here and needs no YAML parser among the dependencies.
 */
export function specOperations(file: string): SpecOperation[] {
  const operations: SpecOperation[] = [];
  let inPaths = false;
  let path: string | undefined;
  let method: string | undefined;
  for (const line of readFileSync(file.startsWith('/') ? file : ROOT + file, 'utf8').split('\n')) {
    if (/^\S/.test(line)) {
      inPaths = line.startsWith('paths:');
      continue;
    }
    if (!inPaths) continue;
    const pathMatch = PATH.exec(line);
    if (pathMatch) {
      path = pathMatch[1];
      method = undefined;
      continue;
    }
    const methodMatch = METHOD.exec(line);
    if (methodMatch) {
      method = methodMatch[1]?.toUpperCase();
      continue;
    }
    const idMatch = OPERATION_ID.exec(line);
    if (idMatch && path && method) {
      operations.push({ method, path, operationId: idMatch[1] ?? '' });
      method = undefined;
    }
  }
  return operations;
}

/** Whether a concrete path (/accounts/123/balances) is an instance of a template (/accounts/{AccountId}/balances). */
export function matchesTemplate(template: string, path: string): boolean {
  const pattern = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^/}]+\}/g, '[^/]+');
  return new RegExp(`^${pattern}$`).test(path);
}

/**
 * The operation an exchange is a call of. A path that several templates match counts for the most specific
 * one only (fewest parameters): in Berlin Group, /v1/consents/{consentId}/status is also an instance of
 * /v1/{payment-service}/{payment-product}/{paymentId}.
 */
export function operationOf(
  exchange: Exchange,
  operations: readonly SpecOperation[],
): SpecOperation | undefined {
  const params = (path: string) => path.split('{').length;
  return operations
    .filter((o) => o.method === exchange.method && matchesTemplate(o.path, exchange.path))
    .sort((a, b) => params(a.path) - params(b.path))[0];
}

/** The record of what a test file's exchanges exercised; an exchange of no operation of the spec throws. */
export function recordOf(
  spec: SpecKey,
  test: string,
  exchanges: readonly Exchange[],
  gaps: Readonly<Record<string, string>> = {},
): ConformanceRecord {
  const operations = specOperations(SPECS[spec].file);
  const seen = new Map<string, Set<number>>();
  for (const exchange of exchanges) {
    const operation = operationOf(exchange, operations);
    if (!operation) throw new Error(`${exchange.method} ${exchange.path} is no operation of ${spec}`);
    const statuses = seen.get(operation.operationId) ?? new Set();
    seen.set(operation.operationId, statuses.add(exchange.status));
  }
  for (const id of Object.keys(gaps))
    if (!operations.some((o) => o.operationId === id)) throw new Error(`${id} is no operation of ${spec}`);
  const ids = operations.map((o) => o.operationId).filter((id) => seen.has(id));
  return {
    spec,
    test,
    seen: Object.fromEntries(ids.map((id) => [id, [...(seen.get(id) ?? [])].sort()])),
    gaps: Object.fromEntries(Object.entries(gaps).sort(([a], [b]) => a.localeCompare(b))),
  };
}

export type ConformanceStatus = 'conforms' | 'partly' | 'not implemented';

export function operationStatus(statuses: readonly number[], gap: string | undefined): ConformanceStatus {
  if (statuses.length === 0) return 'not implemented';
  const success = statuses.some((status) => status < 300);
  const error = statuses.some((status) => status >= 400);
  return success && error && !gap ? 'conforms' : 'partly';
}

/** The whole document: a summary, then every operation of every spec with what the records saw of it. */
export function conformanceDocument(records: readonly ConformanceRecord[]): string {
  const sections: string[] = [];
  const summary: string[] = [];
  for (const [key, spec] of Object.entries(SPECS) as [SpecKey, Spec][]) {
    const mine = records.filter((record) => record.spec === key);
    const rows = specOperations(spec.file).map((operation) => {
      const seen = [...new Set(mine.flatMap((record) => record.seen[operation.operationId] ?? []))].sort();
      const gap = mine.map((record) => record.gaps[operation.operationId]).find(Boolean);
      return { operation, seen, gap, status: operationStatus(seen, gap) };
    });
    const count = (status: ConformanceStatus) => rows.filter((row) => row.status === status).length;
    const tests = [...new Set(mine.map((record) => `\`${record.test}\``))].join(', ') || 'none yet';
    summary.push(
      `| [${spec.title}](#${anchor(spec.title)}) | ${count('conforms')} | ${count('partly')} | ${count('not implemented')} |`,
    );
    sections.push(
      '',
      `## ${spec.title}`,
      '',
      `\`${spec.file}\` under \`${spec.basePath}\`; tested by ${tests}.`,
      '',
      '| operation | method and path | status | statuses tested | note |',
      '| --- | --- | --- | --- | --- |',
      ...rows.map(
        ({ operation, seen, gap, status }) =>
          `| ${operation.operationId} | \`${operation.method} ${operation.path}\` | ${status} | ${seen.join(', ')} | ${gap ?? ''} |`,
      ),
    );
  }
  return `${[
    '# Conformance to the standards',
    '',
    'Generated by the conformance tests (`APIBANK_WRITE_CONFORMANCE=1 npm test`, or the standards’ test files',
    'alone: `APIBANK_WRITE_CONFORMANCE=1 node --test --test-concurrency=1 "src/standards/**/*.test.ts"`); do not edit.',
    'Every exchange counted passed through Stoplight Prism in proxy mode with `--errors` against the unmodified',
    'official file (`specs/`), which fails the test on any violation. **conforms**: a success and an error response',
    'of the operation were exercised; **partly**: only one of them, or a known gap (noted); **not implemented**:',
    'the bank does not offer it yet. Each test file’s record of what it exercised is in `docs/conformance/`.',
    '',
    '| specification | conforms | partly | not implemented |',
    '| --- | --- | --- | --- |',
    ...summary,
    ...sections,
  ].join('\n')}\n`;
}

const anchor = (title: string) =>
  title
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, '')
    .replace(/ /g, '-');

export function readRecords(): ConformanceRecord[] {
  return readdirSync(RECORDS)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((name) => JSON.parse(readFileSync(RECORDS + name, 'utf8')) as ConformanceRecord);
}

export const readDocument = () => readFileSync(DOCUMENT, 'utf8');

/**
 * For a conformance test file's `after`: its record (docs/conformance/<name>.json) is written, with the
 * document composed again, when APIBANK_WRITE_CONFORMANCE=1; otherwise checked, so it never goes stale.
 */
export function keepRecord(name: string, record: ConformanceRecord): void {
  const file = `${RECORDS}${name}.json`;
  const text = `${JSON.stringify(record, null, 2)}\n`;
  if (process.env.APIBANK_WRITE_CONFORMANCE === '1') {
    writeFileSync(file, text);
    writeFileSync(DOCUMENT, conformanceDocument(readRecords()));
    return;
  }
  let kept = '';
  try {
    kept = readFileSync(file, 'utf8');
  } catch {}
  assert.equal(
    kept,
    text,
    `docs/conformance/${name}.json is stale: run APIBANK_WRITE_CONFORMANCE=1 node --test ${record.test}`,
  );
}
