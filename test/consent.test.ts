import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createHarness, randomSuffix, type Harness } from './helpers/harness.js';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  subscriberBalance,
  verifyLedger,
} from './helpers/factories.js';
import { confirm, logsMention, sandboxCode, wrongCode } from './helpers/consent.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ env: { PG_POOL_MAX: '40', RATE_LIMIT_MSISDN_PER_MINUTE: '100000' } });
});
afterAll(() => h.close());

function post(path: string, key: string, body?: object) {
  const req = h.http.post(path).set(bearer(key)).set('Idempotency-Key', `k-${randomSuffix()}`);
  return body ? req.send(body) : req;
}

/** A carrier whose charges of 100,000 or more need the subscriber's code, and a funded subscriber. */
async function consentSetup(merchantOverrides: Record<string, unknown> = {}) {
  const carrier = await newCarrier(h, { otp_threshold: '100000' });
  const merchant = await newMerchant(h, merchantOverrides);
  const sub = await newSubscriber(h, carrier, { balance: '500000' });
  return { carrier, merchant, sub };
}

describe('consent: one-time codes', () => {
  it('at the carrier threshold a charge waits for the code, holding the amount; the right code captures it', async () => {
    const { merchant, sub } = await consentSetup();
    const below = await charge(h, merchant, { msisdn: sub.msisdn, amount: '99999' });
    expect(below.status).toBe(201);
    expect(below.body.status).toBe('succeeded');

    const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '100000' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ status: 'pending_validation', split: null });
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '400001',
      held: '100000',
      available: '300001',
    });

    const code = await sandboxCode(h, merchant.key, sub.msisdn);
    expect(res.text).not.toContain(code);
    const done = await confirm(h, merchant.key, res.body.id, code);
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(done.body).toMatchObject({
      id: res.body.id,
      status: 'succeeded',
      amount_captured: '100000',
      split: { carrier_share: '30000', gateway_fee: '2500', merchant_net: '67500' },
    });
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '300001',
      held: '0',
      available: '300001',
    });
    const { rows } = await h.c.pool.query('SELECT 1 FROM charge_otps WHERE charge_id = $1', [
      res.body.id,
    ]);
    expect(rows).toHaveLength(0);
    const events = await h.http.get('/v1/events?limit=100').set(bearer(merchant.key));
    const types = (events.body.data as { type: string; data: { id: string } }[])
      .filter((e) => e.data.id === res.body.id)
      .map((e) => e.type);
    expect(types).toEqual(['charge.succeeded', 'charge.pending_validation']);
  });

  it('an always_otp merchant’s two-step charge: code → reserved → capture', async () => {
    const { merchant, sub } = await consentSetup({ consent: 'always_otp' });
    const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '2000', capture: false });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ status: 'pending_validation', reserved_until: null });

    const code = await sandboxCode(h, merchant.key, sub.msisdn);
    const reserved = await confirm(h, merchant.key, res.body.id, code);
    expect(reserved.status, JSON.stringify(reserved.body)).toBe(200);
    expect(reserved.body.status).toBe('reserved');
    expect(new Date(reserved.body.reserved_until).getTime()).toBeGreaterThan(
      Date.now() + 6 * 24 * 3600 * 1000,
    );
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '500000',
      held: '2000',
      available: '498000',
    });

    const captured = await post(`/v1/charges/${res.body.id}/capture`, merchant.key);
    expect(captured.status, JSON.stringify(captured.body)).toBe(200);
    expect(captured.body).toMatchObject({ status: 'succeeded', amount_captured: '2000' });
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '498000',
      held: '0',
      available: '498000',
    });
  });

  it('each wrong code answers 422 with attempts_remaining; the third denies the charge and releases the hold', async () => {
    const { merchant, sub } = await consentSetup();
    const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '150000' });
    const code = await sandboxCode(h, merchant.key, sub.msisdn);
    const wrong = wrongCode(code);

    const first = await confirm(h, merchant.key, res.body.id, wrong);
    expect(first.status).toBe(422);
    expect(first.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(first.body).toMatchObject({
      code: 'otp_invalid',
      attempts_remaining: 2,
      charge_id: res.body.id,
    });
    const second = await confirm(h, merchant.key, res.body.id, wrong);
    expect(second.body).toMatchObject({ code: 'otp_invalid', attempts_remaining: 1 });
    expect(await subscriberBalance(h, sub)).toMatchObject({ held: '150000' });

    const third = await confirm(h, merchant.key, res.body.id, wrong);
    expect(third.status).toBe(402);
    expect(third.body).toMatchObject({
      code: 'otp_attempts_exceeded',
      denial_code: 'otp_attempts_exceeded',
      charge_id: res.body.id,
    });
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '500000',
      held: '0',
      available: '500000',
    });
    const got = await h.http.get(`/v1/charges/${res.body.id}`).set(bearer(merchant.key));
    expect(got.body).toMatchObject({ status: 'denied', denial_code: 'otp_attempts_exceeded' });

    const late = await confirm(h, merchant.key, res.body.id, code);
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ code: 'invalid_state', current_status: 'denied' });
  });

  it('a wrong code, then the right one, succeeds', async () => {
    const { merchant, sub } = await consentSetup();
    const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '100000' });
    const code = await sandboxCode(h, merchant.key, sub.msisdn);
    expect((await confirm(h, merchant.key, res.body.id, wrongCode(code))).status).toBe(422);
    const ok = await confirm(h, merchant.key, res.body.id, code);
    expect(ok.status).toBe(200);
    expect(ok.body.status).toBe('succeeded');
  });

  it('a replayed confirm returns the stored answer; a replayed wrong code does not use up an attempt', async () => {
    const { merchant, sub } = await consentSetup();
    const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '100000' });
    const code = await sandboxCode(h, merchant.key, sub.msisdn);

    const wrongKey = `wrong-${randomSuffix()}`;
    const wrong = await confirm(h, merchant.key, res.body.id, wrongCode(code), wrongKey);
    expect(wrong.body.attempts_remaining).toBe(2);
    const wrongAgain = await confirm(h, merchant.key, res.body.id, wrongCode(code), wrongKey);
    expect(wrongAgain.status).toBe(422);
    expect(wrongAgain.headers['idempotent-replayed']).toBe('true');
    expect(wrongAgain.text).toBe(wrong.text);
    const { rows } = await h.c.pool.query<{ attempts: number }>(
      'SELECT attempts FROM charge_otps WHERE charge_id = $1',
      [res.body.id],
    );
    expect(rows[0]!.attempts).toBe(1);

    const key = `ok-${randomSuffix()}`;
    const first = await confirm(h, merchant.key, res.body.id, code, key);
    expect(first.status).toBe(200);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const replay = await confirm(h, merchant.key, res.body.id, code, key);
    expect(replay.status).toBe(200);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.text).toBe(first.text);
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '400000',
      held: '0',
      available: '400000',
    });
  });

  it('two concurrent confirms with the right code: one succeeds, the other is 409, money moves once', async () => {
    const { merchant, sub } = await consentSetup();
    const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '100000' });
    const code = await sandboxCode(h, merchant.key, sub.msisdn);
    const answers = await Promise.all([
      confirm(h, merchant.key, res.body.id, code),
      confirm(h, merchant.key, res.body.id, code),
    ]);
    expect(answers.map((a) => a.status).sort()).toEqual([200, 409]);
    expect(answers.find((a) => a.status === 409)!.body.current_status).toBe('succeeded');
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '400000',
      held: '0',
      available: '400000',
    });
  });

  it('the sweeper cancels a charge whose code expired (database time) and releases the hold; confirm is then 409', async () => {
    const { merchant, sub } = await consentSetup();
    const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '120000' });
    const code = await sandboxCode(h, merchant.key, sub.msisdn);
    const { rows } = await h.c.pool.query<{ valid_seconds: number }>(
      `SELECT extract(epoch FROM expires_at - created_at)::int AS valid_seconds FROM charge_otps WHERE charge_id = $1`,
      [res.body.id],
    );
    expect(rows[0]!.valid_seconds).toBe(300);

    await h.c.charges.expiryWorker().runOnce();
    expect(
      (await h.http.get(`/v1/charges/${res.body.id}`).set(bearer(merchant.key))).body.status,
    ).toBe('pending_validation');

    await h.c.pool.query(
      `UPDATE charge_otps SET expires_at = now() - interval '1 second' WHERE charge_id = $1`,
      [res.body.id],
    );
    let status = 'pending_validation';
    for (let i = 0; i < 10 && status === 'pending_validation'; i++) {
      await h.c.charges.expiryWorker().runOnce();
      const got = await h.http.get(`/v1/charges/${res.body.id}`).set(bearer(merchant.key));
      status = got.body.status;
      if (status === 'cancelled') expect(got.body.cancellation_reason).toBe('expired');
    }
    expect(status).toBe('cancelled');
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '500000',
      held: '0',
      available: '500000',
    });
    const late = await confirm(h, merchant.key, res.body.id, code);
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ code: 'invalid_state', current_status: 'cancelled' });
  });

  it('confirming after the code expired, before the sweeper ran, is 409 and cancels the charge', async () => {
    const { merchant, sub } = await consentSetup();
    const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '120000' });
    const code = await sandboxCode(h, merchant.key, sub.msisdn);
    await h.c.pool.query(
      `UPDATE charge_otps SET expires_at = now() - interval '1 second' WHERE charge_id = $1`,
      [res.body.id],
    );
    const late = await confirm(h, merchant.key, res.body.id, code);
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ code: 'invalid_state', current_status: 'cancelled' });
    const got = await h.http.get(`/v1/charges/${res.body.id}`).set(bearer(merchant.key));
    expect(got.body).toMatchObject({ status: 'cancelled', cancellation_reason: 'expired' });
    expect(await subscriberBalance(h, sub)).toMatchObject({ held: '0', available: '500000' });
  });

  it('confirm on a charge that never needed a code, or was cancelled, is 409; another merchant’s is 404', async () => {
    const { merchant, sub } = await consentSetup();
    const plain = await charge(h, merchant, { msisdn: sub.msisdn, amount: '1000' });
    const onSucceeded = await confirm(h, merchant.key, plain.body.id, '123456');
    expect(onSucceeded.status).toBe(409);
    expect(onSucceeded.body).toMatchObject({
      code: 'invalid_state',
      current_status: 'succeeded',
    });

    const pending = await charge(h, merchant, { msisdn: sub.msisdn, amount: '100000' });
    const code = await sandboxCode(h, merchant.key, sub.msisdn);
    const other = await newMerchant(h);
    expect((await confirm(h, other.key, pending.body.id, code)).status).toBe(404);

    const cancelled = await post(`/v1/charges/${pending.body.id}/cancel`, merchant.key);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({
      status: 'cancelled',
      cancellation_reason: 'requested_by_merchant',
    });
    expect(await subscriberBalance(h, sub)).toMatchObject({ held: '0' });
    const afterCancel = await confirm(h, merchant.key, pending.body.id, code);
    expect(afterCancel.status).toBe(409);
    expect(afterCancel.body.current_status).toBe('cancelled');
  });

  it('a malformed code is a 400 that uses no attempt', async () => {
    const { merchant, sub } = await consentSetup();
    const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '100000' });
    for (const code of ['12345', '1234567', 'abcdef']) {
      const bad = await confirm(h, merchant.key, res.body.id, code);
      expect(bad.status).toBe(400);
    }
    const { rows } = await h.c.pool.query<{ attempts: number }>(
      'SELECT attempts FROM charge_otps WHERE charge_id = $1',
      [res.body.id],
    );
    expect(rows[0]!.attempts).toBe(0);
  });

  it('a subscriber barred while the code was on its way is denied at confirm, and the hold released', async () => {
    const { carrier, merchant, sub } = await consentSetup();
    const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '100000' });
    const code = await sandboxCode(h, merchant.key, sub.msisdn);
    const barred = await h.http
      .put(`/v1/carrier/subscribers/${sub.msisdn}`)
      .set(bearer(carrier.key))
      .send({ funding_type: 'prepaid', status: 'barred' });
    expect(barred.status, JSON.stringify(barred.body)).toBe(200);
    const denied = await confirm(h, merchant.key, res.body.id, code);
    expect(denied.status).toBe(402);
    expect(denied.body.denial_code).toBe('subscriber_barred');
    expect(await subscriberBalance(h, sub)).toMatchObject({ held: '0', posted: '500000' });
  });

  it('an insufficient balance is denied at creation, before any code is sent', async () => {
    const carrier = await newCarrier(h, { otp_threshold: '100000' });
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '50000' });
    const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '100000' });
    expect(res.status).toBe(402);
    expect(res.body.code).toBe('insufficient_funds');
    const { rows } = await h.c.pool.query('SELECT 1 FROM sms_outbox WHERE msisdn = $1', [
      sub.msisdn,
    ]);
    expect(rows).toHaveLength(0);
  });

  it('the code is stored only as a keyed hash and never appears in the logs', async () => {
    const { merchant, sub } = await consentSetup();
    const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '100000' });
    const code = await sandboxCode(h, merchant.key, sub.msisdn);
    const { rows } = await h.c.pool.query<{ code_hash: Buffer }>(
      'SELECT code_hash FROM charge_otps WHERE charge_id = $1',
      [res.body.id],
    );
    expect(rows[0]!.code_hash).toHaveLength(32);
    expect(rows[0]!.code_hash.toString('latin1')).not.toContain(code);
    expect((await confirm(h, merchant.key, res.body.id, wrongCode(code))).status).toBe(422);
    expect((await confirm(h, merchant.key, res.body.id, code)).status).toBe(200);

    const confirmLines = h.logs.filter((l) => l.includes(`/v1/charges/${res.body.id}/confirm`));
    expect(confirmLines.length).toBeGreaterThanOrEqual(2);
    expect(h.logs.some((l) => l.includes('/v1/sandbox/sms'))).toBe(true);
    expect(logsMention(h, code)).toBe(false);
    const audit = await h.c.pool.query<{ summary: string }>(
      `SELECT summary::text FROM audit_events WHERE object_id = $1`,
      [res.body.id],
    );
    expect(audit.rows.length).toBeGreaterThanOrEqual(3);
    for (const a of audit.rows) expect(a.summary).not.toContain(code);
  });

  it('leaves the books balanced', async () => {
    expect((await verifyLedger(h)).ok).toBe(true);
  });
});
