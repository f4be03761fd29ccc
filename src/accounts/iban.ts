// Account numbers as IBANs (ISO 13616) for the bank's country and bank code. The national part (BBAN) is
// the configured bank code followed by the account's serial number, zero-padded; ibantools computes the
// check digits and checks the BBAN against the country's registered format.
import { composeIBAN, getCountrySpecifications, isValidBBAN, isValidIBAN } from 'ibantools';

export interface BankIdentity {
  readonly name: string;
  /** ISO 3166 alpha-2 country whose IBAN format the bank's accounts use. */
  readonly country: string;
  /** The leading part of every BBAN: bank (and branch) code, e.g. GB `APIB400000` (bank + sort code). */
  readonly bankCode: string;
}

function serialDigits(bank: BankIdentity): number | undefined {
  const spec = getCountrySpecifications()[bank.country];
  if (!spec?.chars) return undefined;
  return spec.chars - 4 - bank.bankCode.length;
}

export function ibanFor(bank: BankIdentity, serial: bigint): string {
  const digits = serialDigits(bank) ?? 0;
  const bban = `${bank.bankCode}${serial.toString().padStart(digits, '0')}`;
  const iban = composeIBAN({ countryCode: bank.country, bban });
  // bankIdentityProblem() ran at start-up, so only an exhausted serial range gets here.
  if (!iban || serial.toString().length > digits) throw new Error(`no IBAN for serial ${serial}`);
  return iban;
}

/** Why this country and bank code cannot number accounts, or undefined when they can. */
export function bankIdentityProblem(bank: BankIdentity): string | undefined {
  const digits = serialDigits(bank);
  if (digits === undefined) return `${bank.country} has no IBAN format`;
  if (digits < 6) return `the bank code leaves ${digits} digits for account numbers; at least 6 are needed`;
  // Countries whose BBAN carries national check digits (FR, ES, BE, ...) would need them computed too.
  for (const serial of ['1', '9'.repeat(digits)]) {
    if (!isValidBBAN(`${bank.bankCode}${serial.padStart(digits, '0')}`, bank.country)) {
      return `"${bank.bankCode}" followed by a ${digits}-digit serial is not a valid ${bank.country} BBAN (countries with national check digits are not supported)`;
    }
  }
  return undefined;
}

export const isIban = (text: string) => isValidIBAN(text);

/** The electronic format (ISO 13616): no spaces, upper case. What is stored, compared and indexed. */
export const normaliseIban = (iban: string) => iban.replace(/\s+/g, '').toUpperCase();

/** `GB** **** **** **** **5678`: enough for the customer to recognise the account, no more. */
export function maskIban(iban: string): string {
  return `${iban.slice(0, 2)}${'*'.repeat(Math.max(0, iban.length - 6))}${iban.slice(-4)}`;
}
