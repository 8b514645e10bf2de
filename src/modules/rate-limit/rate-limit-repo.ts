import type { Queryable } from '../../db/pool.js';

/**
 * The stored rate-limit override of an API key's owner: a merchant, a carrier, or (for admin and
 * auditor keys, whose owner is the key itself) the key. Ids are prefixed, so at most one matches.
 */
export async function findRateLimitOverride(db: Queryable, ownerId: string): Promise<unknown> {
  const { rows } = await db.query<{ rate_limit: unknown }>(
    `SELECT rate_limit FROM merchants WHERE id = $1
     UNION ALL SELECT rate_limit FROM carriers WHERE id = $1
     UNION ALL SELECT rate_limit FROM api_keys WHERE id = $1
     LIMIT 1`,
    [ownerId],
  );
  return rows[0]?.rate_limit ?? null;
}
