// The customer's accounts at the bank's own pages: every account of theirs, its balances and latest
// movements, server-rendered like the other customer pages.
import { escapeHtml, page } from '../customer-auth/pages.ts';
import type { Balances } from '../ledger/model.ts';
import { currencyExponent, formatAmount } from '../money.ts';
import type { Transaction } from './service.ts';
import type { BankAccount } from './store.ts';

export function myAccountsPage(
  accounts: readonly { account: BankAccount; balances: Balances; recent: readonly Transaction[] }[],
): string {
  const sections = accounts
    .map(({ account, balances, recent }) => {
      const exponent = currencyExponent(account.currency) ?? 2;
      const money = (minor: bigint) => `${formatAmount(minor, exponent)} ${account.currency}`;
      const rows = recent
        .map(
          (line) =>
            `<tr><td>${escapeHtml(line.bookedAt.toISOString().slice(0, 10))}</td><td>${escapeHtml(
              [line.counterparty.name, line.reference].filter(Boolean).join(' · '),
            )}</td><td class="amount">${line.direction === 'debit' ? '−' : '+'}${escapeHtml(money(line.amount))}</td></tr>`,
        )
        .join('');
      const statement = new Date().toISOString().slice(0, 7);
      return `<section aria-labelledby="a-${escapeHtml(account.id)}">
<h2 id="a-${escapeHtml(account.id)}">${escapeHtml(account.name)} · ${escapeHtml(account.currency)}</h2>
<p>${escapeHtml(account.iban.replace(/(.{4})/g, '$1 ').trim())}${account.status === 'active' ? '' : ` · ${escapeHtml(account.status)}`}</p>
<p><strong>${escapeHtml(money(balances.available))}</strong> available · ${escapeHtml(money(balances.posted))} booked</p>
${rows ? `<table><caption>Latest movements</caption><thead><tr><th scope="col">Date</th><th scope="col">What</th><th scope="col" class="amount">Amount</th></tr></thead><tbody>${rows}</tbody></table>` : '<p>No movements yet.</p>'}
<p>Statement for this month: <a href="/v1/me/accounts/${escapeHtml(account.id)}/statements/${statement}?format=pdf">PDF</a> · <a href="/v1/me/accounts/${escapeHtml(account.id)}/statements/${statement}?format=csv">CSV</a></p>
</section>`;
    })
    .join('');
  return page(
    'Your accounts',
    `<p><a href="/me/consents">Apps you allowed</a></p>
<h1>Your accounts</h1>${sections || '<p>You have no accounts yet.</p>'}
<form method="post" action="/me/sign-out"><button type="submit" class="secondary">Sign out</button></form>`,
  );
}
