/**
 * The one error type of the gateway. Every failure a client can see is an AppError with a
 * code from the closed list below; the HTTP layer maps it to RFC 9457 problem+json.
 */
export const ERROR_STATUS = {
  // 400
  bad_request: 400,
  validation_failed: 400,
  invalid_amount: 400,
  invalid_string: 400,
  credentials_in_query: 400,
  unsupported_currency: 400,
  invalid_json: 400,
  invalid_cursor: 400,
  idempotency_key_missing: 400,
  idempotency_key_invalid: 400,
  /** An outbound URL (webhook, carrier SMS) that leads to a non-public address or scheme. */
  url_not_allowed: 400,
  setup_token_invalid: 400,
  // 401 / 402 / 403 / 404
  unauthenticated: 401,
  invalid_credentials: 401,
  session_expired: 401,
  second_factor_required: 401,
  second_factor_invalid: 401,
  payment_denied: 402,
  forbidden: 403,
  csrf_failed: 403,
  merchant_suspended: 403,
  /** The action must be taken by a person (an operator's key or session), not a machine key. */
  operator_required: 403,
  not_found: 404,
  route_not_found: 404,
  subscriber_not_found: 404,
  method_not_allowed: 405,
  not_acceptable: 406,
  // 409
  conflict: 409,
  already_exists: 409,
  invalid_state: 409,
  refund_exceeds_charge: 409,
  account_floor_exceeded: 409,
  msisdn_held_elsewhere: 409,
  idempotency_request_in_progress: 409,
  // 413 / 415 / 422 / 429
  payload_too_large: 413,
  headers_too_large: 431,
  unsupported_media_type: 415,
  idempotency_key_reused: 422,
  currency_mismatch: 422,
  otp_invalid: 422,
  password_rejected: 422,
  unprocessable: 422,
  rate_limited: 429,
  // 5xx
  internal_error: 500,
  service_unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface FieldError {
  path: string;
  message: string;
}

export interface AppErrorOptions {
  param?: string;
  errors?: FieldError[];
  /** Extra members placed on the problem body (e.g. charge_id, attempts_remaining). */
  extra?: Record<string, unknown>;
  /** Extra response headers (e.g. Retry-After). */
  headers?: Record<string, string>;
  cause?: unknown;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly param?: string;
  readonly errors?: FieldError[];
  readonly extra?: Record<string, unknown>;
  readonly headers?: Record<string, string>;

  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.param = options.param;
    this.errors = options.errors;
    this.extra = options.extra;
    this.headers = options.headers;
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}
