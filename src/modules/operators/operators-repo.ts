import type { Queryable } from '../../db/pool.js';
import type { Role } from '../../http/context.js';
import type { OperatorFilter, OperatorRow, OperatorStatus } from './operators-types.js';

const COLUMNS = `id, email, name, role, owner_id, status, bootstrap, setup_expires_at,
  password_hash IS NOT NULL AS password_set, totp_enabled_at IS NOT NULL AS totp_enabled,
  created_at, updated_at`;

export async function insertOperator(
  db: Queryable,
  o: {
    id: string;
    email: string;
    name: string;
    role: Role;
    ownerId: string | null;
    bootstrap: boolean;
    /** SHA-256 of the one-time set-up token, with its expiry; none for a bootstrap operator. */
    setup: { tokenHash: Buffer; expiresAt: Date } | null;
  },
): Promise<OperatorRow> {
  const { rows } = await db.query<OperatorRow>(
    `INSERT INTO operators (id, email, name, role, owner_id, bootstrap, setup_token_hash,
                            setup_expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${COLUMNS}`,
    [
      o.id,
      o.email,
      o.name,
      o.role,
      o.ownerId,
      o.bootstrap,
      o.setup?.tokenHash ?? null,
      o.setup?.expiresAt ?? null,
    ],
  );
  return rows[0]!;
}

export async function findOperator(
  db: Queryable,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<OperatorRow | undefined> {
  const { rows } = await db.query<OperatorRow>(
    `SELECT ${COLUMNS} FROM operators WHERE id = $1${options.forUpdate ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return rows[0];
}

/** By email, compared case-insensitively as the unique index does. */
export async function findOperatorByEmail(
  db: Queryable,
  email: string,
): Promise<OperatorRow | undefined> {
  const { rows } = await db.query<OperatorRow>(
    `SELECT ${COLUMNS} FROM operators WHERE lower(email) = lower($1)`,
    [email],
  );
  return rows[0];
}

/** Newest first; fetches limit + 1 rows so the caller can tell has_more. */
export async function listOperators(db: Queryable, f: OperatorFilter): Promise<OperatorRow[]> {
  const { rows } = await db.query<OperatorRow>(
    `SELECT ${COLUMNS} FROM operators
      WHERE ($1::text IS NULL OR role = $1)
        AND ($2::text IS NULL OR status = $2)
        AND ($3::text IS NULL OR owner_id = $3)
        AND ($4::text IS NULL OR id < $4)
      ORDER BY id DESC LIMIT $5`,
    [f.role ?? null, f.status ?? null, f.ownerId ?? null, f.startingAfter ?? null, f.limit + 1],
  );
  return rows;
}

export async function setOperatorStatus(
  db: Queryable,
  id: string,
  status: OperatorStatus,
): Promise<OperatorRow> {
  const { rows } = await db.query<OperatorRow>(
    `UPDATE operators SET status = $2, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, status],
  );
  return rows[0]!;
}

/** Ends the operator's open console sessions; returns how many were open. */
export async function endSessionsOnSuspension(db: Queryable, operatorId: string): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE operator_sessions SET ended_at = now(), ended_reason = 'suspended'
      WHERE operator_id = $1 AND ended_at IS NULL`,
    [operatorId],
  );
  return rowCount ?? 0;
}
