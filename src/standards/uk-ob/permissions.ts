// UK Open Banking v4.0 account-access permissions onto the bank's own account-information consent
// (src/consents/): what we can honour maps onto `details`, `balances` and `transactions` where the bank has
// an equivalent, or is kept with the consent's OB terms only (beneficiaries, direct debits, standing orders,
// scheduled payments, statements, offers, product, party); what we cannot (ReadPAN: the bank issues no
// cards) is refused when the consent is created, never silently dropped, so a third party never holds a
// consent that promises more than it gets. Beneficiaries stay with the OB terms, which the facade checks
// itself: the bank keeps no saved payees, and both APIs list whom the customer paid.
import type { ACCOUNT_PERMISSIONS } from '../../consents/routes.ts';

type OurPermission = (typeof ACCOUNT_PERMISSIONS)[number];

// OBReadConsent1.Data.Permissions, in the specification's order.
export const OB_PERMISSIONS = [
  'ReadAccountsBasic',
  'ReadAccountsDetail',
  'ReadBalances',
  'ReadBeneficiariesBasic',
  'ReadBeneficiariesDetail',
  'ReadDirectDebits',
  'ReadOffers',
  'ReadPAN',
  'ReadParty',
  'ReadPartyPSU',
  'ReadProducts',
  'ReadScheduledPaymentsBasic',
  'ReadScheduledPaymentsDetail',
  'ReadStandingOrdersBasic',
  'ReadStandingOrdersDetail',
  'ReadStatementsBasic',
  'ReadStatementsDetail',
  'ReadTransactionsBasic',
  'ReadTransactionsCredits',
  'ReadTransactionsDebits',
  'ReadTransactionsDetail',
] as const;
export type ObPermission = (typeof OB_PERMISSIONS)[number];

const HONOURED: ReadonlySet<ObPermission> = new Set([
  'ReadAccountsBasic',
  'ReadAccountsDetail',
  'ReadBalances',
  'ReadTransactionsBasic',
  'ReadTransactionsDetail',
  'ReadTransactionsCredits',
  'ReadTransactionsDebits',
  'ReadStandingOrdersBasic',
  'ReadStandingOrdersDetail',
  'ReadScheduledPaymentsBasic',
  'ReadScheduledPaymentsDetail',
  'ReadProducts',
  'ReadParty',
  'ReadPartyPSU',
  'ReadBeneficiariesBasic',
  'ReadBeneficiariesDetail',
  'ReadDirectDebits',
  'ReadStatementsBasic',
  'ReadStatementsDetail',
  // Honoured with the truth: the bank makes no offers, so the list is empty (a gap in the conformance table).
  'ReadOffers',
]);

export type PermissionCheck =
  | { ok: true; permissions: ObPermission[]; ours: OurPermission[] }
  | { ok: false; message: string };

/** The consent's permissions checked against what the bank honours, and the bank's own equivalents. */
export function mapPermissions(requested: readonly ObPermission[]): PermissionCheck {
  const permissions = OB_PERMISSIONS.filter((permission) => requested.includes(permission));
  const refused = permissions.filter((permission) => !HONOURED.has(permission));
  if (refused.length > 0) return { ok: false, message: `not offered by this bank: ${refused.join(', ')}` };
  const has = (permission: ObPermission) => permissions.includes(permission);
  const level = has('ReadTransactionsBasic') || has('ReadTransactionsDetail');
  const direction = has('ReadTransactionsCredits') || has('ReadTransactionsDebits');
  // Account and Transaction API: transactions are read at a level (Basic or Detail) in a direction
  // (Credits and/or Debits); one without the other grants nothing.
  if (level !== direction) {
    return {
      ok: false,
      message:
        'ReadTransactionsBasic or ReadTransactionsDetail must come with ReadTransactionsCredits or ReadTransactionsDebits',
    };
  }
  const ours: OurPermission[] = [];
  if (has('ReadAccountsDetail')) ours.push('details');
  if (has('ReadBalances')) ours.push('balances');
  if (level) ours.push('transactions');
  return { ok: true, permissions, ours };
}
