import type { Queryable } from '../../db/pool.js';
import type {
  SessionEndReason,
  SessionRow,
  SessionStage,
  SignInOperatorRow,
} from './sessions-types.js';

const SIGN_IN_COLUMNS = 'id, email, name, role, owner_id, status, password_hash, totp_enabled_at';

/** The operator signing in with `email` (compared without case, as the unique index does). */
export async function findOperatorByEmail(
  db: Queryable,
  email: string,
): Promise<SignInOperatorRow | undefined> {
  const { rows } = await db.query<SignInOperatorRow>(
    `SELECT ${SIGN_IN_COLUMNS} FROM operators WHERE lower(email) = lower($1)`,
    [email],
  );
  return rows[0];
}

/** The active operator whose unexpired set-up token has this hash. */
export async function findOperatorBySetupToken(
  db: Queryable,
  tokenHash: Buffer,
): Promise<SignInOperatorRow | undefined> {
  const { rows } = await db.query<SignInOperatorRow>(
    `SELECT ${SIGN_IN_COLUMNS} FROM operators
      WHERE setup_token_hash = $1 AND setup_expires_at > now() AND status = 'active'`,
    [tokenHash],
  );
  return rows[0];
}

/**
 * Sets the password and spends the set-up token in one statement: of two concurrent uses, the
 * second finds the token gone once the first commits, and gets nothing back.
 */
export async function consumeSetupToken(
  db: Queryable,
  tokenHash: Buffer,
  operatorId: string,
  passwordHash: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE operators
        SET password_hash = $3, setup_token_hash = NULL, setup_expires_at = NULL, updated_at = now()
      WHERE id = $2 AND setup_token_hash = $1 AND setup_expires_at > now() AND status = 'active'`,
    [tokenHash, operatorId, passwordHash],
  );
  return rowCount === 1;
}

export async function updatePasswordHash(
  db: Queryable,
  operatorId: string,
  passwordHash: string,
): Promise<void> {
  await db.query('UPDATE operators SET password_hash = $2, updated_at = now() WHERE id = $1', [
    operatorId,
    passwordHash,
  ]);
}

/** Ends every live session of an operator; returns their ids. */
export async function endOperatorSessions(
  db: Queryable,
  operatorId: string,
  reason: SessionEndReason,
): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `UPDATE operator_sessions SET ended_at = now(), ended_reason = $2
      WHERE operator_id = $1 AND ended_at IS NULL RETURNING id`,
    [operatorId, reason],
  );
  return rows.map((r) => r.id);
}

export async function insertSession(
  db: Queryable,
  session: {
    id: string;
    tokenHash: Buffer;
    operatorId: string;
    stage: SessionStage;
    csrfTokenHash: Buffer;
    ip: string | null;
    userAgent: string | null;
    absoluteSeconds: number;
  },
): Promise<void> {
  await db.query(
    `INSERT INTO operator_sessions
       (id, token_hash, operator_id, stage, csrf_token_hash, ip, user_agent, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))`,
    [
      session.id,
      session.tokenHash,
      session.operatorId,
      session.stage,
      session.csrfTokenHash,
      session.ip,
      session.userAgent,
      session.absoluteSeconds,
    ],
  );
}

/**
 * The session whose token has this hash, with its operator, judged by the database clock (one
 * clock for every instance): `lapsed` says whether it is past its absolute or idle end.
 */
export async function findSessionByTokenHash(
  db: Queryable,
  tokenHash: Buffer,
  timeouts: { idleSeconds: number; touchSeconds: number },
): Promise<SessionRow | undefined> {
  const { rows } = await db.query<SessionRow>(
    `SELECT s.id, s.operator_id, s.stage, s.csrf_token_hash, s.expires_at,
            s.last_seen_at + make_interval(secs => $2) AS idle_expires_at,
            s.ended_reason,
            CASE WHEN s.ended_at IS NOT NULL THEN NULL
                 WHEN now() >= s.expires_at THEN 'expired'
                 WHEN now() >= s.last_seen_at + make_interval(secs => $2) THEN 'idle' END AS lapsed,
            now() - s.last_seen_at >= make_interval(secs => $3) AS needs_touch,
            o.email, o.name, o.role, o.owner_id, o.status,
            o.totp_secret, o.totp_enabled_at, o.totp_last_step
       FROM operator_sessions s JOIN operators o ON o.id = s.operator_id
      WHERE s.token_hash = $1`,
    [tokenHash, timeouts.idleSeconds, timeouts.touchSeconds],
  );
  return rows[0];
}

/** Marks the session as seen now; returns its new idle end. */
export async function touchSession(
  db: Queryable,
  sessionId: string,
  idleSeconds: number,
): Promise<Date | undefined> {
  const { rows } = await db.query<{ idle_expires_at: Date }>(
    `UPDATE operator_sessions SET last_seen_at = now()
      WHERE id = $1 AND ended_at IS NULL
      RETURNING last_seen_at + make_interval(secs => $2) AS idle_expires_at`,
    [sessionId, idleSeconds],
  );
  return rows[0]?.idle_expires_at;
}

/** Ends a live session; false when it had ended already. */
export async function endSession(
  db: Queryable,
  sessionId: string,
  reason: SessionEndReason,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE operator_sessions SET ended_at = now(), ended_reason = $2
      WHERE id = $1 AND ended_at IS NULL`,
    [sessionId, reason],
  );
  return rowCount === 1;
}

/** Makes a second-factor session active under a new token (and so a new CSRF token). */
export async function activateSession(
  db: Queryable,
  sessionId: string,
  tokenHash: Buffer,
  csrfTokenHash: Buffer,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE operator_sessions
        SET stage = 'active', token_hash = $2, csrf_token_hash = $3, last_seen_at = now()
      WHERE id = $1 AND stage = 'second_factor' AND ended_at IS NULL`,
    [sessionId, tokenHash, csrfTokenHash],
  );
  return rowCount === 1;
}

/** The operator's TOTP state, locked until the transaction ends. */
export async function lockOperatorTotp(
  db: Queryable,
  operatorId: string,
): Promise<
  | { totp_secret: string | null; totp_enabled_at: Date | null; totp_last_step: string | null }
  | undefined
> {
  const { rows } = await db.query<{
    totp_secret: string | null;
    totp_enabled_at: Date | null;
    totp_last_step: string | null;
  }>(
    'SELECT totp_secret, totp_enabled_at, totp_last_step FROM operators WHERE id = $1 FOR UPDATE',
    [operatorId],
  );
  return rows[0];
}

/** Records the step of an accepted code, and confirms a pending enrolment with it. */
export async function acceptTotpStep(
  db: Queryable,
  operatorId: string,
  step: number,
): Promise<void> {
  await db.query(
    `UPDATE operators
        SET totp_last_step = $2, totp_enabled_at = coalesce(totp_enabled_at, now()), updated_at = now()
      WHERE id = $1`,
    [operatorId, step],
  );
}

/** Stores a new, unconfirmed TOTP secret; false when the operator has a confirmed one. */
export async function startTotpEnrolment(
  db: Queryable,
  operatorId: string,
  secret: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE operators SET totp_secret = $2, totp_last_step = NULL, updated_at = now()
      WHERE id = $1 AND totp_enabled_at IS NULL`,
    [operatorId, secret],
  );
  return rowCount === 1;
}
