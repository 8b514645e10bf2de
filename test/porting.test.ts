import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bearer,
  createHarness,
  newAdminKey,
  randomSuffix,
  type Harness,
} from './helpers/harness.js';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  randomMsisdn,
  subscriberBalance,
  verifyLedger,
  type CarrierFixture,
  type SubscriberFixture,
} from './helpers/factories.js';

let h: Harness;
let admin: string;
beforeAll(async () => {
  h = await createHarness();
  admin = await newAdminKey(h);
});
afterAll(() => h.close());

const idem = () => `p-${randomSuffix()}`;

function portIn(carrier: CarrierFixture, body: Record<string, unknown>, key = idem()) {
  return h.http
    .post('/v1/carrier/port-ins')
    .set(bearer(carrier.key))
    .set('Idempotency-Key', key)
    .send(body);
}

function answer(
  carrier: CarrierFixture,
  id: string,
  action: 'accept' | 'reject',
  body: Record<string, unknown> = {},
  key = idem(),
) {
  return h.http
    .post(`/v1/carrier/port-outs/${id}/${action}`)
    .set(bearer(carrier.key))
    .set('Idempotency-Key', key)
    .send(body);
}

function adminClose(id: string, action: 'complete' | 'cancel', key = idem()) {
  return h.http
    .post(`/v1/admin/ports/${id}/${action}`)
    .set(bearer(admin))
    .set('Idempotency-Key', key)
    .send();
}

function topup(sub: SubscriberFixture, amount: string) {
  return h.http
    .post(`/v1/carrier/subscribers/${sub.msisdn}/topups`)
    .set(bearer(sub.carrier.key))
    .set('Idempotency-Key', idem())
    .send({ amount, currency: 'VND', reference: `ref-${randomSuffix()}` });
}

async function portsOf(msisdn: string) {
  const res = await h.http.get('/v1/admin/ports').query({ msisdn }).set(bearer(admin));
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.data as Record<string, unknown>[];
}

async function records(msisdn: string) {
  const { rows } = await h.c.pool.query<{
    id: string;
    carrier_id: string;
    status: string;
    account_id: string;
  }>(
    'SELECT id, carrier_id, status, account_id FROM subscribers WHERE msisdn = $1 ORDER BY created_at',
    [msisdn],
  );
  return rows;
}

async function fundingBalance(carrierId: string): Promise<bigint> {
  const rows = await h.c.ledger.partyBalances(h.c.pool, 'carrier_funding', carrierId);
  return rows.reduce((s, r) => s + BigInt(r.posted), 0n);
}

async function carrierEvents(carrier: CarrierFixture) {
  const res = await h.http.get('/v1/carrier/events').query({ limit: 100 }).set(bearer(carrier.key));
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.data as { type: string; subject_id: string; data: Record<string, unknown> }[];
}

/** A prepaid number at a new losing carrier with `balance`, and a new gaining carrier. */
async function numberToPort(balance = '0') {
  const losing = await newCarrier(h);
  const gaining = await newCarrier(h);
  const sub = await newSubscriber(h, losing, { balance });
  return { losing, gaining, sub };
}

describe('porting: the request and the answers', () => {
  it('a port-in is pending; the losing carrier sees it and the gaining one learns who it is only once accepted', async () => {
    const { losing, gaining, sub } = await numberToPort();
    const res = await portIn(gaining, { msisdn: sub.msisdn, funding_type: 'postpaid' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({
      object: 'port',
      msisdn: sub.msisdn,
      status: 'pending',
      funding_type: 'postpaid',
      gaining_carrier: gaining.id,
      losing_carrier: null,
      closed_at: null,
    });
    expect(res.body.id).toMatch(/^port_/);

    const outs = await h.http.get('/v1/carrier/port-outs').set(bearer(losing.key));
    expect(outs.status).toBe(200);
    expect(outs.body.data).toHaveLength(1);
    expect(outs.body.data[0]).toMatchObject({ id: res.body.id, losing_carrier: losing.id });
    // Neither sees the other's side as its own.
    const insOfLosing = await h.http.get('/v1/carrier/port-ins').set(bearer(losing.key));
    expect(insOfLosing.body.data).toEqual([]);

    const accepted = await answer(losing, res.body.id, 'accept');
    expect(accepted.status, JSON.stringify(accepted.body)).toBe(200);
    expect(accepted.body).toMatchObject({ status: 'accepted' });
    const ins = await h.http
      .get('/v1/carrier/port-ins')
      .query({ status: 'accepted' })
      .set(bearer(gaining.key));
    expect(ins.body.data[0]).toMatchObject({ id: res.body.id, losing_carrier: losing.id });

    // Both carriers were told of each step.
    for (const carrier of [gaining, losing]) {
      const types = (await carrierEvents(carrier))
        .filter((e) => e.subject_id === res.body.id)
        .map((e) => e.type);
      expect(types).toEqual(['port.accepted', 'port.requested']);
    }
    const gainingRequested = (await carrierEvents(gaining)).find(
      (e) => e.type === 'port.requested',
    );
    expect(gainingRequested?.data.losing_carrier).toBeNull();
  });

  it('the losing carrier rejects with a reason; nothing else changes and the port stays closed', async () => {
    const { losing, gaining, sub } = await numberToPort('5000');
    const port = (await portIn(gaining, { msisdn: sub.msisdn, funding_type: 'prepaid' })).body;
    // Another carrier cannot answer it (404, as if it did not exist).
    const stranger = await newCarrier(h);
    expect((await answer(stranger, port.id, 'accept')).status).toBe(404);
    expect((await answer(gaining, port.id, 'reject', { reason: 'mine' })).status).toBe(404);

    const rejected = await answer(losing, port.id, 'reject', { reason: 'account number mismatch' });
    expect(rejected.status, JSON.stringify(rejected.body)).toBe(200);
    expect(rejected.body).toMatchObject({
      status: 'rejected',
      rejection_reason: 'account number mismatch',
    });
    expect(rejected.body.closed_at).not.toBeNull();
    const again = await answer(losing, port.id, 'accept');
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 'invalid_state', current_status: 'rejected' });
    expect((await adminClose(port.id, 'complete')).status).toBe(409);
    expect(await records(sub.msisdn)).toMatchObject([{ carrier_id: losing.id, status: 'active' }]);
    expect(await subscriberBalance(h, sub)).toMatchObject({ posted: '5000' });
    // A closed port leaves the number free for a new request.
    expect((await portIn(gaining, { msisdn: sub.msisdn, funding_type: 'prepaid' })).status).toBe(
      201,
    );
  });

  it('an admin cancels an open port; the holder keeps the number', async () => {
    const { losing, gaining, sub } = await numberToPort();
    const port = (await portIn(gaining, { msisdn: sub.msisdn, funding_type: 'prepaid' })).body;
    expect((await answer(losing, port.id, 'accept')).status).toBe(200);
    const cancelled = await adminClose(port.id, 'cancel');
    expect(cancelled.status, JSON.stringify(cancelled.body)).toBe(200);
    expect(cancelled.body).toMatchObject({ status: 'cancelled', losing_carrier: losing.id });
    expect((await adminClose(port.id, 'complete')).body).toMatchObject({
      code: 'invalid_state',
      current_status: 'cancelled',
    });
    await h.c.ports.completionWorker().runOnce();
    expect(await records(sub.msisdn)).toMatchObject([{ carrier_id: losing.id, status: 'active' }]);
    const audit = await h.c.pool.query<{ action: string }>(
      `SELECT action FROM audit_events WHERE object_type = 'port' AND object_id = $1 ORDER BY occurred_at`,
      [port.id],
    );
    expect(audit.rows.map((r) => r.action)).toEqual([
      'port.requested',
      'port.accepted',
      'port.cancelled',
    ]);
  });

  it('a state-changing POST replays its answer for the same Idempotency-Key', async () => {
    const { losing, gaining, sub } = await numberToPort();
    const key = idem();
    const first = await portIn(gaining, { msisdn: sub.msisdn, funding_type: 'prepaid' }, key);
    const replay = await portIn(gaining, { msisdn: sub.msisdn, funding_type: 'prepaid' }, key);
    expect(replay.status).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.text).toBe(first.text);
    const acceptKey = idem();
    const accepted = await answer(losing, first.body.id, 'accept', {}, acceptKey);
    const acceptedAgain = await answer(losing, first.body.id, 'accept', {}, acceptKey);
    expect(acceptedAgain.text).toBe(accepted.text);
    const completeKey = idem();
    const done = await adminClose(first.body.id, 'complete', completeKey);
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    const doneAgain = await adminClose(first.body.id, 'complete', completeKey);
    expect(doneAgain.headers['idempotent-replayed']).toBe('true');
    expect(doneAgain.text).toBe(done.text);
    expect(await portsOf(sub.msisdn)).toHaveLength(1);
  });
});

describe('porting: completion', () => {
  it('moves the number: old record ported_out, holds cancelled (ported), prepaid balance to the losing carrier, new record at zero', async () => {
    const losing = await newCarrier(h, { otp_threshold: '100000' });
    const gaining = await newCarrier(h);
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, losing, { balance: '500000' });
    const captured = await charge(h, merchant, { msisdn: sub.msisdn, amount: '20000' });
    expect(captured.status).toBe(201);
    const reserved = await charge(h, merchant, {
      msisdn: sub.msisdn,
      amount: '30000',
      capture: false,
    });
    expect(reserved.body.status).toBe('reserved');
    const consent = await charge(h, merchant, { msisdn: sub.msisdn, amount: '150000' });
    expect(consent.body.status).toBe('pending_validation');
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '480000',
      held: '180000',
      available: '300000',
    });
    const fundingBefore = await fundingBalance(losing.id);

    const port = (await portIn(gaining, { msisdn: sub.msisdn, funding_type: 'prepaid' })).body;
    expect((await answer(losing, port.id, 'accept')).status).toBe(200);
    const done = await adminClose(port.id, 'complete');
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(done.body).toMatchObject({
      status: 'completed',
      returned_balance: '480000',
      cancelled_charges: 2,
    });

    const [old, fresh] = await records(sub.msisdn);
    expect(old).toMatchObject({ carrier_id: losing.id, status: 'ported_out' });
    expect(fresh).toMatchObject({ carrier_id: gaining.id, status: 'active' });
    // The old record is history, readable by its carrier; the new one starts at zero.
    expect(await subscriberBalance(h, sub)).toEqual({ posted: '0', held: '0', available: '0' });
    const newView = await h.http
      .get(`/v1/carrier/subscribers/${sub.msisdn}`)
      .set(bearer(gaining.key));
    expect(newView.body).toMatchObject({
      status: 'active',
      funding_type: 'prepaid',
      balance: { posted: '0', held: '0', available: '0' },
      spent: { today: '0', this_month: '0' },
    });
    expect(await fundingBalance(losing.id)).toBe(fundingBefore + 480000n);
    const journal = await h.c.pool.query<{ kind: string; owner_id: string; amount: string }>(
      `SELECT a.kind, a.owner_id, e.amount::text FROM journal_transactions t
         JOIN journal_entries e ON e.transaction_id = t.id JOIN ledger_accounts a ON a.id = e.account_id
        WHERE t.kind = 'port_out' AND t.reference_id = $1 ORDER BY e.amount`,
      [port.id],
    );
    expect(journal.rows).toEqual([
      { kind: 'subscriber', owner_id: old!.id, amount: '-480000' },
      { kind: 'carrier_funding', owner_id: losing.id, amount: '480000' },
    ]);

    for (const held of [reserved.body, consent.body]) {
      const got = await h.http.get(`/v1/charges/${held.id}`).set(bearer(merchant.key));
      expect(got.body).toMatchObject({ status: 'cancelled', cancellation_reason: 'ported' });
    }
    const capture = await h.http
      .post(`/v1/charges/${reserved.body.id}/capture`)
      .set(bearer(merchant.key))
      .set('Idempotency-Key', idem())
      .send({});
    expect(capture.body).toMatchObject({ code: 'invalid_state', current_status: 'cancelled' });
    const merchantEvents = await h.http
      .get('/v1/events')
      .query({ type: 'charge.cancelled' })
      .set(bearer(merchant.key));
    expect(merchantEvents.body.data).toHaveLength(2);

    // The old carrier cannot write its history; the new one holds the number.
    const put = await h.http
      .put(`/v1/carrier/subscribers/${sub.msisdn}`)
      .set(bearer(losing.key))
      .send({ funding_type: 'prepaid', status: 'active' });
    expect(put.status).toBe(409);
    expect(put.body).toMatchObject({ code: 'invalid_state', current_status: 'ported_out' });
    const top = await topup(sub, '1000');
    expect(top.status).toBe(409);
    expect(top.body).toMatchObject({ code: 'invalid_state' });
    const gainTop = await topup({ msisdn: sub.msisdn, carrier: gaining }, '7000');
    expect(gainTop.status).toBe(201);
    const after = await charge(h, merchant, { msisdn: sub.msisdn, amount: '5000' });
    expect(after.status).toBe(201);
    expect(after.body.carrier).toBe(gaining.code);

    const audit = await h.c.pool.query<{ action: string; object_id: string }>(
      `SELECT action, object_id FROM audit_events
        WHERE (object_type = 'port' AND object_id = $1) OR summary->>'port_id' = $1
        ORDER BY occurred_at, id`,
      [port.id],
    );
    expect(audit.rows.map((r) => r.action).sort()).toEqual(
      [
        'charge.cancelled',
        'charge.cancelled',
        'port.accepted',
        'port.completed',
        'port.requested',
        'subscriber.created',
        'subscriber.ported_out',
      ].sort(),
    );
    for (const carrier of [gaining, losing]) {
      const completed = (await carrierEvents(carrier)).find(
        (e) => e.subject_id === port.id && e.type === 'port.completed',
      );
      expect(completed?.data.status).toBe('completed');
      expect(completed?.data.returned_balance).toBe(carrier === losing ? '480000' : null);
    }
    expect((await verifyLedger(h)).ok).toBe(true);
  });

  it('the worker completes accepted ports once effective_at has passed, not pending or future ones', async () => {
    const due = await numberToPort('1000');
    const future = await numberToPort('1000');
    const pending = await numberToPort('1000');
    const duePort = (await portIn(due.gaining, { msisdn: due.sub.msisdn, funding_type: 'prepaid' }))
      .body;
    const futurePort = (
      await portIn(future.gaining, {
        msisdn: future.sub.msisdn,
        funding_type: 'prepaid',
        effective_at: new Date(Date.now() + 86_400_000).toISOString(),
      })
    ).body;
    const pendingPort = (
      await portIn(pending.gaining, { msisdn: pending.sub.msisdn, funding_type: 'prepaid' })
    ).body;
    expect((await answer(due.losing, duePort.id, 'accept')).status).toBe(200);
    expect((await answer(future.losing, futurePort.id, 'accept')).status).toBe(200);

    const worker = h.c.workers.find((w) => w.name === 'port-completion');
    expect(worker).toBeDefined();
    // Two instances at once: SKIP LOCKED hands each due port to one of them.
    const handled = await Promise.all([worker!.runOnce(), worker!.runOnce()]);
    expect(handled.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1);
    const [d] = await portsOf(due.sub.msisdn);
    expect(d).toMatchObject({ status: 'completed', returned_balance: '1000' });
    expect((await portsOf(future.sub.msisdn))[0]).toMatchObject({ status: 'accepted' });
    expect((await portsOf(pending.sub.msisdn))[0]).toMatchObject({
      id: pendingPort.id,
      status: 'pending',
    });
    expect(await records(due.sub.msisdn)).toMatchObject([
      { carrier_id: due.losing.id, status: 'ported_out' },
      { carrier_id: due.gaining.id, status: 'active' },
    ]);
    const actor = await h.c.pool.query<{ actor_type: string; actor_id: string }>(
      `SELECT actor_type, actor_id FROM audit_events WHERE object_id = $1 AND action = 'port.completed'`,
      [duePort.id],
    );
    expect(actor.rows).toEqual([{ actor_type: 'system', actor_id: 'port-completion' }]);
    expect((await verifyLedger(h)).ok).toBe(true);
  });

  it('a number can port away and back: the carrier gets a new record, the old one stays history', async () => {
    const { losing: a, gaining: b, sub } = await numberToPort('2000');
    const there = (await portIn(b, { msisdn: sub.msisdn, funding_type: 'postpaid' })).body;
    expect((await adminClose(there.id, 'complete')).status).toBe(200);
    const back = await portIn(a, { msisdn: sub.msisdn, funding_type: 'prepaid' });
    expect(back.status, JSON.stringify(back.body)).toBe(201);
    expect((await adminClose(back.body.id, 'complete')).status).toBe(200);
    expect((await records(sub.msisdn)).map((r) => [r.carrier_id, r.status])).toEqual([
      [a.id, 'ported_out'],
      [b.id, 'ported_out'],
      [a.id, 'active'],
    ]);
    const view = await h.http.get(`/v1/carrier/subscribers/${sub.msisdn}`).set(bearer(a.key));
    expect(view.body).toMatchObject({ status: 'active', balance: { posted: '0' } });
    expect((await topup(sub, '100')).status).toBe(201);
  });

  it("charges made before the port stay the old carrier's; their refunds reverse the old carrier's legs", async () => {
    const { losing, gaining, sub } = await numberToPort('100000');
    const postpaidLosing = await newCarrier(h);
    const postpaid = await newSubscriber(h, postpaidLosing, {
      funding_type: 'postpaid',
      credit_limit: '100000',
    });
    const merchant = await newMerchant(h);
    const prepaidCharge = (await charge(h, merchant, { msisdn: sub.msisdn, amount: '10000' })).body;
    const postpaidCharge = (await charge(h, merchant, { msisdn: postpaid.msisdn, amount: '8000' }))
      .body;
    for (const s of [sub, postpaid]) {
      const p = (await portIn(gaining, { msisdn: s.msisdn, funding_type: 'prepaid' })).body;
      expect((await adminClose(p.id, 'complete')).status).toBe(200);
    }

    const refund = async (chargeId: string, amount: string) => {
      const res = await h.http
        .post(`/v1/charges/${chargeId}/refunds`)
        .set(bearer(merchant.key))
        .set('Idempotency-Key', idem())
        .send({ amount });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      const legs = await h.c.pool.query<{ kind: string; owner_id: string; amount: string }>(
        `SELECT a.kind, a.owner_id, e.amount::text FROM journal_entries e
           JOIN journal_transactions t ON t.id = e.transaction_id
           JOIN ledger_accounts a ON a.id = e.account_id
          WHERE t.reference_id = $1 ORDER BY a.kind`,
        [res.body.id],
      );
      return legs.rows;
    };
    const [oldPostpaid] = await records(postpaid.msisdn);
    // Prepaid: the refunded amount goes where the balance went, the losing carrier's funding.
    const prepaidLegs = await refund(prepaidCharge.id, '4000');
    expect(prepaidLegs.find((l) => l.kind === 'carrier_share')).toMatchObject({
      owner_id: losing.id,
      amount: '-1200',
    });
    expect(prepaidLegs.find((l) => l.kind === 'carrier_funding')).toEqual({
      kind: 'carrier_funding',
      owner_id: losing.id,
      amount: '4000',
    });
    expect(prepaidLegs.some((l) => l.kind === 'subscriber')).toBe(false);
    // Postpaid: a credit on the old record, for the losing carrier's last bill.
    const postpaidLegs = await refund(postpaidCharge.id, '8000');
    expect(postpaidLegs.find((l) => l.kind === 'carrier_share')).toMatchObject({
      owner_id: postpaidLosing.id,
    });
    expect(postpaidLegs.find((l) => l.kind === 'subscriber')).toEqual({
      kind: 'subscriber',
      owner_id: oldPostpaid!.id,
      amount: '8000',
    });
    // The charges are still the old carriers': search, settlement and statements key on them.
    const search = await h.http
      .get('/v1/admin/charges')
      .query({ msisdn: sub.msisdn })
      .set(bearer(admin));
    expect(search.body.data.map((c: { carrier: string }) => c.carrier)).toEqual([losing.code]);
    const { rows } = await h.c.pool.query<{ carrier_id: string }>(
      'SELECT carrier_id FROM charges WHERE id = ANY($1)',
      [[prepaidCharge.id, postpaidCharge.id]],
    );
    expect(rows.map((r) => r.carrier_id).sort()).toEqual([losing.id, postpaidLosing.id].sort());
    expect((await verifyLedger(h)).ok).toBe(true);
  });
});

describe('porting: races', () => {
  it('charges racing a completion land on the old holder before it or the new one after it, never both, never lost', async () => {
    for (let round = 0; round < 3; round++) {
      const { losing, gaining, sub } = await numberToPort('1000000');
      const merchant = await newMerchant(h);
      const port = (await portIn(gaining, { msisdn: sub.msisdn, funding_type: 'prepaid' })).body;
      expect((await answer(losing, port.id, 'accept')).status).toBe(200);
      // Reservations made before, captured while the completion runs.
      const held: string[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await charge(h, merchant, {
          msisdn: sub.msisdn,
          amount: '2000',
          capture: false,
        });
        held.push(r.body.id as string);
      }
      const attempts = Array.from({ length: 40 }, (_, i) => ({
        key: `race-${randomSuffix()}`,
        capture: i % 2 === 0,
      }));
      // The completion starts once five charges have been answered (so those are on the old
      // holder) while the other 35 are still in flight.
      let answered = 0;
      let startCompletion!: () => void;
      const started = new Promise<void>((resolve) => (startCompletion = resolve));
      const completion = started.then(() =>
        round === 1
          ? h.c.ports.completionWorker().runOnce()
          : adminClose(port.id, 'complete').then((r) => r.status),
      );
      const capturing = started.then(() =>
        Promise.all(
          held.map((id) =>
            h.http
              .post(`/v1/charges/${id}/capture`)
              .set(bearer(merchant.key))
              .set('Idempotency-Key', idem())
              .send({}),
          ),
        ),
      );
      // Top-ups by the losing carrier while the completion runs.
      const toppingUp = started.then(() => Promise.all([1, 2, 3, 4].map(() => topup(sub, '500'))));
      const answers = await Promise.all(
        attempts.map(async (a) => {
          const res = await charge(
            h,
            merchant,
            { msisdn: sub.msisdn, amount: '1000', capture: a.capture },
            a.key,
          );
          if (++answered === 5) startCompletion();
          return res;
        }),
      );
      expect(await completion).toBe(round === 1 ? 1 : 200);
      const captures = await capturing;
      const topups = await toppingUp;
      for (const t of topups) {
        expect(
          t.status === 201 || (t.status === 409 && t.body.current_status === 'ported_out'),
          JSON.stringify(t.body),
        ).toBe(true);
      }
      const toppedUp = 500n * BigInt(topups.filter((t) => t.status === 201).length);
      // A capture either won (before the port) or found the reservation cancelled by it.
      for (const c of captures) {
        expect(
          c.status === 200 || (c.status === 409 && c.body.current_status === 'cancelled'),
          JSON.stringify(c.body),
        ).toBe(true);
      }
      for (const a of answers) expect([201, 402], JSON.stringify(a.body)).toContain(a.status);
      expect((await portsOf(sub.msisdn))[0]).toMatchObject({ status: 'completed' });

      const [old, fresh] = await records(sub.msisdn);
      const charges = await h.c.pool.query<{
        id: string;
        subscriber_id: string;
        status: string;
        amount_captured: string;
        cancellation_reason: string | null;
        denial_code: string | null;
      }>(
        `SELECT id, subscriber_id, status, amount_captured::text, cancellation_reason, denial_code
           FROM charges WHERE merchant_id = $1`,
        [merchant.id],
      );
      // Every answered charge exists once, on one of the two records.
      const ids = answers.map((a) => (a.body.id ?? a.body.charge_id) as string);
      expect(new Set(ids).size).toBe(attempts.length);
      expect(charges.rows.map((c) => c.id).sort()).toEqual([...ids, ...held].sort());
      for (const c of charges.rows) expect([old!.id, fresh!.id]).toContain(c.subscriber_id);
      const onOld = charges.rows.filter((c) => c.subscriber_id === old!.id);
      const onNew = charges.rows.filter((c) => c.subscriber_id === fresh!.id);
      // Before the port: succeeded, or a reservation the completion cancelled. After it: the new
      // record has no money, so each is an insufficient-funds denial there.
      for (const c of onOld) {
        expect(
          c.status === 'succeeded' ||
            (c.status === 'cancelled' && c.cancellation_reason === 'ported'),
          JSON.stringify(c),
        ).toBe(true);
      }
      for (const c of onNew)
        expect(c).toMatchObject({ status: 'denied', denial_code: 'insufficient_funds' });
      expect(onOld.length).toBeGreaterThanOrEqual(5);
      const spent = onOld.reduce((s, c) => s + BigInt(c.amount_captured), 0n);
      const [p] = await portsOf(sub.msisdn);
      expect(BigInt(p!.returned_balance as string)).toBe(1_000_000n + toppedUp - spent);
      expect(p!.cancelled_charges).toBe(onOld.filter((c) => c.status === 'cancelled').length);
      const balances = await h.c.pool.query<{ id: string; posted: string; pending: string }>(
        'SELECT id, posted::text, pending::text FROM ledger_accounts WHERE id = ANY($1)',
        [[old!.account_id, fresh!.account_id]],
      );
      for (const b of balances.rows) expect(b).toMatchObject({ posted: '0', pending: '0' });
    }
    expect((await verifyLedger(h)).ok).toBe(true);
  }, 60_000);

  it('a one-step charge whose debit waited behind a completion of a postpaid number is undone and lands on the new holder', async () => {
    // A postpaid record keeps its floor after the port, so the debit itself would succeed: the
    // statement must see ported_out once it has the account lock, and undo the debit.
    const losing = await newCarrier(h);
    const gaining = await newCarrier(h);
    const sub = await newSubscriber(h, losing, { funding_type: 'postpaid', credit_limit: '50000' });
    const merchant = await newMerchant(h);
    const port = (await portIn(gaining, { msisdn: sub.msisdn, funding_type: 'postpaid' })).body;
    expect((await answer(losing, port.id, 'accept')).status).toBe(200);
    const [old] = await records(sub.msisdn);

    // Hold the old account's row lock, queue the completion behind it, then the charge behind
    // the completion: when the lock is let go, the completion runs first.
    const blocker = await h.c.pool.connect();
    const waiting = async (n: number) => {
      for (let i = 0; i < 200; i++) {
        const { rows } = await h.c.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_locks
            WHERE NOT granted AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())`,
        );
        if (rows[0]!.n >= n) return;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`fewer than ${n} waiters on the account lock`);
    };
    try {
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM ledger_accounts WHERE id = $1 FOR UPDATE', [
        old!.account_id,
      ]);
      const completion = adminClose(port.id, 'complete').then((r) => r);
      await waiting(1);
      const charged = charge(h, merchant, { msisdn: sub.msisdn, amount: '7000' }).then((r) => r);
      await waiting(2);
      await blocker.query('COMMIT');
      const [done, answered] = await Promise.all([completion, charged]);
      expect(done.status, JSON.stringify(done.body)).toBe(200);
      // The new postpaid record starts with no credit: the retried charge is denied there.
      expect(answered.status, JSON.stringify(answered.body)).toBe(402);
    } finally {
      blocker.release();
    }
    const [, fresh] = await records(sub.msisdn);
    const { rows } = await h.c.pool.query<{ subscriber_id: string; status: string }>(
      'SELECT subscriber_id, status FROM charges WHERE merchant_id = $1',
      [merchant.id],
    );
    expect(rows).toEqual([{ subscriber_id: fresh!.id, status: 'denied' }]);
    const balance = await h.c.pool.query<{ posted: string }>(
      'SELECT posted::text FROM ledger_accounts WHERE id = $1',
      [old!.account_id],
    );
    expect(balance.rows[0]!.posted).toBe('0');
    expect((await verifyLedger(h)).ok).toBe(true);
  });
});

describe('porting: bad input changes nothing', () => {
  it('refuses malformed port-ins with problem+json and writes nothing', async () => {
    const { losing, gaining, sub } = await numberToPort();
    const bad: [Record<string, unknown>, number, string][] = [
      [{ funding_type: 'prepaid' }, 400, 'validation_failed'],
      [{ msisdn: sub.msisdn }, 400, 'validation_failed'],
      [{ msisdn: '0901234567', funding_type: 'prepaid' }, 400, 'validation_failed'],
      [{ msisdn: sub.msisdn, funding_type: 'credit' }, 400, 'validation_failed'],
      [{ msisdn: sub.msisdn, funding_type: 'prepaid', extra: 1 }, 400, 'validation_failed'],
      [
        { msisdn: sub.msisdn, funding_type: 'prepaid', effective_at: 'soon' },
        400,
        'validation_failed',
      ],
      [
        {
          msisdn: sub.msisdn,
          funding_type: 'prepaid',
          effective_at: new Date(Date.now() + 400 * 86_400_000).toISOString(),
        },
        400,
        'validation_failed',
      ],
      [{ msisdn: randomMsisdn(), funding_type: 'prepaid' }, 409, 'invalid_state'],
    ];
    for (const [body, status, code] of bad) {
      const res = await portIn(gaining, body);
      expect(res.status, JSON.stringify(res.body)).toBe(status);
      expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
      expect(res.body.code).toBe(code);
    }
    // The holder cannot port its own number in.
    const own = await portIn(losing, { msisdn: sub.msisdn, funding_type: 'prepaid' });
    expect(own.body).toMatchObject({ status: 409, code: 'invalid_state' });
    const noKey = await h.http
      .post('/v1/carrier/port-ins')
      .set(bearer(gaining.key))
      .send({ msisdn: sub.msisdn, funding_type: 'prepaid' });
    expect(noKey.body.code).toBe('idempotency_key_missing');
    const merchant = await newMerchant(h);
    const wrongRole = await h.http
      .post('/v1/carrier/port-ins')
      .set(bearer(merchant.key))
      .set('Idempotency-Key', idem())
      .send({ msisdn: sub.msisdn, funding_type: 'prepaid' });
    expect(wrongRole.status).toBe(403);
    expect(await portsOf(sub.msisdn)).toEqual([]);
    expect(await carrierEvents(losing)).toEqual([]);

    // A second open port of the same number, by anyone, is a conflict.
    expect((await portIn(gaining, { msisdn: sub.msisdn, funding_type: 'prepaid' })).status).toBe(
      201,
    );
    const third = await newCarrier(h);
    const second = await portIn(third, { msisdn: sub.msisdn, funding_type: 'prepaid' });
    expect(second.body).toMatchObject({ status: 409, code: 'conflict' });
    expect(await portsOf(sub.msisdn)).toHaveLength(1);
  });

  it('refuses bad answers, unknown ports, wrong roles and bad list filters', async () => {
    const { losing, gaining, sub } = await numberToPort();
    const port = (await portIn(gaining, { msisdn: sub.msisdn, funding_type: 'prepaid' })).body;
    for (const body of [
      {},
      { reason: '' },
      { reason: '   ' },
      { reason: 'x'.repeat(501) },
      { reason: 'no', x: 1 },
    ]) {
      const res = await answer(losing, port.id, 'reject', body);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    }
    expect((await answer(losing, port.id, 'accept', { surprise: true })).status).toBe(400);
    expect((await answer(losing, 'port_nope', 'accept')).status).toBe(404);
    expect((await adminClose('port_nope', 'complete')).status).toBe(404);
    expect((await adminClose('bad id!', 'cancel')).status).toBe(400);
    const carrierAsAdmin = await h.http
      .post(`/v1/admin/ports/${port.id}/complete`)
      .set(bearer(losing.key))
      .set('Idempotency-Key', idem())
      .send();
    expect(carrierAsAdmin.status).toBe(403);
    const auditor = await newAdminKey(h, 'auditor');
    const auditorCompletes = await h.http
      .post(`/v1/admin/ports/${port.id}/complete`)
      .set(bearer(auditor))
      .set('Idempotency-Key', idem())
      .send();
    expect(auditorCompletes.status).toBe(403);
    expect((await h.http.get('/v1/admin/ports').set(bearer(auditor))).status).toBe(200);
    for (const [path, query] of [
      ['/v1/carrier/port-ins', { status: 'open' }],
      ['/v1/carrier/port-outs', { limit: 0 }],
      ['/v1/carrier/events', { limit: 101 }],
    ] as const) {
      const res = await h.http.get(path).query(query).set(bearer(losing.key));
      expect(res.status, path).toBe(400);
    }
    expect(
      (await h.http.get('/v1/admin/ports').query({ msisdn: 'x' }).set(bearer(admin))).status,
    ).toBe(400);
    const [only] = await portsOf(sub.msisdn);
    expect(only).toMatchObject({ id: port.id, status: 'pending' });
    expect(await records(sub.msisdn)).toMatchObject([{ carrier_id: losing.id, status: 'active' }]);
  });
});
