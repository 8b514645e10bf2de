import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createHarness, newAdminKey, type Harness } from './helpers/harness.js';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  verifyLedger,
} from './helpers/factories.js';
import {
  carrierWithDays,
  closeDays,
  closeStatement,
  localDate,
  localInstant,
  refund,
  setCapturedAt,
  setRefundCreatedAt,
} from './helpers/settlement.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

const bps = (amount: number, rate: number) => (amount * rate) / 10_000;

describe('settlement statements', () => {
  it("a day's charges and partial and full refunds of two merchants add up to independent arithmetic", async () => {
    const tz = 'Asia/Ho_Chi_Minh';
    const c = await carrierWithDays(h, { timezone: tz, revenue_share_bps: 3000 });
    const a = await newMerchant(h, { fee_bps: 250 });
    const b = await newMerchant(h, { fee_bps: 500 });
    const sub = await newSubscriber(h, c.carrier, { balance: '1000000' });
    // Amounts whose splits and proportional refunds are exact, so plain arithmetic predicts them.
    const plan = {
      [a.id]: {
        merchant: a,
        fee: 250,
        charges: [10_000, 20_000, 4_000],
        refunds: [
          [0, 4_000],
          [2, 4_000],
        ],
      },
      [b.id]: { merchant: b, fee: 500, charges: [8_000, 12_000], refunds: [[1, 2_000]] },
    } as const;
    const day = await localDate(h, tz, 1);
    const noon = await localInstant(h, tz, `${day} 12:00:00`);
    const expected: Record<string, Record<string, string | number>> = {};
    for (const p of Object.values(plan)) {
      const ids: string[] = [];
      for (const amount of p.charges) {
        const res = await charge(h, p.merchant, { msisdn: sub.msisdn, amount: String(amount) });
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        ids.push(res.body.id);
        await setCapturedAt(h, res.body.id, noon);
      }
      for (const [index, amount] of p.refunds) {
        const res = await refund(h, p.merchant.key, ids[index]!, { amount: String(amount) });
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        await setRefundCreatedAt(h, res.body.id, noon);
      }
      const gross = p.charges.reduce((s, x) => s + x, 0);
      const refunded = p.refunds.reduce((s, [, x]) => s + x, 0);
      const carrierShare = bps(gross - refunded, 3000);
      const fee = bps(gross - refunded, p.fee);
      expected[p.merchant.id] = {
        merchant_id: p.merchant.id,
        charge_count: p.charges.length,
        gross: String(gross),
        refund_count: p.refunds.length,
        refunds: String(refunded),
        carrier_share: String(carrierShare),
        gateway_fee: String(fee),
        merchant_net: String(gross - refunded - carrierShare - fee),
        owed_to_gateway: String(gross - refunded - carrierShare),
      };
    }

    // Before the close, the open statement already shows what a close would freeze.
    const dayId = c.statements.get(day)!;
    const open = await h.http.get(`/v1/carrier/settlements/${dayId}`).set(bearer(c.carrier.key));
    expect(open.status).toBe(200);
    expect(open.body).toMatchObject({ status: 'open', provisional: true, business_date: day });

    const [, , closed] = await closeDays(h, c, [
      await localDate(h, tz, 3),
      await localDate(h, tz, 2),
      day,
    ]);
    const lines = (closed!.lines as Record<string, unknown>[]).map((l) => {
      const { merchant_name: _name, ...rest } = l;
      return rest;
    });
    expect(
      lines.sort((x, y) => String(x.merchant_id).localeCompare(String(y.merchant_id))),
    ).toEqual(
      Object.values(expected).sort((x, y) =>
        String(x.merchant_id).localeCompare(String(y.merchant_id)),
      ),
    );
    const sum = (k: string) => Object.values(expected).reduce((s, e) => s + Number(e[k]), 0);
    expect(closed!.totals).toEqual({
      charge_count: 5,
      gross: String(sum('gross')),
      refund_count: 3,
      refunds: String(sum('refunds')),
      carrier_share: String(sum('carrier_share')),
      gateway_fee: String(sum('gateway_fee')),
      merchant_net: String(sum('merchant_net')),
      owed_to_gateway: String(sum('gross') - sum('refunds') - sum('carrier_share')),
    });
    expect(closed!.totals).toMatchObject({
      gross: '54000',
      refunds: '10000',
      carrier_share: '13200',
    });

    // The same statement as CSV: one line per merchant and a TOTAL line.
    const csv = await h.http
      .get(`/v1/carrier/settlements/${dayId}`)
      .set(bearer(c.carrier.key))
      .set('Accept', 'text/csv');
    expect(csv.status).toBe(200);
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    const rows = parse<Record<string, string>>(csv.text, { columns: true });
    expect(rows).toHaveLength(3);
    expect(rows[2]).toMatchObject({
      merchant_id: 'TOTAL',
      charge_count: '5',
      gross: '54000',
      refunds: '10000',
      owed_to_gateway: String(54_000 - 10_000 - 13_200),
    });
    expect(rows.find((r) => r.merchant_id === a.id)).toMatchObject({
      owed_to_gateway: expected[a.id]!.owed_to_gateway,
      merchant_net: expected[a.id]!.merchant_net,
    });
  });

  it('closing twice, or five times at once, is one close with one audit event', async () => {
    const tz = 'Asia/Ho_Chi_Minh';
    const c = await carrierWithDays(h, { timezone: tz }, 1);
    const m = await newMerchant(h);
    const sub = await newSubscriber(h, c.carrier, { balance: '100000' });
    const paid = await charge(h, m, { msisdn: sub.msisdn, amount: '7000' });
    const yesterday = await localDate(h, tz, 1);
    await setCapturedAt(h, paid.body.id, await localInstant(h, tz, `${yesterday} 08:00:00`));
    const id = c.statements.get(yesterday)!;

    const answers = await Promise.all(
      Array.from({ length: 5 }, () => closeStatement(h, c.admin, id)),
    );
    for (const r of answers) expect(r.status, JSON.stringify(r.body)).toBe(200);
    const closedAt = new Set(answers.map((r) => r.body.closed_at));
    expect(closedAt.size).toBe(1);
    for (const r of answers)
      expect(r.body.totals).toMatchObject({ charge_count: 1, gross: '7000' });

    const again = await closeStatement(h, c.admin, id);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(answers[0]!.body);

    const audit = await h.c.pool.query(
      `SELECT count(*)::int AS n FROM audit_events WHERE action = 'settlement.closed' AND object_id = $1`,
      [id],
    );
    expect(audit.rows[0].n).toBe(1);
    const items = await h.c.pool.query(
      'SELECT count(*)::int AS n FROM settlement_items WHERE statement_id = $1',
      [id],
    );
    expect(items.rows[0].n).toBe(1);
  });

  it("the day boundary is the carrier's local midnight, not UTC's", async () => {
    for (const tz of ['Asia/Ho_Chi_Minh', 'America/New_York']) {
      const c = await carrierWithDays(h, { timezone: tz });
      const m = await newMerchant(h);
      const sub = await newSubscriber(h, c.carrier, { balance: '100000' });
      const d2 = await localDate(h, tz, 2);
      const d1 = await localDate(h, tz, 1);
      // The first two are one millisecond apart around local midnight; in UTC both fall on the
      // same calendar date (17:00Z in Ho Chi Minh City, 04:00/05:00Z in New York).
      const times = [
        await localInstant(h, tz, `${d2} 23:59:59.999`),
        await localInstant(h, tz, `${d1} 00:00:00.000`),
        await localInstant(h, tz, `${d1} 23:59:59.999`),
      ];
      expect(times[0]!.slice(0, 10)).toBe(times[1]!.slice(0, 10));
      const amounts = [1000, 2000, 4000];
      for (let i = 0; i < 3; i++) {
        const res = await charge(h, m, { msisdn: sub.msisdn, amount: String(amounts[i]) });
        expect(res.status).toBe(201);
        await setCapturedAt(h, res.body.id, times[i]!);
      }
      const [, day2, day1] = await closeDays(h, c, [await localDate(h, tz, 3), d2, d1]);
      expect(day2!.totals, tz).toMatchObject({ charge_count: 1, gross: '1000' });
      expect(day1!.totals, tz).toMatchObject({ charge_count: 2, gross: '6000' });
      expect(day1!.period).toEqual({
        start: new Date(await localInstant(h, tz, `${d1} 00:00:00`)).toISOString(),
        end: new Date(
          await localInstant(h, tz, `${await localDate(h, tz, 0)} 00:00:00`),
        ).toISOString(),
      });
    }
  });

  it("a refund created after its day's statement was closed falls into the next open day", async () => {
    const carrier = await newCarrier(h);
    const admin = await newAdminKey(h);
    const m = await newMerchant(h, { fee_bps: 500 });
    const sub = await newSubscriber(h, carrier, { balance: '100000' });
    await h.c.settlements.openStatements();
    const paid = await charge(h, m, { msisdn: sub.msisdn, amount: '10000' });
    expect(paid.status).toBe(201);

    const list = await h.http.get('/v1/carrier/settlements?status=open').set(bearer(carrier.key));
    const today = list.body.data.at(-1);
    const closed = await closeStatement(h, admin, today.id);
    expect(closed.body.totals).toMatchObject({ charge_count: 1, gross: '10000', refund_count: 0 });

    // Same local day, but after the close.
    const late = await refund(h, m.key, paid.body.id, { amount: '2000' });
    expect(late.status).toBe(201);

    const after = await h.http.get(`/v1/carrier/settlements/${today.id}`).set(bearer(carrier.key));
    expect(after.body).toEqual(closed.body);

    const next = await h.http
      .get(`/v1/carrier/settlements?status=open&date_gte=${today.business_date}`)
      .set(bearer(carrier.key));
    const nextId = next.body.data.at(-1).id;
    const preview = await h.http.get(`/v1/carrier/settlements/${nextId}`).set(bearer(carrier.key));
    expect(preview.body).toMatchObject({ status: 'open', provisional: true });
    expect(preview.body.totals).toMatchObject({ refund_count: 1, refunds: '2000' });

    const nextClosed = await closeStatement(h, admin, nextId);
    expect(nextClosed.status).toBe(200);
    // The reversed split of a 2,000 refund: 600 carrier share, 100 fee, 1,300 merchant net.
    expect(nextClosed.body.totals).toEqual({
      charge_count: 0,
      gross: '0',
      refund_count: 1,
      refunds: '2000',
      carrier_share: '-600',
      gateway_fee: '-100',
      merchant_net: '-1300',
      owed_to_gateway: '-1400',
    });
  });

  it('charges captured while a close runs are counted exactly once, on the closed day or the next', async () => {
    const carrier = await newCarrier(h);
    const admin = await newAdminKey(h);
    const m = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '10000000' });
    await h.c.settlements.openStatements();
    const list = await h.http.get('/v1/carrier/settlements?status=open').set(bearer(carrier.key));
    const first = list.body.data.at(-1);

    const charges = Array.from({ length: 40 }, (_, i) =>
      charge(h, m, { msisdn: sub.msisdn, amount: String(1000 + i) }),
    );
    const closing = (async () => {
      await new Promise((r) => setTimeout(r, 30));
      return closeStatement(h, admin, first.id);
    })();
    const [results, closed] = await Promise.all([Promise.all(charges), closing]);
    expect(closed.status, JSON.stringify(closed.body)).toBe(200);
    const captured = results.filter((r) => r.status === 201);
    expect(captured).toHaveLength(40);
    const total = captured.reduce((s, r) => s + Number(r.body.amount), 0);

    const next = await h.http
      .get(`/v1/carrier/settlements?status=open&date_gte=${first.business_date}`)
      .set(bearer(carrier.key));
    const nextId = next.body.data.at(-1).id;
    const nextClosed = await closeStatement(h, admin, nextId);
    expect(nextClosed.status).toBe(200);
    const counted = Number(closed.body.totals.gross) + Number(nextClosed.body.totals.gross);
    expect(counted).toBe(total);
    expect(closed.body.totals.charge_count + nextClosed.body.totals.charge_count).toBe(40);
    const reread = await h.http.get(`/v1/carrier/settlements/${first.id}`).set(bearer(carrier.key));
    expect(reread.body.totals).toEqual(closed.body.totals);
  });

  it('a capture whose transaction began before a close but commits after it lands on the next day', async () => {
    const carrier = await newCarrier(h);
    const admin = await newAdminKey(h);
    const m = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '100000' });
    await h.c.settlements.openStatements();
    const reserved = await charge(h, m, { msisdn: sub.msisdn, amount: '5000', capture: false });
    expect(reserved.status).toBe(201);
    const list = await h.http.get('/v1/carrier/settlements?status=open').set(bearer(carrier.key));
    const today = list.body.data.at(-1);

    // A capture in flight: its row is stamped with its transaction's start, before the close, but
    // becomes visible only after the close has swept the day.
    const inFlight = await h.c.pool.connect();
    try {
      await inFlight.query('BEGIN');
      await inFlight.query(
        `UPDATE charges SET status = 'succeeded', amount_captured = amount, amount_held = 0,
                carrier_share = 1500, gateway_fee = 125, merchant_net = 3375, captured_at = now()
          WHERE id = $1`,
        [reserved.body.id],
      );
      await new Promise((r) => setTimeout(r, 20));
      const closed = await closeStatement(h, admin, today.id);
      expect(closed.status).toBe(200);
      expect(closed.body.totals.charge_count).toBe(0);
      await inFlight.query('COMMIT');
    } finally {
      inFlight.release();
    }
    const next = await h.http
      .get(`/v1/carrier/settlements?status=open&date_gte=${today.business_date}`)
      .set(bearer(carrier.key));
    const nextClosed = await closeStatement(h, admin, next.body.data.at(-1).id);
    expect(nextClosed.body.totals).toMatchObject({ charge_count: 1, gross: '5000' });
  });

  it('days close in order: an earlier open day must be closed first', async () => {
    const tz = 'Asia/Ho_Chi_Minh';
    const c = await carrierWithDays(h, { timezone: tz }, 2);
    const res = await closeStatement(h, c.admin, c.statements.get(await localDate(h, tz, 1))!);
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({
      code: 'invalid_state',
      earlier_open_statement: c.statements.get(await localDate(h, tz, 2)),
    });
  });

  it('the worker closes days that ended more than the grace period ago, and leaves today open', async () => {
    const tz = 'Asia/Ho_Chi_Minh';
    const c = await carrierWithDays(h, { timezone: tz }, 2);
    const m = await newMerchant(h);
    const sub = await newSubscriber(h, c.carrier, { balance: '100000' });
    const paid = await charge(h, m, { msisdn: sub.msisdn, amount: '3000' });
    const d1 = await localDate(h, tz, 1);
    await setCapturedAt(h, paid.body.id, await localInstant(h, tz, `${d1} 10:00:00`));
    // Grace 0: every day before today is due. Other carriers' due days close too; that is fine.
    const worker = await createHarness({ env: { SETTLEMENT_GRACE_SECONDS: '0' } });
    try {
      for (let i = 0; i < 50 && (await worker.c.settlements.worker().runOnce()) > 0; i++);
    } finally {
      await worker.close();
    }
    const list = await h.http.get('/v1/carrier/settlements').set(bearer(c.carrier.key));
    const byDate = new Map<string, { status: string; totals: unknown }>(
      list.body.data.map((s: { business_date: string }) => [s.business_date, s]),
    );
    expect(byDate.get(await localDate(h, tz, 2))?.status).toBe('closed');
    expect(byDate.get(d1)).toMatchObject({ status: 'closed', totals: { gross: '3000' } });
    expect(byDate.get(await localDate(h, tz, 0))?.status).toBe('open');
    const audit = await h.c.pool.query(
      `SELECT actor_type, actor_id FROM audit_events WHERE action = 'settlement.closed' AND object_id = $1`,
      [c.statements.get(d1)],
    );
    expect(audit.rows).toEqual([{ actor_type: 'system', actor_id: 'settlement-close' }]);
  });
});

describe('settlement access', () => {
  it("a carrier sees only its own statements; another carrier's is 404", async () => {
    const tz = 'Asia/Ho_Chi_Minh';
    const mine = await carrierWithDays(h, { timezone: tz }, 2);
    const other = await newCarrier(h);
    const id = mine.statements.get(await localDate(h, tz, 1))!;
    const res = await h.http.get(`/v1/carrier/settlements/${id}`).set(bearer(other.key));
    expect(res.status).toBe(404);
    const list = await h.http.get('/v1/carrier/settlements').set(bearer(other.key));
    expect(list.body.data.map((s: { id: string }) => s.id)).not.toContain(id);
  });

  it('lists filter by local date and status and page with starting_after', async () => {
    const tz = 'Asia/Ho_Chi_Minh';
    const c = await carrierWithDays(h, { timezone: tz }, 4);
    await closeDays(h, c, [await localDate(h, tz, 4)]);
    const key = bearer(c.carrier.key);
    const d3 = await localDate(h, tz, 3);
    const d1 = await localDate(h, tz, 1);
    const window = await h.http
      .get(`/v1/carrier/settlements?date_gte=${d3}&date_lt=${d1}`)
      .set(key);
    expect(window.body.data.map((s: { business_date: string }) => s.business_date)).toEqual([
      await localDate(h, tz, 2),
      d3,
    ]);
    const closed = await h.http.get('/v1/carrier/settlements?status=closed').set(key);
    expect(closed.body.data).toHaveLength(1);
    expect(closed.body.data[0].totals).toMatchObject({ charge_count: 0, owed_to_gateway: '0' });
    const page1 = await h.http.get('/v1/carrier/settlements?limit=2').set(key);
    expect(page1.body.has_more).toBe(true);
    const page2 = await h.http
      .get(`/v1/carrier/settlements?limit=2&starting_after=${page1.body.data[1].id}`)
      .set(key);
    expect(page2.body.data[0].business_date < page1.body.data[1].business_date).toBe(true);
    const bad = await h.http.get('/v1/carrier/settlements?date_gte=yesterday').set(key);
    expect(bad.status).toBe(400);

    const auditor = await newAdminKey(h, 'auditor');
    const all = await h.http
      .get(`/v1/admin/settlements?carrier_id=${c.carrier.id}&limit=100`)
      .set(bearer(auditor));
    expect(all.status).toBe(200);
    expect(all.body.data).toHaveLength(c.statements.size);
    const close = await closeStatement(h, auditor, page1.body.data[0].id);
    expect(close.status).toBe(403);
    const carrierClose = await h.http
      .post(`/v1/admin/settlements/${page1.body.data[0].id}/close`)
      .set(key);
    expect(carrierClose.status).toBe(403);
  });
});

describe('settling a statement', () => {
  it("posts the carrier's payment to the ledger, shows it as settled in the merchant's balance, and the books still verify", async () => {
    const tz = 'Asia/Ho_Chi_Minh';
    const c = await carrierWithDays(h, { timezone: tz, revenue_share_bps: 3000 }, 1);
    const m = await newMerchant(h, { fee_bps: 250 });
    const sub = await newSubscriber(h, c.carrier, { balance: '100000' });
    const d1 = await localDate(h, tz, 1);
    const at = await localInstant(h, tz, `${d1} 09:30:00`);
    const first = await charge(h, m, { msisdn: sub.msisdn, amount: '10000' });
    const second = await charge(h, m, { msisdn: sub.msisdn, amount: '6000' });
    const back = await refund(h, m.key, second.body.id, { amount: '1000' });
    expect(back.status).toBe(201);
    for (const id of [first.body.id, second.body.id]) await setCapturedAt(h, id, at);
    await setRefundCreatedAt(h, back.body.id, at);
    // 16,000 captured, 1,000 refunded: carrier 3000+1800-300, fee 250+150-25, net 6750+4050-675.
    const [closed] = await closeDays(h, c, [d1]);
    expect(closed!.totals).toMatchObject({
      carrier_share: '4500',
      gateway_fee: '375',
      merchant_net: '10125',
      owed_to_gateway: '10500',
    });
    const stlId = c.statements.get(d1)!;

    const balance = () => h.http.get('/v1/balance').set(bearer(m.key));
    expect((await balance()).body.balances).toEqual([
      { currency: 'VND', pending_settlement: '10125', settled: '0' },
    ]);

    const settle = (id: string, reference: string) =>
      h.http
        .post(`/v1/admin/settlements/${id}/settle`)
        .set(bearer(c.admin))
        .send({ payment_reference: reference });
    const today = c.statements.get(await localDate(h, tz, 0))!;
    const early = await settle(today, 'WIRE-0');
    expect(early.status).toBe(409);
    expect(early.body).toMatchObject({ code: 'invalid_state', current_status: 'open' });

    const settled = await settle(stlId, 'WIRE-2024-001');
    expect(settled.status, JSON.stringify(settled.body)).toBe(200);
    expect(settled.body).toMatchObject({
      status: 'settled',
      payment_reference: 'WIRE-2024-001',
      totals: closed!.totals,
    });

    const legs = await h.c.pool.query<{ kind: string; owner_id: string; amount: string }>(
      `SELECT a.kind, a.owner_id, e.amount::text
         FROM journal_transactions t JOIN journal_entries e ON e.transaction_id = t.id
         JOIN ledger_accounts a ON a.id = e.account_id
        WHERE t.kind = 'settlement' AND t.reference_id = $1
        ORDER BY a.kind`,
      [stlId],
    );
    expect(legs.rows).toEqual([
      { kind: 'carrier_funding', owner_id: c.carrier.id, amount: '10500' },
      { kind: 'gateway_fees', owner_id: 'gateway', amount: '-375' },
      { kind: 'merchant_payable', owner_id: m.id, amount: '-10125' },
    ]);
    expect((await balance()).body.balances).toEqual([
      { currency: 'VND', pending_settlement: '0', settled: '10125' },
    ]);

    const replay = await settle(stlId, 'WIRE-2024-001');
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(settled.body);
    const other = await settle(stlId, 'WIRE-2024-002');
    expect(other.status).toBe(409);
    const postings = await h.c.pool.query(
      `SELECT count(*)::int AS n FROM journal_transactions WHERE kind = 'settlement' AND reference_id = $1`,
      [stlId],
    );
    expect(postings.rows[0].n).toBe(1);
    const closeAgain = await closeStatement(h, c.admin, stlId);
    expect(closeAgain.status).toBe(200);
    expect(closeAgain.body.status).toBe('settled');

    const verdict = await verifyLedger(h);
    expect(verdict.ok, JSON.stringify(verdict)).toBe(true);
  });

  it('a settled statement cannot be altered, even directly in the database', async () => {
    const tz = 'Asia/Ho_Chi_Minh';
    const c = await carrierWithDays(h, { timezone: tz }, 1);
    const [closed] = await closeDays(h, c, [await localDate(h, tz, 1)]);
    await expect(
      h.c.pool.query('UPDATE settlement_statements SET gross = gross + 1 WHERE id = $1', [
        closed!.id,
      ]),
    ).rejects.toThrow(/immutable/);
    await expect(
      h.c.pool.query(
        "UPDATE settlement_statements SET status = 'open', closed_at = NULL WHERE id = $1",
        [closed!.id],
      ),
    ).rejects.toThrow(/immutable/);
    await expect(
      h.c.pool.query('DELETE FROM settlement_lines WHERE statement_id = $1', [closed!.id]),
    ).rejects.toThrow(/immutable/);
  });
});
