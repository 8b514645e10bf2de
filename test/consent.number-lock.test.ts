import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeIn, confirm, smsWorker, wrongCode } from './helpers/consent.js';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  subscriberBalance,
  verifyLedger,
  type MerchantFixture,
} from './helpers/factories.js';
import {
  bearer,
  createHarness,
  newAdminKey,
  randomSuffix,
  type Harness,
} from './helpers/harness.js';

let h: Harness;
beforeAll(async () => {
  // The production defaults of the per-number lock: 5 wrong codes per 15 minutes.
  h = await createHarness({ env: { PG_POOL_MAX: '40' } });
});
afterAll(() => h.close());

interface Pending {
  id: string;
  merchant: MerchantFixture;
  code: string;
}

/** Each charge's code, as the sandbox SMS inbox shows them to an admin. */
async function codesOf(ids: string[]): Promise<Map<string, string>> {
  await smsWorker(h).runOnce();
  const admin = await newAdminKey(h);
  const codes = new Map<string, string>();
  for (const msisdn of new Set(await msisdnsOf(ids))) {
    const res = await h.http
      .get(`/v1/sandbox/sms?msisdn=${encodeURIComponent(msisdn)}&limit=100`)
      .set(bearer(admin));
    expect(res.status).toBe(200);
    for (const m of res.body.data as { charge_id: string; message: string }[]) {
      if (ids.includes(m.charge_id)) codes.set(m.charge_id, codeIn(m.message));
    }
  }
  expect(codes.size).toBe(ids.length);
  return codes;
}

async function msisdnsOf(ids: string[]): Promise<string[]> {
  const { rows } = await h.c.pool.query<{ msisdn: string }>(
    'SELECT msisdn FROM charges WHERE id = ANY($1)',
    [ids],
  );
  return rows.map((r) => r.msisdn);
}

async function pendingCharges(
  merchants: MerchantFixture[],
  msisdn: string,
  count: number,
): Promise<Pending[]> {
  const created = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const merchant = merchants[i % merchants.length]!;
      const res = await charge(h, merchant, { msisdn, amount: '5000' });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body.status).toBe('pending_validation');
      return { id: res.body.id as string, merchant };
    }),
  );
  const codes = await codesOf(created.map((c) => c.id));
  return created.map((c) => ({ ...c, code: codes.get(c.id)! }));
}

async function chargeStatus(p: Pending): Promise<{ status: string; denial_code: string | null }> {
  const res = await h.http.get(`/v1/charges/${p.id}`).set(bearer(p.merchant.key));
  expect(res.status).toBe(200);
  return { status: res.body.status, denial_code: res.body.denial_code };
}

/** Moves the number's counted wrong codes back by 16 minutes: the 15-minute window has passed. */
async function letWindowPass(msisdn: string): Promise<void> {
  const { rowCount } = await h.c.pool.query(
    `UPDATE otp_number_failures
        SET failed_at = ARRAY(SELECT t - interval '16 minutes' FROM unnest(failed_at) AS t)
      WHERE msisdn = $1`,
    [msisdn],
  );
  expect(rowCount).toBe(1);
}

describe('one-time codes: at most 5 wrong codes per number per 15 minutes, across charges and merchants', () => {
  it('20 concurrent wrong codes on 20 charges of one number from 4 merchants: exactly 5 are checked, the rest denied otp_locked', async () => {
    const carrier = await newCarrier(h, { otp_threshold: '1000' });
    const otherCarrier = await newCarrier(h, { otp_threshold: '1000' });
    const sub = await newSubscriber(h, carrier, { balance: '1000000' });
    const other = await newSubscriber(h, otherCarrier, { balance: '1000000' });
    const merchants = await Promise.all([1, 2, 3, 4].map(() => newMerchant(h)));
    const pending = await pendingCharges(merchants, sub.msisdn, 21);
    const spare = pending.pop()!;
    const otherPending = (await pendingCharges(merchants, other.msisdn, 1))[0]!;

    const answers = await Promise.all(
      pending.map((p) => confirm(h, p.merchant.key, p.id, wrongCode(p.code))),
    );
    const checked = answers.filter((r) => r.status === 422);
    const locked = answers.filter((r) => r.status === 402);
    expect(checked).toHaveLength(5);
    expect(locked).toHaveLength(15);
    for (const r of checked) expect(r.body).toMatchObject({ code: 'otp_invalid' });
    for (const r of locked) {
      expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(r.body).toMatchObject({ code: 'otp_locked', denial_code: 'otp_locked' });
    }
    const { rows } = await h.c.pool.query<{ failures: number }>(
      'SELECT cardinality(failed_at) AS failures FROM otp_number_failures WHERE msisdn = $1',
      [sub.msisdn],
    );
    expect(rows).toEqual([{ failures: 5 }]);

    // The right code of another charge of the number is refused while it is locked.
    const right = await confirm(h, spare.merchant.key, spare.id, spare.code);
    expect(right.status, JSON.stringify(right.body)).toBe(402);
    expect(right.body).toMatchObject({ code: 'otp_locked', charge_id: spare.id });
    expect(await chargeStatus(spare)).toEqual({ status: 'denied', denial_code: 'otp_locked' });

    // A new charge that needs a code is denied and recorded; one that needs none goes through.
    const fresh = await charge(h, merchants[0]!, { msisdn: sub.msisdn, amount: '5000' });
    expect(fresh.status, JSON.stringify(fresh.body)).toBe(402);
    expect(fresh.body).toMatchObject({ code: 'otp_locked', denial_code: 'otp_locked' });
    const recorded = await h.http
      .get(`/v1/charges/${fresh.body.charge_id}`)
      .set(bearer(merchants[0]!.key));
    expect(recorded.body).toMatchObject({ status: 'denied', denial_code: 'otp_locked' });
    const small = await charge(h, merchants[1]!, { msisdn: sub.msisdn, amount: '500' });
    expect(small.status, JSON.stringify(small.body)).toBe(201);
    expect(small.body.status).toBe('succeeded');

    // Another number is unaffected.
    const elsewhere = await confirm(
      h,
      otherPending.merchant.key,
      otherPending.id,
      otherPending.code,
    );
    expect(elsewhere.status, JSON.stringify(elsewhere.body)).toBe(200);
    expect(elsewhere.body.status).toBe('succeeded');

    // Denied charges released their holds: only the 5 counted charges still hold money.
    expect((await subscriberBalance(h, sub)).held).toBe('25000');

    // The carrier of the number is told once, with an audit event beside it; the other is not.
    const events = await h.http.get('/v1/carrier/events').set(bearer(carrier.key));
    expect(events.status, JSON.stringify(events.body)).toBe(200);
    expect(events.body.data).toHaveLength(1);
    expect(events.body.data[0]).toMatchObject({
      object: 'carrier_event',
      type: 'subscriber.otp_locked',
      msisdn: sub.msisdn,
      data: { failures: 5, window_seconds: 900 },
    });
    const lockedUntil = Date.parse(events.body.data[0].data.locked_until as string);
    expect(lockedUntil - Date.now()).toBeGreaterThan(14 * 60_000);
    expect(lockedUntil - Date.now()).toBeLessThanOrEqual(15 * 60_000);
    const elsewhereEvents = await h.http.get('/v1/carrier/events').set(bearer(otherCarrier.key));
    expect(elsewhereEvents.body.data).toEqual([]);
    const merchantTries = await h.http.get('/v1/carrier/events').set(bearer(merchants[0]!.key));
    expect(merchantTries.status).toBe(403);
    const audit = await h.c.pool.query<{ summary: Record<string, unknown> }>(
      `SELECT summary FROM audit_events WHERE action = 'subscriber.otp_locked'
          AND summary->>'charge_id' = ANY($1)`,
      [pending.map((p) => p.id)],
    );
    expect(audit.rows).toHaveLength(1);
    expect(JSON.stringify(audit.rows[0]!.summary)).not.toContain(sub.msisdn);

    // Once the window has passed, codes are checked again: a counted charge's right code works.
    await letWindowPass(sub.msisdn);
    const counted = pending.filter((_, i) => answers[i]!.status === 422);
    const later = await confirm(h, counted[0]!.merchant.key, counted[0]!.id, counted[0]!.code);
    expect(later.status, JSON.stringify(later.body)).toBe(200);
    expect(later.body.status).toBe('succeeded');
    // And the count starts again: a wrong code is answered otp_invalid, not otp_locked.
    const again = await confirm(h, counted[1]!.merchant.key, counted[1]!.id, '000000');
    expect(again.status).toBe(422);
    const next = (await pendingCharges(merchants, sub.msisdn, 1))[0]!;
    expect((await confirm(h, next.merchant.key, next.id, next.code)).status).toBe(200);

    expect((await verifyLedger(h)).ok).toBe(true);
  });

  it('the window slides: the lock lasts until the oldest counted wrong code is 15 minutes old', async () => {
    const carrier = await newCarrier(h, { otp_threshold: '1000' });
    const sub = await newSubscriber(h, carrier, { balance: '1000000' });
    const merchant = await newMerchant(h);
    const pending = await pendingCharges([merchant], sub.msisdn, 3);
    // Four wrong codes 14 minutes ago, then one now: five within the window.
    await h.c.pool.query(
      `INSERT INTO otp_number_failures (msisdn, failed_at, updated_at)
       VALUES ($1, ARRAY[now() - interval '14 minutes', now() - interval '14 minutes',
                         now() - interval '14 minutes', now() - interval '14 minutes'], now())`,
      [sub.msisdn],
    );
    const key = `cf-${randomSuffix()}`;
    const fifth = await confirm(h, merchant.key, pending[0]!.id, wrongCode(pending[0]!.code), key);
    expect(fifth.status).toBe(422);
    // A replay of that wrong code returns its stored answer and counts nothing again.
    const replay = await confirm(h, merchant.key, pending[0]!.id, wrongCode(pending[0]!.code), key);
    expect(replay.status).toBe(422);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    const { rows } = await h.c.pool.query<{ failures: number }>(
      'SELECT cardinality(failed_at) AS failures FROM otp_number_failures WHERE msisdn = $1',
      [sub.msisdn],
    );
    expect(rows).toEqual([{ failures: 5 }]);
    const refused = await confirm(h, merchant.key, pending[1]!.id, pending[1]!.code);
    expect(refused.status).toBe(402);
    expect(refused.body.code).toBe('otp_locked');
    const events = await h.http.get('/v1/carrier/events').set(bearer(carrier.key));
    const until = Date.parse(events.body.data[0].data.locked_until as string);
    // Locked for about one minute more: until the first of the five leaves the window.
    expect(until - Date.now()).toBeGreaterThan(30_000);
    expect(until - Date.now()).toBeLessThanOrEqual(60_000);

    // Two minutes later the four oldest have left the window: one wrong code in it, unlocked.
    await h.c.pool.query(
      `UPDATE otp_number_failures
          SET failed_at = ARRAY(SELECT t - interval '2 minutes' FROM unnest(failed_at) AS t)
        WHERE msisdn = $1`,
      [sub.msisdn],
    );
    const ok = await confirm(h, merchant.key, pending[2]!.id, pending[2]!.code);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });
});

describe('the per-number count is kept no longer than it matters', () => {
  it('the expiry worker deletes a number’s row once its last wrong code left the window, and no other', async () => {
    const [quiet, recent] = ['+8491' + randomDigits(), '+8491' + randomDigits()];
    await h.c.pool.query(
      `INSERT INTO otp_number_failures (msisdn, failed_at, updated_at) VALUES
         ($1, ARRAY[now() - interval '20 minutes'], now() - interval '20 minutes'),
         ($2, ARRAY[now() - interval '20 minutes', now() - interval '1 minute'], now() - interval '1 minute')`,
      [quiet, recent],
    );
    // A pass takes at most 100 rows: run until there is nothing left to do.
    const worker = h.c.charges.expiryWorker();
    for (let pass = 0; pass < 20 && (await worker.runOnce()) > 0; pass++);
    const { rows } = await h.c.pool.query<{ msisdn: string }>(
      'SELECT msisdn FROM otp_number_failures WHERE msisdn = ANY($1)',
      [[quiet, recent]],
    );
    expect(rows.map((r) => r.msisdn)).toEqual([recent]);
  });
});

function randomDigits(): string {
  return String(Math.floor(Math.random() * 1e7)).padStart(7, '0');
}
