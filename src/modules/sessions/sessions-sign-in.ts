import type { Pool } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import { newId } from '../../lib/ids.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import { rateLimitedError } from '../rate-limit/rate-limit-http.js';
import type { RateLimitService } from '../rate-limit/rate-limit-service.js';
import * as repo from './sessions-repo.js';
import type { PasswordHasher } from './sessions-password.js';
import {
  csrfFor,
  maskEmail,
  newToken,
  operatorActor,
  sha256,
  type ClientInfo,
  type SessionTimeouts,
} from './sessions-shared.js';
import { TOTP_REQUIRED_ROLES } from './sessions-types.js';

// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/**
 * Checks an email and password behind the sign-in brakes and opens a session: `active`, or at
 * `second_factor` when the operator's role needs TOTP or it has an authenticator. Returns the
 * session token (the cookie's value).
 */
export async function signIn(
  deps: {
    pool: Pool;
    rateLimits: RateLimitService;
    hasher: PasswordHasher;
    timeouts: SessionTimeouts;
  },
  input: { email: string; password: string },
  client: ClientInfo,
): Promise<string> {
  const { pool, rateLimits, hasher, timeouts } = deps;

  const email = input.email.trim();
  // No address holds one, and PostgreSQL refuses NUL in text: bad input, not a failed sign-in.
  if (CONTROL_CHARACTER.test(email)) {
    throw new AppError('validation_failed', 'The email contains a control character.', {
      param: 'email',
    });
  }
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
  return token;
}
