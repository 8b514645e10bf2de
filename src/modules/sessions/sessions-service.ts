import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Pool } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import { SYSTEM_ACTOR, type Actor, type AuthContext } from '../../http/context.js';
import { newId } from '../../lib/ids.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import { rateLimitedError } from '../rate-limit/rate-limit-http.js';
import type { RateLimitService } from '../rate-limit/rate-limit-service.js';
import * as repo from './sessions-repo.js';
import { assertPasswordAcceptable, type PasswordHasher } from './sessions-password.js';
import { newTotpSecret, totpUri, verifyTotp } from './sessions-totp.js';
import {
  TOTP_REQUIRED_ROLES,
  type SessionEndReason,
  type SessionRow,
  type SessionView,
} from './sessions-types.js';

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

/** A session answer, with the token to set as the cookie when it is new. */
export interface SessionOutcome {
  view: SessionView;
  token?: string;
}

export interface TotpEnrolment {
  secret: string;
  otpauth_url: string;
  algorithm: 'SHA1';
  digits: 6;
  period: 30;
}

export interface SessionsService {
  setUpPassword(
    input: { token: string; password: string },
    client: ClientInfo,
  ): Promise<{ operator_id: string; email: string }>;
  signIn(input: { email: string; password: string }, client: ClientInfo): Promise<SessionOutcome>;
  current(token: string, client: ClientInfo): Promise<SessionView>;
  secondFactor(
    token: string,
    csrf: string | undefined,
    code: string,
    client: ClientInfo,
  ): Promise<SessionOutcome>;
  enrolTotp(token: string, csrf: string | undefined, client: ClientInfo): Promise<TotpEnrolment>;
  signOut(token: string, csrf: string | undefined, client: ClientInfo): Promise<void>;
  /**
   * The caller behind an active session cookie, for any API route; a state-changing method must
   * bring the session's CSRF token.
   */
  authenticate(
    token: string,
    method: string,
    csrf: string | undefined,
    client: ClientInfo,
  ): Promise<AuthContext>;
}

/** Session tokens and CSRF tokens: 256 random bits, base64url. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;
const SETUP_TOKEN_SHAPE = /^[\x21-\x7e]{16,256}$/;
const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();
const newToken = () => randomBytes(32).toString('base64url');
/**
 * The CSRF token is derived from the session token, so GET /v1/session can hand it out again
 * while only hashes of both are stored; the cookie is HttpOnly, so a script learns it only from
 * a same-origin answer.
 */
const csrfFor = (token: string) =>
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

function sessionEnded(reason: SessionEndReason | 'unknown'): AppError {
  return new AppError('session_expired', `${ENDED[reason]} Sign in again.`, { extra: { reason } });
}

function assertCsrf(row: SessionRow, presented: string | undefined): void {
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

const sessionOperator = (row: SessionRow) => ({
  id: row.operator_id,
  role: row.role,
  owner_id: row.owner_id,
});

function operatorActor(
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

export function createSessionsService(deps: {
  pool: Pool;
  rateLimits: RateLimitService;
  hasher: PasswordHasher;
  timeouts: SessionTimeouts;
  totpIssuer: string;
}): SessionsService {
  const { pool, rateLimits, hasher, timeouts } = deps;

  /** The live session of a token, or 401 session_expired (ending a lapsed one). */
  async function load(token: string, client?: ClientInfo): Promise<SessionRow> {
    if (!TOKEN_SHAPE.test(token)) throw sessionEnded('unknown');
    const row = await repo.findSessionByTokenHash(pool, sha256(token), timeouts);
    if (!row) throw sessionEnded('unknown');
    if (row.ended_reason !== null) throw sessionEnded(row.ended_reason);
    const reason = row.lapsed ?? (row.status === 'active' ? null : 'suspended');
    if (reason !== null) {
      await withTransaction(pool, async (tx) => {
        if (!(await repo.endSession(tx, row.id, reason))) return;
        // Nobody acted: the gateway noticed the end while answering a request.
        await insertAuditEvent(
          tx,
          {
            ...SYSTEM_ACTOR('sessions'),
            ip: client?.ip ?? null,
            requestId: client?.requestId ?? null,
          },
          {
            action: 'session.ended',
            objectType: 'session',
            objectId: row.id,
            summary: { reason, operator_id: row.operator_id },
          },
        );
      });
      throw sessionEnded(reason);
    }
    return row;
  }

  /** Counts the request as activity, at most once per touch interval. */
  async function touch(row: SessionRow): Promise<SessionRow> {
    if (!row.needs_touch) return row;
    const idle = await repo.touchSession(pool, row.id, timeouts.idleSeconds);
    return idle ? { ...row, idle_expires_at: idle, needs_touch: false } : row;
  }

  function toView(row: SessionRow, token: string): SessionView {
    return {
      object: 'session',
      id: row.id,
      stage: row.stage,
      operator_id: row.operator_id,
      email: row.email,
      name: row.name,
      role: row.role,
      owner_id: row.owner_id,
      totp_enabled: row.totp_enabled_at !== null,
      totp_required: TOTP_REQUIRED_ROLES.includes(row.role),
      expires_at: row.expires_at.toISOString(),
      idle_expires_at: row.idle_expires_at.toISOString(),
      csrf_token: csrfFor(token),
    };
  }

  async function viewOf(token: string, client?: ClientInfo): Promise<SessionView> {
    return toView(await touch(await load(token, client)), token);
  }

  return {
    async setUpPassword(input, client) {
      const invalid = new AppError(
        'setup_token_invalid',
        'The set-up link is unknown, used or expired: ask an admin for a new one.',
        { param: 'token' },
      );
      if (!SETUP_TOKEN_SHAPE.test(input.token)) throw invalid;
      const tokenHash = sha256(input.token);
      const op = await repo.findOperatorBySetupToken(pool, tokenHash);
      if (!op) throw invalid;
      assertPasswordAcceptable(input.password, op);
      // Hashed before the transaction: 0.4 s of scrypt must not hold a row lock.
      const passwordHash = await hasher.hash(input.password);
      await withTransaction(pool, async (tx) => {
        if (!(await repo.consumeSetupToken(tx, tokenHash, op.id, passwordHash))) throw invalid;
        const ended = await repo.endOperatorSessions(tx, op.id, 'password_set');
        await insertAuditEvent(tx, operatorActor(op, client), {
          action: 'operator.password_set',
          objectType: 'operator',
          objectId: op.id,
          summary: { sessions_ended: ended.length },
        });
      });
      return { operator_id: op.id, email: op.email };
    },

    async signIn(input, client) {
      const email = input.email.trim();
      const attempt = await rateLimits.signInAttempt(email, client.ip ?? 'unknown');
      if (attempt.refused) {
        throw rateLimitedError(
          attempt.refused,
          'Too many failed sign-ins for this email or from this address.',
        );
      }
      const op = await repo.findOperatorByEmail(pool, email);
      // The hash work is done for unknown emails too, so timing does not tell which exist.
      const checked = op?.password_hash
        ? await hasher.verify(input.password, op.password_hash)
        : { ok: await hasher.verifyNothing(input.password), rehash: false };
      if (!op || !checked.ok || op.status !== 'active') {
        const reason = !op
          ? 'unknown_email'
          : !op.password_hash
            ? 'no_password'
            : !checked.ok
              ? 'wrong_password'
              : 'suspended';
        const actor: Actor = op
          ? operatorActor(op, client)
          : {
              type: 'anonymous',
              id: null,
              apiKeyId: null,
              ip: client.ip,
              requestId: client.requestId,
            };
        await insertAuditEvent(pool, actor, {
          action: 'session.sign_in_failed',
          objectType: op ? 'operator' : 'email',
          objectId: op ? op.id : maskEmail(email),
          summary: { email: maskEmail(email), reason },
        });
        throw new AppError('invalid_credentials', 'The email or password is wrong.');
      }
      const needsTotp = TOTP_REQUIRED_ROLES.includes(op.role) || op.totp_enabled_at !== null;
      const token = newToken();
      const rehashed = checked.rehash ? await hasher.hash(input.password) : undefined;
      await withTransaction(pool, async (tx) => {
        if (rehashed) await repo.updatePasswordHash(tx, op.id, rehashed);
        const id = newId('ses');
        await repo.insertSession(tx, {
          id,
          tokenHash: sha256(token),
          operatorId: op.id,
          stage: needsTotp ? 'second_factor' : 'active',
          csrfTokenHash: sha256(csrfFor(token)),
          ip: client.ip,
          userAgent: client.userAgent?.slice(0, 512) ?? null,
          absoluteSeconds: timeouts.absoluteSeconds,
        });
        await insertAuditEvent(tx, operatorActor(op, client), {
          action: needsTotp ? 'session.password_accepted' : 'session.signed_in',
          objectType: 'session',
          objectId: id,
          summary: {
            second_factor: needsTotp ? 'pending' : 'none',
            rehashed: rehashed !== undefined,
          },
        });
      });
      await attempt.release();
      return { view: await viewOf(token, client), token };
    },

    current: viewOf,

    async secondFactor(token, csrf, code, client) {
      const row = await load(token, client);
      assertCsrf(row, csrf);
      if (row.stage === 'active' && row.totp_enabled_at !== null) {
        throw new AppError('invalid_state', 'This session has passed its second factor already.');
      }
      const secret = row.totp_secret;
      if (secret === null) {
        throw new AppError(
          'invalid_state',
          'No authenticator is enrolled: POST /v1/session/totp/enrol first.',
        );
      }
      const attempt = await rateLimits.secondFactorAttempt(row.operator_id);
      if (attempt.refused) {
        throw rateLimitedError(attempt.refused, 'Too many wrong one-time codes for this operator.');
      }
      const actor = operatorActor(sessionOperator(row), client);
      const step = await verifyTotp(secret, code);
      const fresh = row.stage === 'second_factor' ? newToken() : undefined;
      const outcome =
        step === undefined
          ? 'wrong_code'
          : await withTransaction(pool, async (tx) => {
              const locked = await repo.lockOperatorTotp(tx, row.operator_id);
              // The enrolment was replaced since the session was read: the code is for another secret.
              if (!locked || locked.totp_secret !== secret) return 'wrong_code';
              // One code, one use: a step at or before the last accepted one is a replay.
              if (locked.totp_last_step !== null && Number(locked.totp_last_step) >= step) {
                return 'replayed';
              }
              await repo.acceptTotpStep(tx, row.operator_id, step);
              if (locked.totp_enabled_at === null) {
                await insertAuditEvent(tx, actor, {
                  action: 'operator.totp_enrolled',
                  objectType: 'operator',
                  objectId: row.operator_id,
                });
              }
              if (fresh !== undefined) {
                if (
                  !(await repo.activateSession(tx, row.id, sha256(fresh), sha256(csrfFor(fresh))))
                ) {
                  throw sessionEnded('unknown');
                }
                await insertAuditEvent(tx, actor, {
                  action: 'session.signed_in',
                  objectType: 'session',
                  objectId: row.id,
                  summary: { second_factor: 'totp' },
                });
              }
              return 'accepted';
            });
      if (outcome !== 'accepted') {
        await insertAuditEvent(pool, actor, {
          action: 'session.second_factor_failed',
          objectType: 'session',
          objectId: row.id,
          summary: { reason: outcome },
        });
        throw new AppError(
          'second_factor_invalid',
          'The one-time code is wrong, expired or used.',
          {
            param: 'code',
          },
        );
      }
      await attempt.release();
      const current = fresh ?? token;
      return { view: toView(await touch(await load(current)), current), token: fresh };
    },

    async enrolTotp(token, csrf, client) {
      const row = await load(token, client);
      assertCsrf(row, csrf);
      const conflict = new AppError(
        'invalid_state',
        'This operator has an authenticator already; an admin can reset it.',
      );
      if (row.totp_enabled_at !== null) throw conflict;
      const secret = newTotpSecret();
      await withTransaction(pool, async (tx) => {
        if (!(await repo.startTotpEnrolment(tx, row.operator_id, secret))) throw conflict;
        await insertAuditEvent(tx, operatorActor(sessionOperator(row), client), {
          action: 'operator.totp_enrolment_started',
          objectType: 'operator',
          objectId: row.operator_id,
        });
      });
      await touch(row);
      return {
        secret,
        otpauth_url: totpUri(deps.totpIssuer, row.email, secret),
        algorithm: 'SHA1',
        digits: 6,
        period: 30,
      };
    },

    async signOut(token, csrf, client) {
      let row: SessionRow;
      try {
        row = await load(token, client);
      } catch (err) {
        // Already over: nothing to change, and the cookie is cleared all the same.
        if (err instanceof AppError && err.code === 'session_expired') return;
        throw err;
      }
      assertCsrf(row, csrf);
      await withTransaction(pool, async (tx) => {
        if (!(await repo.endSession(tx, row.id, 'signed_out'))) return;
        await insertAuditEvent(tx, operatorActor(sessionOperator(row), client), {
          action: 'session.signed_out',
          objectType: 'session',
          objectId: row.id,
        });
      });
    },

    async authenticate(token, method, csrf, client) {
      const row = await load(token, client);
      if (row.stage !== 'active') {
        throw new AppError(
          'second_factor_required',
          'This session awaits its one-time code: POST /v1/session/second-factor.',
        );
      }
      if (STATE_CHANGING.has(method.toUpperCase())) assertCsrf(row, csrf);
      await touch(row);
      return {
        keyId: row.id,
        role: row.role,
        ownerId: row.owner_id ?? row.operator_id,
        operatorId: row.operator_id,
        sessionId: row.id,
      };
    },
  };
}
