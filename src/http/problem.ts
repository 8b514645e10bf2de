import type { ErrorRequestHandler, Response } from 'express';
import { AppError, type ErrorCode, type FieldError } from '../errors.js';
import { mapDbError } from '../db/errors.js';
import type { Logger } from '../logger.js';
import './context.js';

const TITLES: Partial<Record<ErrorCode, string>> = {
  validation_failed: 'Request validation failed',
  invalid_amount: 'Invalid amount',
  url_not_allowed: 'URL not allowed',
  invalid_string: 'Invalid string',
  credentials_in_query: 'Credentials outside the Authorization header',
  unauthenticated: 'Authentication required',
  invalid_credentials: 'Sign-in failed',
  session_expired: 'Session ended',
  csrf_failed: 'CSRF token missing or wrong',
  forbidden: 'Forbidden',
  not_found: 'Not found',
  route_not_found: 'No such route',
  payment_denied: 'Payment denied',
  payload_too_large: 'Payload too large',
  unsupported_media_type: 'Unsupported media type',
  rate_limited: 'Too many requests',
  service_unavailable: 'Service unavailable',
  internal_error: 'Internal error',
};

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  request_id: string;
  param?: string;
  errors?: FieldError[];
  [extra: string]: unknown;
}

export function problemBody(err: AppError, requestId: string): ProblemBody {
  const body: ProblemBody = {
    type: `urn:dcb-gateway:problem:${err.code}`,
    title: TITLES[err.code] ?? humanize(err.code),
    status: err.status,
    detail: err.message,
    code: err.code,
    request_id: requestId,
  };
  if (err.param !== undefined) body.param = err.param;
  if (err.errors !== undefined) body.errors = err.errors;
  if (err.extra) Object.assign(body, err.extra);
  return body;
}

/** Sends an already-serialized problem (used by idempotent replays, byte for byte). */
export function sendProblem(res: Response, err: AppError, requestId: string): void {
  if (err.headers) for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res
    .status(err.status)
    .type('application/problem+json')
    .send(JSON.stringify(problemBody(err, requestId)));
}

function humanize(code: string): string {
  const text = code.replace(/_/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

interface ValidatorError {
  status?: number;
  message?: string;
  errors?: { path?: string; message?: string; errorCode?: string }[];
  type?: string;
  expose?: boolean;
}

/**
 * The request fields the contract declares as amounts (`Amount`, `NullableAmount`, the amount
 * pattern); test/amounts.test.ts checks this list against openapi.yaml. A validator error on
 * one of them — a JSON number, a non-canonical spelling — is `invalid_amount` (SPEC §3, §10).
 */
const AMOUNT_FIELDS = [
  'amount',
  'amount_gte',
  'amount_lte',
  'credit_limit',
  'otp_threshold',
  ...['prepaid', 'postpaid'].flatMap((funding) =>
    ['per_transaction_max', 'daily_max', 'monthly_max'].map((max) => `limits.${funding}.${max}`),
  ),
];

export function isAmountField(path: string): boolean {
  return AMOUNT_FIELDS.some((field) => path === field || path.endsWith(`.${field}`));
}

/** A validator JSON pointer (`/body/limits/prepaid/daily_max`) as a dotted field path. */
function fieldPath(pointer: string): string {
  const m = /^[./]?(body|query|params|headers)(?:[./](.*))?$/.exec(pointer);
  if (!m) return pointer;
  const rest = (m[2] ?? '').replace(/\//g, '.').replace(/~1/g, '/').replace(/~0/g, '~');
  return rest ? `${m[1]}.${rest.replace(/\.$/, '')}` : (m[1] ?? pointer);
}

/** Turns anything thrown into the closed set of AppErrors. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as ValidatorError;
  // body-parser
  if (e.type === 'entity.too.large') {
    return new AppError('payload_too_large', 'The request body exceeds the allowed size.');
  }
  if (e.type === 'entity.parse.failed') {
    return new AppError('invalid_json', 'The request body is not valid JSON.');
  }
  if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') {
    return new AppError('unsupported_media_type', 'The request body encoding is not supported.');
  }
  // express-openapi-validator
  if (typeof e.status === 'number' && Array.isArray(e.errors)) {
    const errors: FieldError[] = e.errors.map((x) => ({
      path: fieldPath(x.path ?? ''),
      message: x.message ?? 'invalid',
    }));
    switch (e.status) {
      case 400: {
        // A malformed amount is invalid_amount; a missing one is an ordinary validation failure.
        const amount = errors.find(
          (x, i) =>
            isAmountField(x.path) && !(e.errors?.[i]?.errorCode ?? '').startsWith('required'),
        );
        if (amount) {
          const param = amount.path.replace(/^(body|query)\./, '');
          return new AppError(
            'invalid_amount',
            `${param} must be a canonical decimal string such as "15000" or "12.50" (no sign, ` +
              `exponent, spaces or leading zeros), not a JSON number: ${amount.message}.`,
            { param, errors },
          );
        }
        return new AppError('validation_failed', summarize(errors, e.message), { errors });
      }
      case 404:
        return new AppError('route_not_found', 'No such route.');
      case 405:
        return new AppError('method_not_allowed', 'This method is not allowed on this route.');
      case 413:
        return new AppError('payload_too_large', 'The request body exceeds the allowed size.');
      case 415:
        return new AppError('unsupported_media_type', 'Send the body as application/json.');
      case 406:
        return new AppError('not_acceptable', 'The requested representation is not available.');
      default:
        if (e.status >= 500) {
          return new AppError(
            'internal_error',
            `Response did not match the contract: ${e.message ?? ''}`,
            {
              cause: err,
            },
          );
        }
        return new AppError('bad_request', e.message ?? 'Bad request.', { errors });
    }
  }
  return mapDbError(err);
}

function summarize(errors: FieldError[], fallback?: string): string {
  const first = errors[0];
  if (!first) return fallback ?? 'The request is invalid.';
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
  return `${first.path ? `${first.path}: ` : ''}${first.message}${more}`;
}

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const appError = toAppError(err);
    if (appError.status >= 500) {
      logger.error({ err: appError.cause ?? err, request_id: req.requestId }, appError.message);
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    sendProblem(res, appError, req.requestId ?? 'unknown');
  };
}
