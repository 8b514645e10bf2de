import type { Queryable } from '../../db/pool.js';
import type { Role } from '../../http/context.js';
import type { ApiKeyRow } from './api-keys-types.js';

const COLUMNS = 'id, key_prefix, role, owner_id, description, created_at, revoked_at';

export async function insertApiKey(
  db: Queryable,
  key: {
    id: string;
    hash: Buffer;
    prefix: string;
    role: Role;
    ownerId: string | null;
    description: string | null;
    createdBy: string | null;
  },
): Promise<ApiKeyRow> {
  const { rows } = await db.query<ApiKeyRow>(
    `INSERT INTO api_keys (id, key_hash, key_prefix, role, owner_id, description, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${COLUMNS}`,
    [key.id, key.hash, key.prefix, key.role, key.ownerId, key.description, key.createdBy],
  );
  return rows[0]!;
}

/** The active key whose hash matches, if any. */
export async function findActiveKeyByHash(
  db: Queryable,
  hash: Buffer,
): Promise<ApiKeyRow | undefined> {
  const { rows } = await db.query<ApiKeyRow>(
    `SELECT ${COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`,
    [hash],
  );
  return rows[0];
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
  filter: { ownerId?: string; role?: Role; limit: number; startingAfter?: string },
): Promise<ApiKeyRow[]> {
  const { rows } = await db.query<ApiKeyRow>(
    `SELECT ${COLUMNS} FROM api_keys
      WHERE ($1::text IS NULL OR owner_id = $1)
        AND ($2::text IS NULL OR role = $2)
        AND ($3::text IS NULL OR id < $3)
      ORDER BY id DESC LIMIT $4`,
    [filter.ownerId ?? null, filter.role ?? null, filter.startingAfter ?? null, filter.limit + 1],
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
