import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import type { SessionEndReason, SessionRow } from './sessions-types.js';

/** Who is at the other end of a session request (for the session row and audit events). */
export interface ClientInfo {
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
}

export interface SessionTimeouts {
  idleSeconds: number;
  absoluteSeconds: number;
  touchSeconds: number;
}

/** Session tokens and CSRF tokens: 256 random bits, base64url. */
export const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;
export const SETUP_TOKEN_SHAPE = /^[\x21-\x7e]{16,256}$/;
export const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();
export const newToken = () => randomBytes(32).toString('base64url');
/**
 * The CSRF token is derived from the session token, so GET /v1/session can hand it out again
 * while only hashes of both are stored; the cookie is HttpOnly, so a script learns it only from
 * a same-origin answer.
 */
export const csrfFor = (token: string) =>
  createHmac('sha256', token).update('dcb-session-csrf').digest('base64url');

/** `a***@example.com`: enough for an auditor to see a pattern, not the address. */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  if (at < 1) return '***';
  return `${email.charAt(0)}***${email.slice(at)}`;
}

const ENDED: Record<SessionEndReason | 'unknown', string> = {
  signed_out: 'The session was signed out.',
  idle: 'The session ended after a period without requests.',
  expired: 'The session reached its maximum lifetime.',
  suspended: 'The session ended: the operator is suspended.',
  password_set: 'The session ended: a new password was set.',
  unknown: 'The session is unknown.',
};

export function sessionEnded(reason: SessionEndReason | 'unknown'): AppError {
  return new AppError('session_expired', `${ENDED[reason]} Sign in again.`, { extra: { reason } });
}

export function assertCsrf(row: SessionRow, presented: string | undefined): void {
  const ok =
    presented !== undefined &&
    TOKEN_SHAPE.test(presented) &&
    timingSafeEqual(sha256(presented), row.csrf_token_hash);
  if (!ok) {
    throw new AppError(
      'csrf_failed',
      "Send this session's CSRF token (csrf_token of GET /v1/session) as X-CSRF-Token.",
    );
  }
}

export const sessionOperator = (row: SessionRow) => ({
  id: row.operator_id,
  role: row.role,
  owner_id: row.owner_id,
});

export function operatorActor(
  op: { id: string; role: Actor['type']; owner_id: string | null },
  client: ClientInfo,
): Actor {
  return {
    type: op.role,
    id: op.owner_id ?? op.id,
    apiKeyId: null,
    operatorId: op.id,
    ip: client.ip,
    requestId: client.requestId,
  };
}
