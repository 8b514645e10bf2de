import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newId } from '../src/lib/ids.js';
import { staffKey } from './helpers/audit.js';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  type MerchantFixture,
} from './helpers/factories.js';
import { bearer, createHarness, type Harness } from './helpers/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

interface AdminCharge {
  id: string;
  status: string;
  amount: string;
  currency: string;
  msisdn: string;
  merchant_id: string;
  carrier_id: string;
  created_at: string;
}

type Query = Record<string, string | number>;

async function search(key: string, query: Query) {
  return h.http.get('/v1/admin/charges').query(query).set(bearer(key));
}

/** Every page of a search, asserting each page's shape; returns the ids in order. */
async function allPages(key: string, query: Query, limit: number): Promise<string[]> {
  const ids: string[] = [];
  let after: string | undefined;
  for (let page = 0; page < 500; page++) {
    const res = await search(key, { ...query, limit, ...(after ? { starting_after: after } : {}) });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const data = res.body.data as AdminCharge[];
    ids.push(...data.map((c) => c.id));
    if (!res.body.has_more) return ids;
    expect(data).toHaveLength(limit);
    after = data[data.length - 1]!.id;
  }
  throw new Error(`paging ${JSON.stringify(query)} did not end`);
}

/** Position of each charge in the newest-first order, read from the database (microseconds). */
async function sortKeys(ids: string[]): Promise<Map<string, string>> {
  const { rows } = await h.c.pool.query<{ id: string; k: string }>(
    `SELECT id, to_char(created_at, 'YYYYMMDDHH24MISSUS') || id AS k FROM charges WHERE id = ANY($1)`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r.k]));
}

describe('admin charge search: filters', () => {
  it('combines merchant, carrier, MSISDN, status, amount range in a currency and time range', async () => {
    const admin = await staffKey(h);
    const vnd = await newCarrier(h);
    const usd = await newCarrier(h, { currency: 'USD' });
    const m1 = await newMerchant(h);
    const m2 = await newMerchant(h);
    const a1 = await newSubscriber(h, vnd, { balance: '100000' });
    const a2 = await newSubscriber(h, vnd, { balance: '100000' });
    const b1 = await newSubscriber(h, usd, { balance: '100.00' });

    const made: string[] = [];
    const owners = new Map<string, { merchant: MerchantFixture; carrierId: string }>();
    const create = async (
      merchant: MerchantFixture,
      body: Record<string, unknown>,
      expected: number,
    ) => {
      const res = await charge(h, merchant, body);
      expect(res.status, JSON.stringify(res.body)).toBe(expected);
      const id = (res.body.id ?? res.body.charge_id) as string;
      made.push(id);
      owners.set(id, { merchant, carrierId: body.currency === 'USD' ? usd.id : vnd.id });
      return id;
    };
    await create(m1, { msisdn: a1.msisdn, amount: '1000' }, 201);
    const toCancel = await create(m1, { msisdn: a1.msisdn, amount: '5000', capture: false }, 201);
    await create(m2, { msisdn: a1.msisdn, amount: '1250' }, 201);
    await create(m1, { msisdn: b1.msisdn, amount: '12.50', currency: 'USD' }, 201);
    await create(m2, { msisdn: a2.msisdn, amount: '3000' }, 201);
    await create(m1, { msisdn: a2.msisdn, amount: '999999' }, 402);
    await create(m2, { msisdn: b1.msisdn, amount: '3.00', currency: 'USD', capture: false }, 201);
    await create(m1, { msisdn: a2.msisdn, amount: '1250' }, 201);
    const cancelled = await h.http
      .post(`/v1/charges/${toCancel}/cancel`)
      .set(bearer(m1.key))
      .set('Idempotency-Key', `c-${toCancel}`);
    expect(cancelled.status).toBe(200);

    // The truth, as each merchant reads its own charges.
    const all: AdminCharge[] = [];
    for (const id of made) {
      const { merchant, carrierId } = owners.get(id)!;
      const res = await h.http.get(`/v1/charges/${id}`).set(bearer(merchant.key));
      expect(res.status).toBe(200);
      all.push({ ...(res.body as AdminCharge), merchant_id: merchant.id, carrier_id: carrierId });
    }
    const byNewest = [...all].reverse();
    const msisdnOf = new Map([
      [a1.msisdn, made.slice(0, 3)],
      [a2.msisdn, [made[4], made[5], made[7]]],
      [b1.msisdn, [made[3], made[6]]],
    ]);
    const minor = (c: AdminCharge) => BigInt(c.amount.replace('.', ''));
    const expectSearch = async (query: Query, keep: (c: AdminCharge) => boolean) => {
      const expected = byNewest.filter(keep).map((c) => c.id);
      expect(expected.length, JSON.stringify(query)).toBeGreaterThan(0);
      const res = await search(admin.key, { ...query, limit: 100 });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(
        (res.body.data as AdminCharge[]).map((c) => c.id),
        JSON.stringify(query),
      ).toEqual(expected);
      expect(await allPages(admin.key, query, 1), JSON.stringify(query)).toEqual(expected);
      return res.body.data as AdminCharge[];
    };

    const mine = await expectSearch({ merchant_id: m1.id }, (c) => c.merchant_id === m1.id);
    // The admin view is the merchant view (MSISDN masked) plus whose charge it is.
    for (const row of mine) {
      const truth = all.find((c) => c.id === row.id)!;
      expect(row).toEqual(truth);
      expect(row.msisdn).toMatch(/^\+\d{4}\*{4}\d{3}$/);
    }
    await expectSearch(
      { merchant_id: m1.id, status: 'succeeded' },
      (c) => c.merchant_id === m1.id && c.status === 'succeeded',
    );
    await expectSearch({ merchant_id: m1.id, status: 'cancelled' }, (c) => c.id === toCancel);
    await expectSearch(
      { merchant_id: m2.id, status: 'reserved' },
      (c) => c.merchant_id === m2.id && c.status === 'reserved',
    );
    await expectSearch({ merchant_id: m1.id, status: 'denied' }, (c) => c.status === 'denied');
    await expectSearch({ carrier_id: vnd.id }, (c) => c.carrier_id === vnd.id);
    await expectSearch(
      { carrier_id: vnd.id, currency: 'VND', amount_gte: '1250', amount_lte: '5000' },
      (c) => c.carrier_id === vnd.id && minor(c) >= 1250n && minor(c) <= 5000n,
    );
    // 12.50 USD is 1250 minor units, like 1250 VND: the bounds are money, never mixed across currencies.
    await expectSearch(
      { merchant_id: m1.id, currency: 'USD', amount_gte: '12.5' },
      (c) => c.merchant_id === m1.id && c.currency === 'USD',
    );
    await expectSearch(
      { merchant_id: m1.id, currency: 'VND', amount_lte: '1250' },
      (c) => c.merchant_id === m1.id && c.currency === 'VND' && minor(c) <= 1250n,
    );
    await expectSearch({ msisdn: a1.msisdn }, (c) => msisdnOf.get(a1.msisdn)!.includes(c.id));
    await expectSearch(
      { msisdn: a1.msisdn, merchant_id: m2.id },
      (c) => msisdnOf.get(a1.msisdn)!.includes(c.id) && c.merchant_id === m2.id,
    );
    await expectSearch(
      { msisdn: b1.msisdn, status: 'reserved' },
      (c) => msisdnOf.get(b1.msisdn)!.includes(c.id) && c.status === 'reserved',
    );
    // created_gte inclusive, created_lt exclusive (charges were made one after another).
    await expectSearch(
      { merchant_id: m1.id, created_gte: all[1]!.created_at, created_lt: all[5]!.created_at },
      (c) => c.merchant_id === m1.id && made.indexOf(c.id) >= 1 && made.indexOf(c.id) < 5,
    );

    const none = await search(admin.key, {
      merchant_id: m1.id,
      carrier_id: usd.id,
      status: 'reserved',
    });
    expect(none.status).toBe(200);
    expect(none.body).toEqual({ data: [], has_more: false });
  });

  it('refuses an amount bound without its currency, a bad amount, an unknown cursor and an impossible time', async () => {
    const admin = await staffKey(h);
    const noCurrency = await search(admin.key, { amount_gte: '1000' });
    expect(noCurrency.status).toBe(400);
    expect(noCurrency.body).toMatchObject({ code: 'validation_failed', param: 'currency' });
    const decimals = await search(admin.key, { currency: 'VND', amount_lte: '10.5' });
    expect(decimals.status).toBe(400);
    expect(decimals.body).toMatchObject({ code: 'invalid_amount', param: 'amount_lte' });
    const unknown = await search(admin.key, { currency: 'XXX' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.code).toBe('unsupported_currency');
    const cursor = await search(admin.key, { starting_after: 'ch_00000000000000000000000000' });
    expect(cursor.status).toBe(400);
    expect(cursor.body).toMatchObject({ code: 'invalid_cursor', param: 'starting_after' });
    const impossible = await search(admin.key, { created_gte: '2025-02-30T00:00:00Z' });
    expect(impossible.status).toBe(400);
    expect(impossible.body).toMatchObject({ code: 'validation_failed', param: 'created_gte' });
    const partial = await search(admin.key, { msisdn: '84901234567' });
    expect(partial.status).toBe(400);
  });

  it('is for admin and auditor keys only', async () => {
    const auditor = await staffKey(h, 'auditor');
    const merchant = await newMerchant(h);
    const carrier = await newCarrier(h);
    expect((await search(auditor.key, { merchant_id: merchant.id })).status).toBe(200);
    const asMerchant = await search(merchant.key, { merchant_id: merchant.id });
    expect(asMerchant.status).toBe(403);
    expect(asMerchant.body.code).toBe('forbidden');
    expect((await search(carrier.key, { carrier_id: carrier.id })).status).toBe(403);
    expect((await h.http.get('/v1/admin/charges')).status).toBe(401);
  });
});

describe('admin charge search: paging under concurrent inserts', () => {
  it('pages newest first without gaps or repeats while charges are created, including one whose transaction started before the cursor', async () => {
    const admin = await staffKey(h);
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const subs = await Promise.all(
      Array.from({ length: 4 }, () => newSubscriber(h, carrier, { balance: '1000000' })),
    );
    let n = 0;
    const burst = async (count: number) => {
      const answers = await Promise.all(
        Array.from({ length: count }, () => {
          n += 1;
          return charge(h, merchant, { msisdn: subs[n % subs.length]!.msisdn, amount: '1000' });
        }),
      );
      for (const a of answers) expect(a.status, JSON.stringify(a.body)).toBe(201);
      return answers.map((a) => a.body.id as string);
    };
    const before: string[] = [];
    for (let i = 0; i < 5; i++) before.push(...(await burst(6)));

    // A charge whose transaction starts now but commits only after the first pages were read:
    // its created_at (the transaction's start) sorts behind the charges made meanwhile.
    const slow = new pg.Client({ connectionString: inject('databaseUrl') });
    await slow.connect();
    await slow.query('BEGIN');
    await slow.query('SELECT now()');
    const lateId = newId('ch');
    const duringFirstPages = await burst(4);

    const query = { merchant_id: merchant.id };
    const limit = 4;
    const pages: string[][] = [];
    const createdWhilePaging: string[] = [...duringFirstPages];
    let after: string | undefined;
    let lateCommitted = false;
    for (let page = 0; page < 100; page++) {
      const [res, made] = await Promise.all([
        search(admin.key, { ...query, limit, ...(after ? { starting_after: after } : {}) }),
        burst(2),
      ]);
      createdWhilePaging.push(...made);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const ids = (res.body.data as AdminCharge[]).map((c) => c.id);
      pages.push(ids);
      if (page === 0) {
        // The first page holds the four charges made after this transaction began, so the
        // cursor now sorts above the late charge: it must come up on a later page. It is
        // recorded as denied, so that no money is missing from the books for it.
        await slow.query(
          `INSERT INTO charges (id, merchant_id, carrier_id, subscriber_id, msisdn, funding_type, status,
                                capture, amount, currency, revenue_share_bps, fee_bps, description,
                                denial_code)
           SELECT $1, merchant_id, carrier_id, subscriber_id, msisdn, funding_type, 'denied', capture,
                  amount, currency, revenue_share_bps, fee_bps, 'committed late', 'insufficient_funds'
             FROM charges WHERE id = $2`,
          [lateId, before[0]],
        );
        await slow.query('COMMIT');
        lateCommitted = true;
      }
      if (!res.body.has_more) break;
      after = ids[ids.length - 1];
    }
    await slow.end();
    expect(lateCommitted).toBe(true);

    const seen = pages.flat();
    // No repeats.
    expect(new Set(seen).size).toBe(seen.length);
    // No gaps: everything committed before the first page was read is there.
    for (const id of before) expect(seen).toContain(id);
    // The late charge sorts behind the cursor of the time it committed, so it is still shown, once.
    expect(seen.filter((id) => id === lateId)).toHaveLength(1);
    // Newest first throughout, across page boundaries.
    const keys = await sortKeys(seen);
    const order = seen.map((id) => keys.get(id)!);
    expect([...order].sort().reverse()).toEqual(order);
    // Charges created while paging show at most once each; a fresh walk shows all of them.
    const fresh = await allPages(admin.key, query, 7);
    expect(new Set(fresh).size).toBe(fresh.length);
    for (const id of [...before, ...createdWhilePaging, lateId]) expect(fresh).toContain(id);
    expect(fresh).toHaveLength(before.length + createdWhilePaging.length + 1);
  });
});
