import { expect } from 'vitest';
import { bearer, newAdminKey, randomSuffix, type Harness } from './harness.js';

export interface CarrierFixture {
  id: string;
  code: string;
  key: string;
  body: Record<string, unknown>;
}

export interface MerchantFixture {
  id: string;
  key: string;
  body: Record<string, unknown>;
}

/** A carrier onboarded through the admin API, with its own carrier key. */
export async function newCarrier(
  h: Harness,
  overrides: Record<string, unknown> = {},
): Promise<CarrierFixture> {
  const admin = await newAdminKey(h);
  const code = `car-${randomSuffix()}`;
  const res = await h.http
    .post('/v1/admin/carriers')
    .set(bearer(admin))
    .send({
      code,
      name: `Carrier ${code}`,
      currency: 'VND',
      timezone: 'Asia/Ho_Chi_Minh',
      revenue_share_bps: 3000,
      ...overrides,
    });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const key = await h.http
    .post('/v1/admin/api-keys')
    .set(bearer(admin))
    .send({ role: 'carrier', owner_id: res.body.id });
  expect(key.status, JSON.stringify(key.body)).toBe(201);
  return { id: res.body.id, code, key: key.body.key, body: res.body };
}

/** A merchant onboarded through the admin API, with its own merchant key. */
export async function newMerchant(
  h: Harness,
  overrides: Record<string, unknown> = {},
): Promise<MerchantFixture> {
  const admin = await newAdminKey(h);
  const res = await h.http
    .post('/v1/admin/merchants')
    .set(bearer(admin))
    .send({ name: `Merchant ${randomSuffix()}`, fee_bps: 250, ...overrides });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const key = await h.http
    .post('/v1/admin/api-keys')
    .set(bearer(admin))
    .send({ role: 'merchant', owner_id: res.body.id });
  expect(key.status, JSON.stringify(key.body)).toBe(201);
  return { id: res.body.id, key: key.body.key, body: res.body };
}

let msisdnCounter = 0;

/** A random Vietnamese-looking MSISDN, unique within the run. */
export function randomMsisdn(): string {
  msisdnCounter += 1;
  const digits =
    `${Math.floor(Math.random() * 1e5)}`.padStart(5, '0') +
    `${(process.pid * 1000 + msisdnCounter) % 10000}`.padStart(4, '0');
  return `+849${digits.slice(0, 8)}`;
}

export interface SubscriberFixture {
  msisdn: string;
  carrier: CarrierFixture;
}

/** A subscriber at `carrier`, prepaid with `balance` (VND) unless postpaid with a credit limit. */
export async function newSubscriber(
  h: Harness,
  carrier: CarrierFixture,
  options: {
    balance?: string;
    funding_type?: 'prepaid' | 'postpaid';
    credit_limit?: string;
    status?: string;
  } = {},
): Promise<SubscriberFixture> {
  const msisdn = randomMsisdn();
  const put = await h.http
    .put(`/v1/carrier/subscribers/${msisdn}`)
    .set(bearer(carrier.key))
    .send({
      funding_type: options.funding_type ?? 'prepaid',
      status: options.status ?? 'active',
      ...(options.credit_limit ? { credit_limit: options.credit_limit } : {}),
    });
  expect(put.status, JSON.stringify(put.body)).toBe(201);
  if (options.balance && options.balance !== '0') {
    const top = await h.http
      .post(`/v1/carrier/subscribers/${msisdn}/topups`)
      .set(bearer(carrier.key))
      .set('Idempotency-Key', `seed-${randomSuffix()}`)
      .send({
        amount: options.balance,
        currency: carrier.body.currency,
        reference: `seed-${randomSuffix()}`,
      });
    expect(top.status, JSON.stringify(top.body)).toBe(201);
  }
  return { msisdn, carrier };
}

/** POSTs a charge with a fresh (or given) Idempotency-Key. */
export function charge(
  h: Harness,
  merchant: MerchantFixture,
  body: Record<string, unknown>,
  key = `k-${randomSuffix()}`,
) {
  return h.http
    .post('/v1/charges')
    .set(bearer(merchant.key))
    .set('Idempotency-Key', key)
    .send({ currency: 'VND', description: 'test purchase', ...body });
}

export async function subscriberBalance(
  h: Harness,
  sub: SubscriberFixture,
): Promise<{ posted: string; held: string; available: string }> {
  const res = await h.http
    .get(`/v1/carrier/subscribers/${sub.msisdn}`)
    .set(bearer(sub.carrier.key));
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.balance;
}

/** The ledger verification as an admin sees it. */
export async function verifyLedger(h: Harness): Promise<Record<string, unknown> & { ok: boolean }> {
  const admin = await newAdminKey(h);
  const res = await h.http.get('/v1/admin/ledger/verify').set(bearer(admin));
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}
