import type { Minor, ParsedAmount } from '../money.ts';

export type NormalBalance = 'debit' | 'credit';
export type TransferStatus = 'posted' | 'pending' | 'voided' | 'expired';

export interface Account {
  readonly id: string;
  readonly currency: string;
  readonly exponent: number;
  readonly normalBalance: NormalBalance;
  readonly allowOverdraft: boolean;
  readonly code: string | null;
  readonly metadata: Record<string, unknown>;
  readonly debitsPosted: Minor;
  readonly creditsPosted: Minor;
  readonly debitsPending: Minor;
  readonly creditsPending: Minor;
  readonly version: bigint;
  readonly createdAt: Date;
}

/** What an operator asks for; the exponent comes from the currency. */
export interface NewAccountRequest {
  readonly currency: string;
  readonly exponent: number;
  readonly normalBalance: NormalBalance;
  readonly allowOverdraft: boolean;
  readonly code: string | null;
  readonly metadata: Record<string, unknown>;
}

export interface Balances {
  readonly posted: bigint;
  readonly pending: bigint;
  readonly available: bigint;
}

/**
 * Balances on the account's normal side. `pending` is the net of reservations; `available` is what may
 * still leave the account: posted minus reserved outflows (pending inflows are not money yet).
 */
export function balancesOf(account: Account): Balances {
  const credit = account.normalBalance === 'credit';
  const posted = credit
    ? account.creditsPosted - account.debitsPosted
    : account.debitsPosted - account.creditsPosted;
  const pending = credit
    ? account.creditsPending - account.debitsPending
    : account.debitsPending - account.creditsPending;
  const available = posted - (credit ? account.debitsPending : account.creditsPending);
  return { posted, pending, available };
}

export interface Entry {
  readonly seq: bigint;
  readonly transferId: string;
  readonly side: NormalBalance;
  readonly amount: Minor;
  /** The account's posted balance on its normal side after this entry. */
  readonly balance: bigint;
  readonly createdAt: Date;
}

/** What an account statement shows of an entry: the entry, and what its transfer says about it. */
export interface EntryDetail extends Entry {
  readonly transferMetadata: Record<string, unknown>;
  /** The accounts on the other side of this account's postings in the transfer. */
  readonly counterpartAccountIds: readonly string[];
}

export interface EntryFilter {
  readonly from?: Date | undefined;
  /** Exclusive. */
  readonly to?: Date | undefined;
  readonly minAmount?: bigint | undefined;
  readonly maxAmount?: bigint | undefined;
  readonly side?: NormalBalance | undefined;
}

export interface Posting {
  readonly debitAccountId: string;
  readonly creditAccountId: string;
  readonly amount: Minor;
  readonly exponent: number;
}

export interface Transfer {
  readonly id: string;
  readonly status: TransferStatus;
  readonly postings: readonly Posting[];
  /** Set when a pending single-posting transfer was posted for less than its amount. */
  readonly postedAmount: Minor | null;
  readonly expiresAt: Date | null;
  readonly metadata: Record<string, unknown>;
  readonly createdAt: Date;
  readonly resolvedAt: Date | null;
}

export interface PostingRequest {
  readonly debitAccountId: string;
  readonly creditAccountId: string;
  readonly amount: ParsedAmount;
}

export interface TransferRequest {
  readonly postings: readonly PostingRequest[];
  readonly pending: boolean;
  readonly expiresAt: Date | null;
  readonly metadata: Record<string, unknown>;
}

/** Outcomes the ledger function decides, in the order it checks them. */
export type LedgerErrorCode =
  | 'idempotency_key_reused'
  | 'account_not_found'
  | 'currency_mismatch'
  | 'amount_scale_mismatch'
  | 'balance_overflow'
  | 'insufficient_funds'
  | 'transfer_not_found'
  | 'transfer_already_posted'
  | 'transfer_already_voided'
  | 'transfer_expired'
  | 'transfer_not_expired'
  | 'partial_post_requires_single_posting'
  | 'amount_exceeds_pending'
  | 'batch_aborted';

export type LedgerResult =
  | { readonly ok: true; readonly replayed: boolean; readonly transfer: Transfer }
  | { readonly ok: false; readonly code: LedgerErrorCode; readonly posting?: number };
