import type { Queryable } from '../../db/pool.js';
import type { CarrierRow } from './carriers-types.js';

export type CarrierColumns = Omit<CarrierRow, 'created_at' | 'updated_at' | 'status'>;
export type CarrierChanges = Partial<
  Omit<CarrierRow, 'id' | 'code' | 'currency' | 'created_at' | 'updated_at'>
>;

const UPDATABLE = new Set<string>([
  'name',
  'timezone',
  'revenue_share_bps',
  'status',
  'prepaid_per_transaction_max',
  'prepaid_daily_max',
  'prepaid_monthly_max',
  'postpaid_per_transaction_max',
  'postpaid_daily_max',
  'postpaid_monthly_max',
  'otp_threshold',
  'sms_url',
]);

export async function insertCarrier(db: Queryable, c: CarrierColumns): Promise<CarrierRow> {
  const { rows } = await db.query<CarrierRow>(
    `INSERT INTO carriers (id, code, name, currency, timezone, revenue_share_bps,
        prepaid_per_transaction_max, prepaid_daily_max, prepaid_monthly_max,
        postpaid_per_transaction_max, postpaid_daily_max, postpaid_monthly_max, otp_threshold, sms_url)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) RETURNING *`,
    [
      c.id,
      c.code,
      c.name,
      c.currency,
      c.timezone,
      c.revenue_share_bps,
      c.prepaid_per_transaction_max,
      c.prepaid_daily_max,
      c.prepaid_monthly_max,
      c.postpaid_per_transaction_max,
      c.postpaid_daily_max,
      c.postpaid_monthly_max,
      c.otp_threshold,
      c.sms_url,
    ],
  );
  return rows[0]!;
}

export async function findCarrier(db: Queryable, id: string): Promise<CarrierRow | undefined> {
  const { rows } = await db.query<CarrierRow>('SELECT * FROM carriers WHERE id = $1', [id]);
  return rows[0];
}

export async function findCarrierForUpdate(
  db: Queryable,
  id: string,
): Promise<CarrierRow | undefined> {
  const { rows } = await db.query<CarrierRow>('SELECT * FROM carriers WHERE id = $1 FOR UPDATE', [
    id,
  ]);
  return rows[0];
}

export async function updateCarrier(
  db: Queryable,
  id: string,
  changes: CarrierChanges,
): Promise<CarrierRow> {
  const entries = Object.entries(changes).filter(([k, v]) => UPDATABLE.has(k) && v !== undefined);
  const sets = entries.map(([k], i) => `${k} = $${i + 2}`);
  const { rows } = await db.query<CarrierRow>(
    `UPDATE carriers SET ${[...sets, 'updated_at = now()'].join(', ')} WHERE id = $1 RETURNING *`,
    [id, ...entries.map(([, v]) => v)],
  );
  return rows[0]!;
}

export async function listCarriers(
  db: Queryable,
  filter: { status?: string; limit: number; startingAfter?: string },
): Promise<CarrierRow[]> {
  const { rows } = await db.query<CarrierRow>(
    `SELECT * FROM carriers
      WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR id < $2)
      ORDER BY id DESC LIMIT $3`,
    [filter.status ?? null, filter.startingAfter ?? null, filter.limit + 1],
  );
  return rows;
}
