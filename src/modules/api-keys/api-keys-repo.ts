import type { Queryable } from '../../db/pool.js';
import type { Role } from '../../http/context.js';
import type { ApiKeyRow } from './api-keys-types.js';

const COLUMNS = 'id, key_prefix, role, owner_id, operator_id, description, created_at, revoked_at';

/** The channel on which revocations and suspensions are announced to every instance. */
export const AUTH_CHANGES_CHANNEL = 'dcb_auth_changes';

/** What stopped authenticating: one key, or every key of one operator. */
export interface AuthChange {
  kind: 'api_key' | 'operator';
  id: string;
}

export async function insertApiKey(
  db: Queryable,
  key: {
    id: string;
    hash: Buffer;
    prefix: string;
    role: Role;
    ownerId: string | null;
    operatorId: string | null;
    description: string | null;
    createdBy: string | null;
  },
): Promise<ApiKeyRow> {
  const { rows } = await db.query<ApiKeyRow>(
    `INSERT INTO api_keys (id, key_hash, key_prefix, role, owner_id, operator_id, description,
                           created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${COLUMNS}`,
    [
      key.id,
      key.hash,
      key.prefix,
      key.role,
      key.ownerId,
      key.operatorId,
      key.description,
      key.createdBy,
    ],
  );
  return rows[0]!;
}

/** The key whose hash matches, if it is not revoked and its operator (if any) is not suspended. */
export async function findActiveKeyByHash(
  db: Queryable,
  hash: Buffer,
): Promise<ApiKeyRow | undefined> {
  const { rows } = await db.query<ApiKeyRow>(
    `SELECT k.id, k.key_prefix, k.role, k.owner_id, k.operator_id, k.description, k.created_at,
            k.revoked_at
       FROM api_keys k LEFT JOIN operators o ON o.id = k.operator_id
      WHERE k.key_hash = $1 AND k.revoked_at IS NULL
        AND (k.operator_id IS NULL OR o.status = 'active')`,
    [hash],
  );
  return rows[0];
}

/**
 * Announces a revocation or suspension to every instance (auth-changes-listener). Call it in the
 * transaction of the change: PostgreSQL delivers the notification at commit, and only then.
 */
export async function notifyAuthChange(db: Queryable, change: AuthChange): Promise<void> {
  await db.query('SELECT pg_notify($1, $2)', [AUTH_CHANGES_CHANNEL, JSON.stringify(change)]);
}

export async function findApiKey(db: Queryable, id: string): Promise<ApiKeyRow | undefined> {
  const { rows } = await db.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE id = $1`, [id]);
  return rows[0];
}

export async function revokeApiKey(db: Queryable, id: string): Promise<ApiKeyRow | undefined> {
  const { rows } = await db.query<ApiKeyRow>(
    `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${COLUMNS}`,
    [id],
  );
  return rows[0];
}

export async function listApiKeys(
  db: Queryable,
  filter: {
    ownerId?: string;
    role?: Role;
    operatorId?: string;
    limit: number;
    startingAfter?: string;
  },
): Promise<ApiKeyRow[]> {
  const { rows } = await db.query<ApiKeyRow>(
    `SELECT ${COLUMNS} FROM api_keys
      WHERE ($1::text IS NULL OR owner_id = $1)
        AND ($2::text IS NULL OR role = $2)
        AND ($3::text IS NULL OR operator_id = $3)
        AND ($4::text IS NULL OR id < $4)
      ORDER BY id DESC LIMIT $5`,
    [
      filter.ownerId ?? null,
      filter.role ?? null,
      filter.operatorId ?? null,
      filter.startingAfter ?? null,
      filter.limit + 1,
    ],
  );
  return rows;
}

/** Whether the merchant or carrier a key is for exists. */
export async function ownerExists(
  db: Queryable,
  kind: 'merchant' | 'carrier',
  id: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    kind === 'merchant'
      ? 'SELECT 1 FROM merchants WHERE id = $1'
      : 'SELECT 1 FROM carriers WHERE id = $1',
    [id],
  );
  return rowCount === 1;
}
