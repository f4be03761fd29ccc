// The bank's own sign-in and consent pages: server-rendered, no JavaScript, labelled for screen readers.
import { maskIban } from '../accounts/iban.ts';
import type { BankAccount } from '../accounts/store.ts';
import { SCOPE_OF } from '../consents/service.ts';
import type { Consent } from '../consents/store.ts';

export const escapeHtml = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );

const STYLE = `
  :root { color-scheme: light dark; --accent: #0b5cad; }
  body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: Canvas; color: CanvasText; }
  main { max-width: 26rem; margin: 4rem auto; padding: 2rem; border: 1px solid GrayText; border-radius: 12px; }
  h1 { font-size: 1.4rem; margin-top: 0; }
  label { display: block; margin: 1rem 0 .25rem; font-weight: 600; }
  input { width: 100%; box-sizing: border-box; padding: .6rem; font-size: 1rem; border: 1px solid GrayText; border-radius: 6px; }
  button { margin-top: 1.25rem; padding: .7rem 1.2rem; font-size: 1rem; border-radius: 6px; border: 0; cursor: pointer;
           background: var(--accent); color: white; }
  button.secondary { background: transparent; color: CanvasText; border: 1px solid GrayText; }
  button:focus-visible, input:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
  .error { padding: .75rem; border-radius: 6px; background: #fde8e8; color: #8a1c1c; }
  .hint { color: GrayText; font-size: .9rem; }
  ul { padding-left: 1.2rem; }
  fieldset { border: 1px solid GrayText; border-radius: 6px; margin-top: 1rem; }
  label.choice { font-weight: 400; display: flex; gap: .5rem; align-items: center; }
  label.choice input { width: auto; }
  select { width: 100%; padding: .6rem; font-size: 1rem; border-radius: 6px; }
  table { width: 100%; border-collapse: collapse; font-size: .9rem; }
  caption { text-align: left; font-weight: 600; margin: .5rem 0; }
  th, td { text-align: left; padding: .3rem .2rem; border-bottom: 1px solid GrayText; }
  .amount, td:first-child { white-space: nowrap; }
  .amount { text-align: right; }
`;

export function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · apibank</title><style>${STYLE}</style></head>
<body><main>${body}</main></body>
</html>`;
}

export function loginPage(options: {
  action: string;
  heading: string;
  error?: string;
  sandboxCode?: string;
}): string {
  const error = options.error ? `<p class="error" role="alert">${escapeHtml(options.error)}</p>` : '';
  const hint = options.sandboxCode
    ? `<p class="hint">Sandbox: the one-time code is ${escapeHtml(options.sandboxCode)}.</p>`
    : '<p class="hint">Enter the 6-digit code from your authenticator app.</p>';
  return page(
    'Sign in',
    `<h1>${escapeHtml(options.heading)}</h1>${error}
<form method="post" action="${escapeHtml(options.action)}">
  <label for="username">Username</label>
  <input id="username" name="username" autocomplete="username" required autofocus>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <label for="code">One-time code</label>
  <input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required aria-describedby="code-hint">
  <div id="code-hint">${hint}</div>
  <button type="submit">Sign in</button>
</form>`,
  );
}

const SCOPE_WORDS: Readonly<Record<string, string>> = {
  openid: 'Confirm who you are',
  profile: 'See your name',
  email: 'See your email address and whether it is verified',
  offline_access: 'Keep access while you are away, until you revoke it',
  accounts: 'See your accounts, balances and transactions',
  payments: 'Start payments from your accounts, each one as you approve it',
  funds_confirmation: 'Check whether your account can cover an amount (yes or no only)',
};

const PERMISSION_WORDS: Readonly<Record<string, string>> = {
  details: 'your account names and numbers',
  balances: 'your balances',
  transactions: 'your transactions',
  beneficiaries: 'whom you have paid from your accounts',
};

// What a UK Open Banking consent grants beyond the bank's own permissions (src/standards/uk-ob/): the
// customer is told all of it, not only what maps onto the bank's words.
const OPEN_BANKING_WORDS: Readonly<Record<string, string>> = {
  ReadStandingOrdersBasic: 'your standing orders',
  ReadStandingOrdersDetail: 'your standing orders and whom they pay',
  ReadScheduledPaymentsBasic: 'your scheduled payments',
  ReadScheduledPaymentsDetail: 'your scheduled payments and whom they pay',
  ReadProducts: 'what kind of account each one is',
  ReadParty: 'the name, address, email and phone number of each account holder',
  ReadPartyPSU: 'your name, address, email and phone number',
  ReadBeneficiariesBasic: 'whom you have paid',
  ReadBeneficiariesDetail: 'whom you have paid and their account numbers',
  ReadDirectDebits: 'who may take payments from your accounts (your mandates)',
  ReadStatementsBasic: 'the dates of your monthly statements',
  ReadStatementsDetail: 'your monthly statements',
  ReadOffers: 'offers the bank makes you',
};

// Limits count calendar periods in UTC, as the mandate's service does (src/mandates/periods.ts).
const PERIOD_WORDS: Readonly<Record<string, string>> = {
  day: 'a day (UTC)',
  week: 'a week (Monday to Sunday, UTC)',
  month: 'a calendar month (UTC)',
};
const MANDATE_WORDS = 'Take payments from your account without asking you each time';

/** A mandate's terms as the customer reads them: who is paid, the most it may take, and until when. */
function mandateTerms(consent: Consent): string[] {
  const d = consent.details as {
    currency?: string;
    maxPerCharge?: string;
    periodicLimits?: { period: string; maxAmount: string }[];
    creditor?: { name: string; iban: string };
  };
  return [
    `paid to ${d.creditor?.name} (${d.creditor?.iban})`,
    `at most ${d.maxPerCharge} ${d.currency} a payment`,
    ...(d.periodicLimits ?? []).map(
      (limit) => `at most ${limit.maxAmount} ${d.currency} ${PERIOD_WORDS[limit.period] ?? limit.period}`,
    ),
    `until ${consent.expiresAt.toISOString().slice(0, 10)}`,
  ];
}

const EVERY: Readonly<Record<string, string>> = {
  daily: 'day',
  weekly: 'week',
  monthly: 'month',
  yearly: 'year',
};

/** A scheduled payment's date, or a standing order's dates (src/payments/orders.ts): when money will leave. */
function scheduleWords(s: {
  firstDate: string;
  frequency: string | null;
  lastDate: string | null;
  count: number | null;
}) {
  if (s.frequency === null) return `once, on ${s.firstDate}`;
  const ends = [
    ...(s.count === null ? [] : [`${s.count} times`]),
    ...(s.lastDate === null ? [] : [`until ${s.lastDate}`]),
  ];
  return `every ${EVERY[s.frequency] ?? s.frequency} from ${s.firstDate}${ends.length > 0 ? `, ${ends.join(' at most, ')}` : ', until you cancel it'}`;
}

/** What a consent lets the app do, in the customer's words (dynamic linking: the exact payment is shown). */
function consentWords(consent: Consent): string {
  const d = consent.details as {
    permissions?: string[];
    obPermissions?: string[];
    instructedAmount?: { amount: string; currency: string };
    creditor?: { name: string; iban: string };
    reference?: string;
    schedule?: { firstDate: string; frequency: string | null; lastDate: string | null; count: number | null };
    fxFee?: { amount: string; currency: string };
    buyCurrency?: string;
  };
  if (consent.type === 'account_information') {
    const words = [
      ...(d.permissions ?? []).map((p) => PERMISSION_WORDS[p] ?? p),
      ...(d.obPermissions ?? []).flatMap((p) => OPEN_BANKING_WORDS[p] ?? []),
    ];
    return `See ${words.join(', ')}`;
  }
  if (consent.type === 'payment_initiation' && d.instructedAmount && d.creditor) {
    const reference = d.reference ? `, reference "${d.reference}"` : '';
    // Paid abroad in another currency (src/standards/uk-ob/pisp-international.ts): the fee is debited too.
    const converted = d.fxFee
      ? ` in ${d.buyCurrency ?? 'another currency'}, plus a fee of ${d.fxFee.amount} ${d.fxFee.currency},`
      : '';
    return `Pay ${d.instructedAmount.amount} ${d.instructedAmount.currency}${converted} to ${d.creditor.name} (${d.creditor.iban})${reference}, ${d.schedule ? scheduleWords(d.schedule) : 'once'}`;
  }
  if (consent.type === 'mandate') return `${MANDATE_WORDS}: ${mandateTerms(consent).join(', ')}`;
  return 'Check whether your account can cover an amount (yes or no only)';
}

export function consentPage(options: {
  uid: string;
  appName: string;
  scopes: readonly string[];
  consents: readonly Consent[];
  /** The accounts the customer may choose for the consents (empty when no consent is requested). */
  accounts: readonly BankAccount[];
  validity: string;
}): string {
  const single = options.consents.some((consent) => consent.type !== 'account_information');
  const choices = options.accounts
    .map(
      (account, index) =>
        `<label class="choice"><input type="${single ? 'radio' : 'checkbox'}" name="account" value="${escapeHtml(account.id)}"${index === 0 && single ? ' checked' : ''}${single ? ' required' : ''}> ${escapeHtml(account.name)} · ${escapeHtml(account.currency)} · ${escapeHtml(maskIban(account.iban))}</label>`,
    )
    .join('');
  const accountPicker =
    options.consents.length === 0
      ? ''
      : options.accounts.length === 0
        ? '<p class="error" role="alert">You have no account this can apply to.</p>'
        : `<fieldset><legend>${single ? 'Pay from' : 'Share these accounts'}</legend>${choices}</fieldset>`;
  // A scope its consent already describes is not listed twice; any other scope is listed, since it grants
  // access of its own (a plain `accounts` scope beside a payment consent reads every account).
  const described = new Set(options.consents.map((consent) => SCOPE_OF[consent.type]));
  const items = [
    ...options.consents.map((consent) =>
      consent.type === 'mandate'
        ? `<li>${escapeHtml(MANDATE_WORDS)}:<ul>${mandateTerms(consent)
            .map((term) => `<li>${escapeHtml(term)}</li>`)
            .join('')}</ul></li>`
        : `<li>${escapeHtml(consentWords(consent))}</li>`,
    ),
    ...options.scopes
      .filter((scope) => !described.has(scope))
      .map((scope) => `<li>${escapeHtml(SCOPE_WORDS[scope] ?? scope)}</li>`),
  ].join('');
  return page(
    'Allow access',
    `<h1>${escapeHtml(options.appName)} asks to:</h1>
<ul>${items}</ul>
<p>For ${escapeHtml(options.validity)}. You can revoke this at any time.</p>
<form method="post" action="/interaction/${escapeHtml(options.uid)}/confirm">
  ${accountPicker}
  <button type="submit" name="decision" value="approve"${options.consents.length > 0 && options.accounts.length === 0 ? ' disabled' : ''}>Allow</button>
  <button type="submit" name="decision" value="reject" class="secondary">Deny</button>
</form>`,
  );
}

export function errorPage(message: string): string {
  return page(
    'Something went wrong',
    `<h1>This sign-in cannot continue</h1><p role="alert">${escapeHtml(message)}</p>`,
  );
}

const STATUS_WORDS: Readonly<Record<string, string>> = {
  awaiting_authorisation: 'Waiting for you',
  authorised: 'Active',
  rejected: 'Declined',
  revoked: 'Revoked',
  expired: 'Expired',
  consumed: 'Used',
};

/** The customer's consents, each active one with a button to revoke it. */
export function myConsentsPage(consents: readonly (Consent & { appName: string })[]): string {
  const rows = consents
    .map((consent) => {
      const revoke =
        consent.status === 'authorised'
          ? `<form method="post" action="/me/consents/${escapeHtml(consent.id)}/revoke"><button type="submit" class="secondary">Revoke</button></form>`
          : '';
      return `<li><strong>${escapeHtml(consent.appName)}</strong>: ${escapeHtml(consentWords(consent))}.
  ${escapeHtml(STATUS_WORDS[consent.status] ?? consent.status)}, until ${escapeHtml(consent.expiresAt.toISOString().slice(0, 10))}.${revoke}</li>`;
    })
    .join('');
  return page(
    'Your consents',
    `<p><a href="/me/accounts">Your accounts</a></p>
<h1>Apps you allowed</h1>${rows ? `<ul>${rows}</ul>` : '<p>You have not allowed any app yet.</p>'}
<form method="post" action="/me/sign-out"><button type="submit" class="secondary">Sign out</button></form>`,
  );
}
