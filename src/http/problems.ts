// Every error the API can answer with, by stable code. docs/errors.md documents the same set; a test keeps
// the two equal. Codes never change meaning once published: clients branch on them, not on titles.

export const PROBLEMS = {
  // Request shape (RFC 9110 §15.5)
  validation_failed: { status: 400, title: 'The request does not match its schema' },
  malformed_json: { status: 400, title: 'The request body is not valid JSON' },
  malformed_request: { status: 400, title: 'The request is not well-formed HTTP' },
  request_timeout: { status: 408, title: 'The request did not arrive in time' },
  uri_too_long: { status: 414, title: 'A path segment of the request is too long' },
  headers_too_large: { status: 431, title: 'The request headers are too large' },
  invalid_cursor: { status: 400, title: 'The pagination cursor is not valid' },
  unsupported_media_type: { status: 415, title: 'The request body must be application/json' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  route_not_found: { status: 404, title: 'No such route' },
  method_not_allowed: { status: 405, title: 'The route does not take this method' },
  unauthorized: { status: 401, title: 'A valid bearer token is required' },
  internal_error: { status: 500, title: 'Internal error' },
  service_unavailable: { status: 503, title: 'The service is not ready' },
  // Idempotency (draft-ietf-httpapi-idempotency-key-header)
  idempotency_key_missing: { status: 400, title: 'This request requires an Idempotency-Key header' },
  idempotency_key_invalid: { status: 400, title: 'The Idempotency-Key header is not valid' },
  idempotency_key_reused: {
    status: 422,
    title: 'The Idempotency-Key was already used for a different request',
  },
  idempotency_key_in_flight: {
    status: 409,
    title: 'A request with this Idempotency-Key is still in progress',
  },
  // Access tokens (RFC 6750 §3.1, RFC 9449 §7.1)
  invalid_token: { status: 401, title: 'The access token is missing, expired, revoked or not valid here' },
  invalid_dpop_proof: { status: 401, title: 'The DPoP proof is missing or does not match this request' },
  insufficient_scope: { status: 403, title: 'The access token does not cover this operation' },
  // Gateway: plans and limits
  no_subscription: { status: 403, title: 'The app is not subscribed to a plan' },
  subscription_pending: { status: 403, title: "The app's subscription awaits an operator's approval" },
  product_not_in_plan: { status: 403, title: "This API product is not in the app's plan" },
  rate_limited: { status: 429, title: 'Too many requests; retry after the time given' },
  quota_exceeded: { status: 429, title: "The app's daily quota is used up" },
  unknown_product: { status: 400, title: 'A plan names a product that does not exist' },
  // Consents
  consent_not_active: { status: 409, title: 'The consent is not awaiting authorisation or authorised' },
  // Developers and apps
  email_taken: { status: 409, title: 'A developer with this email already exists' },
  invalid_credentials: { status: 401, title: 'The email or password is wrong' },
  invalid_redirect_uri: { status: 400, title: 'A redirect URI is not allowed' },
  invalid_client_keys: {
    status: 400,
    title: 'The JWKS is missing, private or not usable for private_key_jwt',
  },
  auth_method_not_allowed: {
    status: 400,
    title: 'This client authentication method is not allowed in this mode',
  },
  scope_not_available: { status: 400, title: 'A requested scope is not offered' },
  app_suspended: { status: 409, title: 'The app is suspended' },
  // Webhooks
  invalid_webhook_url: { status: 400, title: 'The webhook URL is not allowed' },
  webhook_endpoint_limit_reached: { status: 409, title: 'The app has as many webhook endpoints as allowed' },
  webhook_endpoint_disabled: { status: 409, title: 'The webhook endpoint is disabled' },
  // Account opening and accounts
  application_invalid: { status: 422, title: 'A field of the application is not valid' },
  document_rejected: { status: 422, title: 'An uploaded document is not an accepted PDF, JPEG or PNG' },
  currency_not_offered: { status: 422, title: 'The bank does not open accounts in this currency' },
  review_not_pending: { status: 409, title: 'The application is not waiting for review' },
  review_not_claimed: { status: 409, title: 'Claim the application before deciding it' },
  review_claimed_by_another: { status: 409, title: 'Another reviewer has claimed the application' },
  permission_not_granted: { status: 403, title: 'The consent does not grant this permission' },
  account_closed: { status: 409, title: 'The account is closed' },
  balance_not_zero: {
    status: 409,
    title: 'Only an account with a zero balance and nothing pending can close',
  },
  statement_too_large: { status: 422, title: 'The month has too many movements for one statement' },
  // Payments
  consent_mismatch: { status: 422, title: 'The payment differs from what the customer authorised' },
  invalid_creditor_iban: { status: 422, title: "The creditor's IBAN is not valid" },
  same_account: { status: 422, title: 'A payment cannot go to the account it is paid from' },
  invalid_schedule: { status: 422, title: 'The schedule is not one the bank can run' },
  order_not_active: { status: 409, title: 'The order is already completed or cancelled' },
  payment_not_awaiting_sca: { status: 409, title: 'The payment is not waiting for confirmation' },
  one_time_code_invalid: { status: 403, title: 'The one-time code is wrong or already used' },
  one_time_code_locked: { status: 429, title: 'Too many wrong codes; confirmation is locked for a while' },
  payment_not_returnable: {
    status: 409,
    title: 'Only an accepted or settled payment to another bank can be returned',
  },
  // Batch payouts
  payouts_business_only: { status: 403, title: 'Batch payouts are for business customers' },
  payout_file_invalid: { status: 422, title: 'The payout file cannot be read as a whole' },
  payout_batch_too_large: { status: 422, title: 'The payout file has more transfers than a batch carries' },
  payout_batch_invalid: {
    status: 422,
    title: 'Lines of the payout file failed their checks; nothing will move',
  },
  payout_approver_is_uploader: {
    status: 403,
    title: 'A batch is approved by another user of the business than the one who uploaded it',
  },
  payout_batch_not_approvable: { status: 409, title: 'The payout batch is not awaiting approval' },
  payout_batch_not_cancellable: { status: 409, title: 'The payout batch has started or ended' },
  debtor_account_not_active: { status: 409, title: 'The account to pay from is frozen or closed' },
  // Fraud screening
  fraud_case_resolved: { status: 409, title: 'The fraud case is already resolved' },
  fraud_case_not_claimed: { status: 409, title: 'Claim the fraud case before resolving it' },
  fraud_case_claimed_by_another: { status: 409, title: 'Another operator has claimed the fraud case' },
  // Mandates (auto-debit)
  creditor_not_at_this_bank: {
    status: 422,
    title: "A mandate's creditor must be an active account at this bank in the mandate's currency",
  },
  mandate_not_active: { status: 409, title: 'The mandate is not authorised, or has ended' },
  mandate_limit_exceeded: { status: 422, title: "The charge would exceed one of the mandate's limits" },
  charge_not_refundable: { status: 409, title: 'Only a succeeded charge can be refunded' },
  refund_exceeds_charge: { status: 422, title: 'The refund exceeds what is left of the charge' },
  refund_limit_reached: { status: 409, title: 'The charge has as many refunds as allowed' },
  // FX and cross-border payments
  currency_pair_not_quoted: { status: 422, title: 'The rate source has no rate for this currency pair' },
  quote_amount_out_of_range: {
    status: 422,
    title: 'The amount converts to less than one minor unit, or more than an account can hold',
  },
  quote_mismatch: { status: 422, title: 'The payment or conversion does not match the FX quote' },
  quote_expired: { status: 422, title: "The FX quote's rate lock has ended; ask for a new quote" },
  quote_already_used: { status: 409, title: 'The FX quote was already used' },
  // Loyalty points
  points_not_accepted: { status: 422, title: 'Points do not pay for this payment' },
  points_value_not_whole: {
    status: 422,
    title: 'At the redemption rate, the points are not worth a whole number of minor units',
  },
  points_exceed_amount: { status: 422, title: 'The points are worth more than the amount' },
  insufficient_points: { status: 422, title: 'The account has fewer points than offered' },
  // Ledger
  not_found: { status: 404, title: 'No such resource' },
  unsupported_currency: { status: 400, title: 'The currency is not an active ISO 4217 currency' },
  amount_scale_mismatch: { status: 400, title: "The amount does not have the currency's number of decimals" },
  accounts_must_be_different: { status: 422, title: 'A posting cannot debit and credit the same account' },
  account_not_found: { status: 422, title: 'A posting names an account that does not exist' },
  currency_mismatch: { status: 422, title: 'A posting moves money between accounts in different currencies' },
  balance_overflow: { status: 422, title: 'The transfer would overflow an account balance' },
  insufficient_funds: { status: 422, title: 'The transfer would take an account below zero' },
  invalid_expiry: { status: 422, title: 'expiresAt must be in the future and within the allowed window' },
  transfer_not_found: { status: 404, title: 'No such transfer' },
  transfer_already_posted: { status: 409, title: 'The transfer is already posted' },
  transfer_already_voided: { status: 409, title: 'The transfer is already voided' },
  transfer_expired: { status: 409, title: 'The pending transfer has expired' },
  transfer_not_expired: { status: 409, title: 'The pending transfer has not reached its expiry' },
  partial_post_requires_single_posting: {
    status: 422,
    title: 'Only a transfer with one posting can be posted for a smaller amount',
  },
  amount_exceeds_pending: { status: 422, title: 'The amount to post exceeds the pending amount' },
  duplicate_key_in_batch: { status: 400, title: 'Two transfers in one batch share a key' },
  batch_failed: { status: 422, title: 'An atomic batch failed; nothing was written' },
  batch_aborted: { status: 422, title: 'Not written because another transfer in the atomic batch failed' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemCode = keyof typeof PROBLEMS;

export interface FieldError {
  /** JSON Pointer (RFC 6901) into the request part, e.g. `/body/postings/0/amount`. */
  readonly field: string;
  readonly message: string;
}

/** An expected failure on its way to becoming an `application/problem+json` response (RFC 9457). */
export class Problem extends Error {
  readonly code: ProblemCode;
  readonly status: number;
  readonly detail: string | undefined;
  readonly extensions: Readonly<Record<string, unknown>>;
  /** Response headers the problem needs, such as `WWW-Authenticate`. */
  headers: Readonly<Record<string, string>> = {};

  constructor(code: ProblemCode, detail?: string, extensions: Record<string, unknown> = {}) {
    super(detail ?? PROBLEMS[code].title);
    this.name = 'Problem';
    this.code = code;
    this.status = PROBLEMS[code].status;
    this.detail = detail;
    this.extensions = extensions;
  }

  toJSON(instance?: string): Record<string, unknown> {
    return problemBody(this.code, this.detail, instance, this.extensions);
  }
}

export function problemBody(
  code: ProblemCode,
  detail?: string,
  instance?: string,
  extensions: Readonly<Record<string, unknown>> = {},
): Record<string, unknown> {
  const { status, title } = PROBLEMS[code];
  return {
    type: `/problems/${code}`,
    title,
    status,
    code,
    ...(detail === undefined ? {} : { detail }),
    ...(instance === undefined ? {} : { instance }),
    ...extensions,
  };
}
