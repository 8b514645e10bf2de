import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../src/lib/ids.js';
import { subscriberSpend } from '../src/modules/subscribers/subscribers-repo.js';
import { freshDatabase, type FreshDatabase } from './helpers/audit.js';
import { createHarness, type Harness } from './helpers/harness.js';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  type CarrierFixture,
  type MerchantFixture,
  type SubscriberFixture,
} from './helpers/factories.js';

// Charges are written straight into the table at chosen times, without their ledger side: a
// database of its own keeps them out of other files' books.
let db: FreshDatabase;
let h: Harness;
beforeAll(async () => {
  db = await freshDatabase();
  h = await createHarness({
    databaseUrl: db.url,
    env: { RATE_LIMIT_MSISDN_PER_MINUTE: '100000' },
  });
});
afterAll(async () => {
  await h.close();
  await db.drop();
});

interface Party {
  carrier: CarrierFixture;
  merchant: MerchantFixture;
  sub: SubscriberFixture;
  subscriberId: string;
}

async function party(carrierOverrides: Record<string, unknown> = {}): Promise<Party> {
  const carrier = await newCarrier(h, carrierOverrides);
  const merchant = await newMerchant(h);
  const sub = await newSubscriber(h, carrier, { balance: '10000000' });
  const { rows } = await h.c.pool.query<{ id: string }>(
    'SELECT id FROM subscribers WHERE carrier_id = $1 AND msisdn = $2',
    [carrier.id, sub.msisdn],
  );
  return { carrier, merchant, sub, subscriberId: rows[0]!.id };
}

/**
 * Writes a charge row as of a chosen moment (spend reads only the charges table). `createdAt` is
 * an SQL expression so a test can place it relative to database time.
 */
async function chargeAt(
  p: Party,
  createdAt: string,
  amount: number,
  state: { status?: string; held?: number; captured?: number; refunded?: number } = {},
): Promise<void> {
  const status = state.status ?? 'succeeded';
  const captured = state.captured ?? (status === 'succeeded' ? amount : 0);
  await h.c.pool.query(
    `INSERT INTO charges (id, merchant_id, carrier_id, subscriber_id, msisdn, funding_type, status, capture,
                          amount, currency, amount_held, amount_captured, amount_refunded,
                          revenue_share_bps, fee_bps, description, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, 'prepaid', $6, true, $7, 'VND', $8, $9, $10, 3000, 250, 'test', ${createdAt}, ${createdAt})`,
    [
      newId('ch'),
      p.merchant.id,
      p.carrier.id,
      p.subscriberId,
      p.sub.msisdn,
      status,
      amount,
      state.held ?? 0,
      captured,
      state.refunded ?? 0,
    ],
  );
}

async function spendAt(p: Party, at: string, timezone = 'Asia/Ho_Chi_Minh') {
  const s = await subscriberSpend(h.c.pool, p.subscriberId, timezone, new Date(at));
  return { today: s.today.toString(), month: s.month.toString() };
}

describe('spend windows in the carrier’s time zone', () => {
  it('23:59 and 00:01 local (UTC+7) fall in different days, though both are 16:xx UTC the same date', async () => {
    const p = await party();
    await chargeAt(p, `'2025-03-14T23:59:00+07:00'`, 1000);
    await chargeAt(p, `'2025-03-15T00:01:00+07:00'`, 20);

    expect(await spendAt(p, '2025-03-14T23:59:30+07:00')).toEqual({ today: '1000', month: '1000' });
    expect(await spendAt(p, '2025-03-15T00:05:00+07:00')).toEqual({ today: '20', month: '1020' });
    expect(await spendAt(p, '2025-03-15T23:59:59+07:00')).toEqual({ today: '20', month: '1020' });
    expect(await spendAt(p, '2025-03-16T00:00:00+07:00')).toEqual({ today: '0', month: '1020' });
    // The same instants seen from a UTC carrier: one day.
    expect(await spendAt(p, '2025-03-14T17:05:00Z', 'UTC')).toEqual({
      today: '1020',
      month: '1020',
    });
  });

  it('the month turns at local midnight of the 1st', async () => {
    const p = await party();
    await chargeAt(p, `'2025-03-31T23:59:00+07:00'`, 300);
    await chargeAt(p, `'2025-04-01T00:01:00+07:00'`, 4);
    expect(await spendAt(p, '2025-03-31T23:59:59+07:00')).toEqual({ today: '300', month: '300' });
    expect(await spendAt(p, '2025-04-01T00:02:00+07:00')).toEqual({ today: '4', month: '4' });
    expect(await spendAt(p, '2025-04-30T12:00:00+07:00')).toEqual({ today: '0', month: '4' });
  });

  it('counts succeeded net of refunds plus what reservations and pending codes hold; denied and cancelled count nothing', async () => {
    const p = await party();
    const t = `'2025-06-10T10:00:00+07:00'`;
    await chargeAt(p, t, 1000, { refunded: 300 });
    await chargeAt(p, t, 50_000, { status: 'reserved', held: 50_000 });
    await chargeAt(p, t, 400_000, { status: 'pending_validation', held: 400_000 });
    await chargeAt(p, t, 9_000_000, { status: 'denied' });
    await chargeAt(p, t, 7_000, { status: 'cancelled' });
    expect(await spendAt(p, '2025-06-10T18:00:00+07:00')).toEqual({
      today: '450700',
      month: '450700',
    });
  });

  it('a daily cap counts today’s charges from local midnight and not yesterday’s at 23:59', async () => {
    const p = await party({
      limits: { prepaid: { per_transaction_max: '5000000', daily_max: '1000000' } },
    });
    const dayStart = `date_trunc('day', now() AT TIME ZONE 'Asia/Ho_Chi_Minh') AT TIME ZONE 'Asia/Ho_Chi_Minh'`;
    await chargeAt(p, `${dayStart} - interval '1 minute'`, 900_000);
    const first = await charge(h, p.merchant, { msisdn: p.sub.msisdn, amount: '500000' });
    expect(first.status, JSON.stringify(first.body)).toBe(201);

    await chargeAt(p, dayStart, 400_000);
    const last = await charge(h, p.merchant, { msisdn: p.sub.msisdn, amount: '100000' });
    expect(last.status).toBe(201);
    const over = await charge(h, p.merchant, { msisdn: p.sub.msisdn, amount: '1' });
    expect(over.status).toBe(402);
    expect(over.body.code).toBe('limit_daily_exceeded');
  });
});
