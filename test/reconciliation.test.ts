import { Readable } from 'node:stream';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../src/http/context.js';
import { bearer, createHarness, type Harness } from './helpers/harness.js';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  type CarrierFixture,
  type MerchantFixture,
} from './helpers/factories.js';
import { refund } from './helpers/settlement.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

const HEADER = 'carrier_ref,gateway_ref,msisdn,type,amount,currency,occurred_at';

function upload(carrierKey: string, body: string | Buffer, query = '') {
  return h.http
    .post(`/v1/carrier/reconciliations${query}`)
    .set(bearer(carrierKey))
    .set('Content-Type', 'text/csv')
    .send(body);
}

async function capturedAt(chargeId: string): Promise<string> {
  const { rows } = await h.c.pool.query<{ t: string }>(
    `SELECT to_char(captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t
       FROM charges WHERE id = $1`,
    [chargeId],
  );
  return rows[0]!.t;
}

interface Scene {
  carrier: CarrierFixture;
  merchant: MerchantFixture;
  msisdn: string;
  charges: { id: string; amount: string; at: string }[];
  refundId: string;
  reservedId: string;
  foreignChargeId: string;
  start: string;
}

/** A carrier with five captured charges, one refund and a reservation; another carrier's charge. */
async function scene(): Promise<Scene> {
  const start = new Date(Date.now() - 60_000).toISOString();
  const carrier = await newCarrier(h);
  const merchant = await newMerchant(h);
  const sub = await newSubscriber(h, carrier, { balance: '1000000' });
  const charges = [];
  for (const amount of ['1000', '2000', '3000', '4000', '5000']) {
    const res = await charge(h, merchant, { msisdn: sub.msisdn, amount });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    charges.push({ id: res.body.id as string, amount, at: await capturedAt(res.body.id) });
  }
  const back = await refund(h, merchant.key, charges[0]!.id, { amount: '400' });
  expect(back.status).toBe(201);
  const reserved = await charge(h, merchant, { msisdn: sub.msisdn, amount: '700', capture: false });
  expect(reserved.body.status).toBe('reserved');
  const otherCarrier = await newCarrier(h);
  const otherSub = await newSubscriber(h, otherCarrier, { balance: '10000' });
  const foreign = await charge(h, merchant, { msisdn: otherSub.msisdn, amount: '900' });
  expect(foreign.status).toBe(201);
  return {
    carrier,
    merchant,
    msisdn: sub.msisdn,
    charges,
    refundId: back.body.id,
    reservedId: reserved.body.id,
    foreignChargeId: foreign.body.id,
    start,
  };
}

describe('reconciliation', () => {
  it('classifies every category, reports malformed rows by line and still matches the good ones', async () => {
    const s = await scene();
    const [c1, c2, c3, c4, c5] = s.charges;
    const otherMsisdn = s.msisdn.replace(/\d$/, (d) => String((Number(d) + 1) % 10));
    const lines = [
      HEADER,
      `CR-1,${c1!.id},${s.msisdn},charge,1000,VND,${c1!.at}`, // 2 matched
      `CR-2,${c2!.id},${s.msisdn},charge,2001,VND,${c2!.at}`, // 3 amount
      `CR-3,${c3!.id},${otherMsisdn},charge,3000,VND,${c3!.at}`, // 4 msisdn
      `CR-4,${s.refundId},${s.msisdn},refund,400,VND,${c1!.at}`, // 5 matched refund
      `CR-5,${c4!.id},${s.msisdn},refund,4000.00,USD,${c4!.at}`, // 6 type + currency
      `CR-6,ch_00000000000000000000000000,${s.msisdn},charge,10,VND,${c1!.at}`, // 7 missing at gateway
      `CR-7,${c1!.id},${s.msisdn},charge,1000,VND,${c1!.at}`, // 8 duplicate of line 2
      `CR-8,${c2!.id},${s.msisdn},charge,12.5,VND,${c1!.at}`, // 9 bad amount
      `CR-9,${c3!.id},${s.msisdn},chargeback,3000,VND,${c1!.at}`, // 10 unknown type
      `CR-10,${c5!.id},${s.msisdn},charge,5000,VND`, // 11 wrong column count
      `CR-11,${c4!.id},${s.msisdn},charge,4000,VND,2025-13-45T00:00:00Z`, // 12 bad date
      '',
      `"CR-12, quoted",${s.reservedId},${s.msisdn},charge,700,VND,${c1!.at}`, // 14 not captured
      `CR-13,${s.foreignChargeId},${s.msisdn},charge,900,VND,${c1!.at}`, // 15 another carrier's
    ];
    const from = s.start;
    const to = new Date(Date.now() + 60_000).toISOString();
    const res = await upload(
      s.carrier.key,
      lines.join('\r\n') + '\r\n',
      `?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({
      object: 'reconciliation',
      carrier: s.carrier.id,
      status: 'completed',
      source: 'api',
      rows: 13,
      period: { start: from, end: to },
      counts: {
        matched: 2,
        amount_mismatch: 3,
        missing_at_gateway: 3,
        duplicate: 1,
        invalid_row: 4,
        // Every gateway record of the period is named somewhere; c5 only on the malformed line
        // 11, which still counts as the carrier having it.
        missing_at_carrier: 0,
      },
    });
    expect(res.body.id).toMatch(/^rec_/);

    const again = await h.http
      .get(`/v1/carrier/reconciliations/${res.body.id}`)
      .set(bearer(s.carrier.key));
    expect(again.status).toBe(200);
    expect(again.body).toEqual(res.body);

    const csv = await h.http
      .get(`/v1/carrier/reconciliations/${res.body.id}?exceptions=csv`)
      .set(bearer(s.carrier.key));
    expect(csv.status).toBe(200);
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    expect(csv.text.split('\r\n')[0]).toBe(
      'category,line,gateway_ref,carrier_ref,type,field,carrier_value,gateway_value,reason',
    );
    const rows = parse<Record<string, string>>(csv.text, { columns: true });
    const byLine = new Map(rows.map((r) => [r.line, r]));
    expect(rows.map((r) => [r.line, r.category])).toEqual([
      ['3', 'amount_mismatch'],
      ['4', 'amount_mismatch'],
      ['6', 'amount_mismatch'],
      ['7', 'missing_at_gateway'],
      ['8', 'duplicate'],
      ['9', 'invalid_row'],
      ['10', 'invalid_row'],
      ['11', 'invalid_row'],
      ['12', 'invalid_row'],
      ['14', 'missing_at_gateway'],
      ['15', 'missing_at_gateway'],
    ]);
    expect(byLine.get('3')).toMatchObject({
      gateway_ref: c2!.id,
      carrier_ref: 'CR-2',
      field: 'amount',
      carrier_value: '2001',
      gateway_value: '2000',
    });
    expect(byLine.get('4')).toMatchObject({
      field: 'msisdn',
      carrier_value: otherMsisdn,
      gateway_value: s.msisdn,
    });
    expect(byLine.get('6')).toMatchObject({
      field: 'type;currency',
      carrier_value: 'refund;USD',
      gateway_value: 'charge;VND',
    });
    expect(byLine.get('8')!.reason).toContain('line 2');
    expect(byLine.get('9')!.reason).toMatch(/^bad amount "12.5"/);
    expect(byLine.get('10')!.reason).toMatch(/^unknown type "chargeback"/);
    expect(byLine.get('11')!.reason).toBe('wrong column count: expected 7, got 6');
    expect(byLine.get('12')!.reason).toMatch(/^bad date "2025-13-45T00:00:00Z"/);
    expect(byLine.get('14')).toMatchObject({
      carrier_ref: 'CR-12, quoted',
      gateway_ref: s.reservedId,
    });

    // The download reads the exceptions page by page; small pages give the same rows in order.
    const paged: string[] = [];
    for await (const page of h.c.reconciliations.exceptionPages(res.body.id, 4))
      paged.push(...page.map((e) => e.line ?? ''));
    expect(paged).toEqual(rows.map((r) => r.line));
  });

  it('gateway records of the period that the file lacks are missing_at_carrier; the default period spans the file', async () => {
    const s = await scene();
    const [c1, c2, , , c5] = s.charges;
    // c1..c5 were captured in order; a file covering c1 to c5 that lists only c1, c2 and c5
    // misses c3, c4 and the refund (created after c5, so outside the default period).
    const body = [
      HEADER,
      `A,${c1!.id},${s.msisdn},charge,1000,VND,${c1!.at}`,
      `B,${c2!.id},${s.msisdn},charge,2000,VND,${c2!.at}`,
      `C,${c5!.id},${s.msisdn},charge,5000,VND,${c5!.at}`,
    ].join('\n');
    const res = await upload(s.carrier.key, body);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.period).toEqual({
      start: new Date(c1!.at).toISOString(),
      end: new Date(new Date(c5!.at).getTime() + 1).toISOString(),
    });
    expect(res.body.counts).toEqual({
      matched: 3,
      amount_mismatch: 0,
      missing_at_carrier: 2,
      missing_at_gateway: 0,
      duplicate: 0,
      invalid_row: 0,
    });
    const csv = await h.http
      .get(`/v1/carrier/reconciliations/${res.body.id}?exceptions=csv`)
      .set(bearer(s.carrier.key));
    const rows = parse<Record<string, string>>(csv.text, { columns: true });
    expect(rows.map((r) => [r.category, r.line, r.gateway_ref, r.gateway_value]).sort()).toEqual(
      [
        ['missing_at_carrier', '', s.charges[2]!.id, '3000'],
        ['missing_at_carrier', '', s.charges[3]!.id, '4000'],
      ].sort(),
    );

    // With an explicit period reaching past the refund, the refund is missing too.
    const wide = await upload(
      s.carrier.key,
      body,
      `?from=${encodeURIComponent(s.start)}&to=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`,
    );
    expect(wide.body.counts.missing_at_carrier).toBe(3);
  });

  it("another carrier's reconciliation is 404, for the report and its exceptions", async () => {
    const s = await scene();
    const res = await upload(s.carrier.key, `${HEADER}\n`);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ rows: 0, period: null });
    const other = await newCarrier(h);
    const read = await h.http
      .get(`/v1/carrier/reconciliations/${res.body.id}`)
      .set(bearer(other.key));
    expect(read.status).toBe(404);
    const csv = await h.http
      .get(`/v1/carrier/reconciliations/${res.body.id}?exceptions=csv`)
      .set(bearer(other.key));
    expect(csv.status).toBe(404);
    expect(csv.headers['content-type']).toMatch(/problem\+json/);
    const merchant = await newMerchant(h);
    const asMerchant = await upload(merchant.key, `${HEADER}\n`);
    expect(asMerchant.status).toBe(403);
  });

  it('a bad header, a non-CSV content type or an oversized upload is refused and stores nothing', async () => {
    const carrier = await newCarrier(h);
    const count = async () =>
      (
        await h.c.pool.query(
          'SELECT count(*)::int AS n FROM reconciliations WHERE carrier_id = $1',
          [carrier.id],
        )
      ).rows[0].n;
    const badHeader = await upload(carrier.key, 'ref,id,amount\nx,y,1\n');
    expect(badHeader.status).toBe(400);
    expect(badHeader.body.detail).toMatch(/missing carrier_ref, gateway_ref/);
    const empty = await upload(carrier.key, '');
    expect(empty.status).toBe(400);
    const json = await h.http
      .post('/v1/carrier/reconciliations')
      .set(bearer(carrier.key))
      .send({ csv: HEADER });
    expect(json.status).toBe(415);
    const unclosed = await upload(carrier.key, `${HEADER}\nx,"never closed${'y'.repeat(70_000)}\n`);
    expect(unclosed.status).toBe(400);
    expect(unclosed.body.detail).toMatch(/line/);

    const small = await createHarness({ env: { RECONCILIATION_MAX_BYTES: '2048' } });
    try {
      const big = `${HEADER}\n${'x,ch_1,+84901234567,charge,1,VND,2025-01-01T00:00:00Z\n'.repeat(100)}`;
      const declared = await small.http
        .post('/v1/carrier/reconciliations')
        .set(bearer(carrier.key))
        .set('Content-Type', 'text/csv')
        .send(big);
      expect(declared.status).toBe(413);
      expect(declared.body.code).toBe('payload_too_large');
      // Without a Content-Length the bytes are counted as they stream in.
      await expect(
        small.c.reconciliations.reconcile(SYSTEM_ACTOR('test'), carrier.id, Readable.from([big]), {
          source: 'cli',
        }),
      ).rejects.toMatchObject({ code: 'payload_too_large' });
    } finally {
      await small.close();
    }
    expect(await count()).toBe(0);
  });

  it('counts bytes while streaming a chunked upload and answers 413 past the limit', async () => {
    const carrier = await newCarrier(h);
    const small = await createHarness({ env: { RECONCILIATION_MAX_BYTES: '4096' } });
    try {
      const row = 'x,ch_1,+84901234567,charge,1,VND,2025-01-01T00:00:00Z\n';
      const fits = small.http
        .post('/v1/carrier/reconciliations')
        .set(bearer(carrier.key))
        .set('Content-Type', 'text/csv; charset=utf-8');
      fits.write(`${HEADER}\n`);
      for (let i = 0; i < 10; i++) fits.write(row);
      const ok = await fits;
      expect(ok.status, JSON.stringify(ok.body)).toBe(201);
      expect(ok.body).toMatchObject({ rows: 10, counts: { missing_at_gateway: 1, duplicate: 9 } });

      const req = small.http
        .post('/v1/carrier/reconciliations')
        .set(bearer(carrier.key))
        .set('Content-Type', 'text/csv');
      req.write(`${HEADER}\n`);
      for (let i = 0; i < 200; i++) req.write(row);
      const res = await req;
      expect(res.status).toBe(413);
      expect(res.body).toMatchObject({ code: 'payload_too_large', max_bytes: 4096 });
    } finally {
      await small.close();
    }
  });

  it('the CLI path reads a file stream through the same service', async () => {
    const s = await scene();
    const [c1] = s.charges;
    const view = await h.c.reconciliations.reconcile(
      SYSTEM_ACTOR('reconcile-cli'),
      await h.c.reconciliations.carrierIdByCode(s.carrier.code),
      Readable.from([`${HEADER}\n`, `A,${c1!.id},${s.msisdn},charge,1000,VND,${c1!.at}\n`]),
      { source: 'cli' },
    );
    expect(view).toMatchObject({ source: 'cli', rows: 1, counts: { matched: 1 } });
    const audit = await h.c.pool.query(
      `SELECT actor_type, summary->'counts'->>'matched' AS matched FROM audit_events
        WHERE action = 'reconciliation.completed' AND object_id = $1`,
      [view.id],
    );
    expect(audit.rows).toEqual([{ actor_type: 'system', matched: '1' }]);
  });
});
