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
