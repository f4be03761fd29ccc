// docs/conformance-berlin-group.md in two parts, each written by its own test file (node runs test files in
// separate processes): account information (ais.test.ts) first, then payment initiation and confirmation
// of funds (pis.test.ts). One spec file holds both, so each part keeps only its own operations' rows.
import type { ConformanceStatus } from '../conformance.ts';

export const PIS_TITLE = 'Berlin Group NextGenPSD2 1.3.9: XS2A (payment initiation, confirmation of funds)';
const PIS_HEADING = `\n## ${PIS_TITLE}\n`;

/** Whether an operation's path belongs to the payment-initiation part. */
export const isPisPath = (path: string) =>
  path.startsWith('/v1/{payment-service}') || path === '/v1/funds-confirmations';

const ROW = /^\| \S+ \| `(\S+) ([^`]+)` \| (conforms|partly|not implemented) \|/;
const SUMMARY = /: \d+ conform, \d+ partly, \d+ not implemented\.$/;

/** The markdown with only the rows `keep` accepts, and its summary line counted again. */
export function keepRows(markdown: string, keep: (path: string) => boolean): string {
  const lines = markdown.split('\n').filter((line) => {
    const row = ROW.exec(line);
    return !row || keep(row[2] ?? '');
  });
  const count = (status: ConformanceStatus) => lines.filter((line) => ROW.exec(line)?.[3] === status).length;
  return lines
    .map((line) =>
      SUMMARY.test(line)
        ? line.replace(
            SUMMARY,
            `: ${count('conforms')} conform, ${count('partly')} partly, ${count('not implemented')} not implemented.`,
          )
        : line,
    )
    .join('\n');
}

/** The document split into its account-information part and its payment part (from the heading on). */
export function splitDoc(document: string): { ais: string; pis: string } {
  const at = document.indexOf(PIS_HEADING);
  return at < 0 ? { ais: document, pis: '' } : { ais: document.slice(0, at), pis: document.slice(at) };
}

/** The payment part of a whole generated document: from its heading on. */
export function pisPart(markdown: string): string {
  const at = markdown.indexOf(PIS_HEADING);
  if (at < 0) throw new Error('the generated document has no payment-initiation section');
  return markdown.slice(at);
}
