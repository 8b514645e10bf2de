import type { Pool } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import { SYSTEM_ACTOR, type AuthContext } from '../../http/context.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import { rateLimitedError } from '../rate-limit/rate-limit-http.js';
import type { RateLimitService } from '../rate-limit/rate-limit-service.js';
import * as repo from './sessions-repo.js';
import type { PasswordHasher } from './sessions-password.js';
import { setUpPassword } from './sessions-setup.js';
import { signIn } from './sessions-sign-in.js';
import {
  assertCsrf,
  csrfFor,
  newToken,
  operatorActor,
  sessionEnded,
  sessionOperator,
  sha256,
  STATE_CHANGING,
  TOKEN_SHAPE,
  type ClientInfo,
  type SessionTimeouts,
} from './sessions-shared.js';
import { newTotpSecret, totpUri, verifyTotp } from './sessions-totp.js';
import { TOTP_REQUIRED_ROLES, type SessionRow, type SessionView } from './sessions-types.js';

export type { ClientInfo, SessionTimeouts } from './sessions-shared.js';

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
    setUpPassword: (input, client) => setUpPassword({ pool, hasher }, input, client),

    async signIn(input, client) {
      const token = await signIn({ pool, rateLimits, hasher, timeouts }, input, client);
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
