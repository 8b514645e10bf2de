import type { Queryable } from '../../db/pool.js';

export interface EndpointRow {
  webhook_url: string | null;
  webhook_secret: string | null;
  webhook_status: 'enabled' | 'disabled';
  webhook_previous_secret: string | null;
  webhook_previous_secret_until: Date | null;
}

const COLUMNS =
  'webhook_url, webhook_secret, webhook_status, webhook_previous_secret, webhook_previous_secret_until';

export async function findEndpoint(
  db: Queryable,
  merchantId: string,
): Promise<EndpointRow | undefined> {
  const { rows } = await db.query<EndpointRow>(`SELECT ${COLUMNS} FROM merchants WHERE id = $1`, [
    merchantId,
  ]);
  return rows[0];
}

/**
 * Locks the merchant row with FOR NO KEY UPDATE: that does not conflict with the key-share locks
 * that charges referencing the merchant take, so changing the endpoint never stalls payments.
 */
export async function findEndpointForUpdate(
  db: Queryable,
  merchantId: string,
): Promise<EndpointRow | undefined> {
  const { rows } = await db.query<EndpointRow>(
    `SELECT ${COLUMNS} FROM merchants WHERE id = $1 FOR NO KEY UPDATE`,
    [merchantId],
  );
  return rows[0];
}

/** Sets the URL (and the secret when given) and enables the endpoint. */
export async function enableEndpoint(
  db: Queryable,
  merchantId: string,
  url: string,
  secret: string,
): Promise<EndpointRow> {
  const { rows } = await db.query<EndpointRow>(
    `UPDATE merchants SET webhook_url = $2, webhook_secret = $3, webhook_status = 'enabled',
            updated_at = now()
      WHERE id = $1 RETURNING ${COLUMNS}`,
    [merchantId, url, secret],
  );
  return rows[0]!;
}

/** Installs a new secret; the current one keeps signing until now() + graceMs. */
export async function rotateSecret(
  db: Queryable,
  merchantId: string,
  secret: string,
  graceMs: number,
): Promise<EndpointRow> {
  const { rows } = await db.query<EndpointRow>(
    `UPDATE merchants SET webhook_previous_secret = webhook_secret,
            webhook_previous_secret_until = now() + $3::float8 * interval '1 millisecond',
            webhook_secret = $2, updated_at = now()
      WHERE id = $1 RETURNING ${COLUMNS}`,
    [merchantId, secret, graceMs],
  );
  return rows[0]!;
}

/**
 * Disables the endpoint, but only while it still points at `url`: a merchant that has meanwhile
 * set a new URL keeps it. Returns whether it was disabled by this call.
 */
export async function disableEndpoint(
  db: Queryable,
  merchantId: string,
  url: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE merchants SET webhook_status = 'disabled', updated_at = now()
      WHERE id = $1 AND webhook_url = $2 AND webhook_status = 'enabled'`,
    [merchantId, url],
  );
  return rowCount === 1;
}
