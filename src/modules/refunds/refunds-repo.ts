import type { Queryable } from '../../db/pool.js';

export interface RefundRow {
  id: string;
  charge_id: string;
  merchant_id: string;
  amount: string;
  currency: string;
  reason: string | null;
  carrier_share: string;
  gateway_fee: string;
  merchant_net: string;
  status: 'succeeded';
  created_at: Date;
}

export async function insertRefund(
  db: Queryable,
  r: {
    id: string;
    chargeId: string;
    merchantId: string;
    amount: bigint;
    currency: string;
    reason: string | null;
    carrierShare: bigint;
    gatewayFee: bigint;
    merchantNet: bigint;
  },
): Promise<RefundRow> {
  const { rows } = await db.query<RefundRow>(
    `INSERT INTO refunds (id, charge_id, merchant_id, amount, currency, reason, carrier_share, gateway_fee, merchant_net)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
    [
      r.id,
      r.chargeId,
      r.merchantId,
      r.amount.toString(),
      r.currency,
      r.reason,
      r.carrierShare.toString(),
      r.gatewayFee.toString(),
      r.merchantNet.toString(),
    ],
  );
  return rows[0]!;
}

export async function findRefund(
  db: Queryable,
  id: string,
  merchantId: string,
): Promise<RefundRow | undefined> {
  const { rows } = await db.query<RefundRow>(
    'SELECT * FROM refunds WHERE id = $1 AND merchant_id = $2',
    [id, merchantId],
  );
  return rows[0];
}

export async function listChargeRefunds(
  db: Queryable,
  f: { chargeId: string; merchantId: string; limit: number; startingAfter?: string },
): Promise<RefundRow[]> {
  const { rows } = await db.query<RefundRow>(
    `SELECT * FROM refunds WHERE charge_id = $1 AND merchant_id = $2 AND ($3::text IS NULL OR id < $3)
      ORDER BY id DESC LIMIT $4`,
    [f.chargeId, f.merchantId, f.startingAfter ?? null, f.limit + 1],
  );
  return rows;
}
