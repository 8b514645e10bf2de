import type { Queryable } from '../../db/pool.js';
import type { MerchantRow } from './merchants-types.js';

export type MerchantChanges = Partial<Omit<MerchantRow, 'id' | 'created_at' | 'updated_at'>>;

const UPDATABLE = new Set<string>([
  'name',
  'status',
  'fee_bps',
  'per_transaction_max',
  'per_transaction_max_currency',
  'consent',
  'reservation_ttl_seconds',
  'webhook_url',
  'webhook_secret',
  'webhook_status',
]);

export async function insertMerchant(
  db: Queryable,
  m: Omit<MerchantRow, 'created_at' | 'updated_at' | 'status' | 'webhook_status'>,
): Promise<MerchantRow> {
  const { rows } = await db.query<MerchantRow>(
    `INSERT INTO merchants (id, name, fee_bps, per_transaction_max, per_transaction_max_currency, consent,
        reservation_ttl_seconds, webhook_url, webhook_secret)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING *`,
    [
      m.id,
      m.name,
      m.fee_bps,
      m.per_transaction_max,
      m.per_transaction_max_currency,
      m.consent,
      m.reservation_ttl_seconds,
      m.webhook_url,
      m.webhook_secret,
    ],
  );
  return rows[0]!;
}

export async function findMerchant(db: Queryable, id: string): Promise<MerchantRow | undefined> {
  const { rows } = await db.query<MerchantRow>('SELECT * FROM merchants WHERE id = $1', [id]);
  return rows[0];
}

export async function findMerchantForUpdate(
  db: Queryable,
  id: string,
): Promise<MerchantRow | undefined> {
  const { rows } = await db.query<MerchantRow>('SELECT * FROM merchants WHERE id = $1 FOR UPDATE', [
    id,
  ]);
  return rows[0];
}

export async function updateMerchant(
  db: Queryable,
  id: string,
  changes: MerchantChanges,
): Promise<MerchantRow> {
  const entries = Object.entries(changes).filter(([k, v]) => UPDATABLE.has(k) && v !== undefined);
  const sets = entries.map(([k], i) => `${k} = $${i + 2}`);
  const { rows } = await db.query<MerchantRow>(
    `UPDATE merchants SET ${[...sets, 'updated_at = now()'].join(', ')} WHERE id = $1 RETURNING *`,
    [id, ...entries.map(([, v]) => v)],
  );
  return rows[0]!;
}

export async function listMerchants(
  db: Queryable,
  filter: { status?: string; limit: number; startingAfter?: string },
): Promise<MerchantRow[]> {
  const { rows } = await db.query<MerchantRow>(
    `SELECT * FROM merchants
      WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR id < $2)
      ORDER BY id DESC LIMIT $3`,
    [filter.status ?? null, filter.startingAfter ?? null, filter.limit + 1],
  );
  return rows;
}
