import type { Queryable } from '../../db/pool.js';

export interface StoredResponse {
  fingerprint: string;
  response_status: number;
  content_type: string;
  response_body: string;
}

/**
 * Takes the key's transaction-scoped advisory lock (without waiting) and reads any stored outcome,
 * in one round trip. `locked` false means another request with this key is running right now.
 */
export async function lockAndFind(
  db: Queryable,
  ownerId: string,
  key: string,
): Promise<{ locked: boolean; stored?: StoredResponse }> {
  const { rows } = await db.query<{ locked: boolean } & Partial<StoredResponse>>(
    `SELECT pg_try_advisory_xact_lock(hashtextextended($1 || E'\\x1f' || $2, 7)) AS locked,
            k.fingerprint, k.response_status, k.content_type, k.response_body
       FROM (SELECT 1) one
       LEFT JOIN idempotency_keys k ON k.owner_id = $1 AND k.key = $2`,
    [ownerId, key],
  );
  const row = rows[0]!;
  if (row.fingerprint === undefined || row.fingerprint === null) return { locked: row.locked };
  return {
    locked: row.locked,
    stored: {
      fingerprint: row.fingerprint,
      response_status: row.response_status!,
      content_type: row.content_type!,
      response_body: row.response_body!,
    },
  };
}

export async function insertOutcome(
  db: Queryable,
  o: {
    ownerId: string;
    key: string;
    fingerprint: string;
    method: string;
    path: string;
    status: number;
    contentType: string;
    body: string;
  },
): Promise<void> {
  await db.query(
    `INSERT INTO idempotency_keys (owner_id, key, fingerprint, method, path, response_status, content_type, response_body)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [o.ownerId, o.key, o.fingerprint, o.method, o.path, o.status, o.contentType, o.body],
  );
}

/** Deletes up to `batch` keys older than the retention; returns how many. */
export async function deleteExpiredKeys(
  db: Queryable,
  retentionHours: number,
  batch: number,
): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM idempotency_keys
      WHERE ctid IN (SELECT ctid FROM idempotency_keys
                      WHERE created_at < now() - make_interval(hours => $1) LIMIT $2)`,
    [retentionHours, batch],
  );
  return rowCount ?? 0;
}
