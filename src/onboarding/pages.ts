// The bank's own account-opening page: a plain form (no JavaScript) with file uploads, for applicants who
// come to the bank directly. It feeds the same checks and the same KYC as partner applications.
import { escapeHtml, page } from '../customer-auth/pages.ts';
import type { FieldError } from '../http/problems.ts';
import { NATIONAL_ID_TYPES } from '../kyc/validators.ts';
import type { Application } from './service.ts';

export type OpenAccountForm = Readonly<Record<string, string | undefined>>;

const ID_TYPE_WORDS: Readonly<Record<string, string>> = {
  none: 'None of these',
  cn_resident_id: 'China resident identity card',
  uk_nino: 'UK National Insurance number',
  us_ssn: 'US Social Security number',
};

const LABELS: Readonly<Record<string, string>> = {
  legalName: 'Full legal name',
  dateOfBirth: 'Date of birth',
  nationality: 'Nationality (2-letter country code, e.g. GB)',
  nationalIdType: 'National identity number',
  nationalIdNumber: 'Number',
  addressLine1: 'Address',
  addressLine2: 'Address, second line (optional)',
  city: 'Town or city',
  postCode: 'Postcode',
  country: 'Country of residence (2-letter code)',
  email: 'Email',
  phone: 'Mobile phone, with country code (+44…)',
  currency: 'Account currency',
  product: 'Account',
  password: 'Choose a password (at least 12 characters)',
  identityDocumentKind: 'Identity document',
  identityDocument: 'Its scan or photo (PDF, JPEG or PNG, up to 4 MB)',
  proofOfAddress: 'Proof of address (optional)',
  agree: 'Consent',
};

export function openAccountPage(options: {
  form: OpenAccountForm;
  errors: readonly FieldError[];
  currencies: readonly string[];
}): string {
  const { form, errors } = options;
  const errorOf = (name: string) => errors.find((error) => error.field === name);
  const described = (name: string) =>
    errorOf(name) ? ` aria-invalid="true" aria-describedby="${name}-error"` : '';
  const message = (name: string) => {
    const error = errorOf(name);
    return error
      ? `<p class="error" id="${name}-error">${escapeHtml(`${LABELS[name] ?? name} ${error.message}`)}</p>`
      : '';
  };
  const input = (name: string, attributes = '') =>
    `<label for="${name}">${escapeHtml(LABELS[name] ?? name)}</label>
  <input id="${name}" name="${name}" value="${escapeHtml(form[name] ?? '')}"${attributes}${described(name)}>${message(name)}`;
  const select = (name: string, choices: readonly [string, string][]) =>
    `<label for="${name}">${escapeHtml(LABELS[name] ?? name)}</label>
  <select id="${name}" name="${name}"${described(name)}>${choices
    .map(
      ([value, words]) =>
        `<option value="${escapeHtml(value)}"${form[name] === value ? ' selected' : ''}>${escapeHtml(words)}</option>`,
    )
    .join('')}</select>${message(name)}`;
  const summary =
    errors.length > 0
      ? `<div class="error" role="alert"><p>Please check ${errors.length === 1 ? 'this field' : `these ${errors.length} fields`}:</p><ul>${errors
          .map(
            (error) =>
              `<li><a href="#${escapeHtml(error.field)}">${escapeHtml(LABELS[error.field] ?? error.field)}</a></li>`,
          )
          .join('')}</ul></div>`
      : '';
  return page(
    'Open an account',
    `<h1>Open an account</h1>${summary}
<form method="post" action="/open-account" enctype="multipart/form-data">
  ${input('legalName', ' autocomplete="name" required maxlength="140"')}
  ${input('dateOfBirth', ' type="date" autocomplete="bday" required')}
  ${input('nationality', ' required pattern="[A-Z]{2}" maxlength="2"')}
  ${select('nationalIdType', [['none', ID_TYPE_WORDS.none as string], ...NATIONAL_ID_TYPES.map((type): [string, string] => [type, ID_TYPE_WORDS[type] ?? type])])}
  ${input('nationalIdNumber', ' maxlength="32"')}
  ${input('addressLine1', ' autocomplete="address-line1" required maxlength="70"')}
  ${input('addressLine2', ' autocomplete="address-line2" maxlength="70"')}
  ${input('city', ' autocomplete="address-level2" required maxlength="35"')}
  ${input('postCode', ' autocomplete="postal-code" required maxlength="16"')}
  ${input('country', ' autocomplete="country" required pattern="[A-Z]{2}" maxlength="2"')}
  ${input('email', ' type="email" autocomplete="email" required maxlength="254"')}
  ${input('phone', ' type="tel" autocomplete="tel" required maxlength="32"')}
  ${select('product', [
    ['current', 'Current account'],
    ['savings', 'Savings account'],
  ])}
  ${select(
    'currency',
    options.currencies.map((currency): [string, string] => [currency, currency]),
  )}
  <label for="password">${escapeHtml(LABELS.password as string)}</label>
  <input id="password" name="password" type="password" autocomplete="new-password" required minlength="12" maxlength="200"${described('password')}>${message('password')}
  ${select('identityDocumentKind', [
    ['passport', 'Passport'],
    ['national_id_card', 'Identity card'],
    ['driving_licence', 'Driving licence'],
  ])}
  <label for="identityDocument">${escapeHtml(LABELS.identityDocument as string)}</label>
  <input id="identityDocument" name="identityDocument" type="file" accept="application/pdf,image/jpeg,image/png"${described('identityDocument')}>${message('identityDocument')}
  <label for="proofOfAddress">${escapeHtml(LABELS.proofOfAddress as string)}</label>
  <input id="proofOfAddress" name="proofOfAddress" type="file" accept="application/pdf,image/jpeg,image/png"${described('proofOfAddress')}>${message('proofOfAddress')}
  <label class="choice"><input type="checkbox" name="agree" value="yes" required${described('agree')}> I agree that the bank checks my identity and screens my name against sanctions lists, and keeps what I send encrypted.</label>${message('agree')}
  <button type="submit">Apply</button>
</form>`,
  );
}

/** What the applicant sees after applying. The reasons a screening referred them are never shown. */
export function applicationOutcomePage(application: Application, username: string | undefined): string {
  if (application.status === 'approved') {
    return page(
      'Your account is open',
      `<h1>Your account is open</h1>
<p>Your customer number is <strong>${escapeHtml(username ?? '')}</strong>. Sign in with it and the password you chose.</p>
<p><a href="/me/consents">Sign in</a></p>`,
    );
  }
  if (application.status === 'in_review') {
    return page(
      'We are reviewing your application',
      `<h1>We are reviewing your application</h1>
<p>A member of our team will look at it and write to you. Your reference is <strong>${escapeHtml(application.id)}</strong>.</p>`,
    );
  }
  return page(
    'We cannot open an account',
    `<h1>We cannot open an account for you</h1>
<p>Your reference is <strong>${escapeHtml(application.id)}</strong>. If you think this is a mistake, contact us with it.</p>`,
  );
}
