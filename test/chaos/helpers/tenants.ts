import { randomBytes } from 'node:crypto';
import { bearerHeaders, call, jsonOf } from './http-client.js';

export interface Tenants {
  carrier: { id: string; key: string };
  merchant: { id: string; key: string };
  msisdns: string[];
}

const suffix = () => randomBytes(4).toString('hex');

async function ok<T>(
  what: string,
  answer: Promise<{ status: number; text: string }>,
  status: number,
): Promise<T> {
  const a = await answer;
  if (a.status !== status) throw new Error(`${what}: ${a.status} ${a.text.slice(0, 500)}`);
  return JSON.parse(a.text) as T;
}

let counter = 0;
/** A unique MSISDN for this process (Vietnamese numbering, +849…). */
export function chaosMsisdn(): string {
  counter += 1;
  const digits = `${process.pid % 1000}`.padStart(3, '0') + `${counter}`.padStart(5, '0');
  return `+849${digits}`;
}

/**
 * A carrier (no spend caps), a merchant, their keys and `subscribers` prepaid subscribers topped
 * up with `balance`, onboarded through the HTTP API of a running gateway.
 */
export async function seedTenants(
  baseUrl: string,
  adminKey: string,
  options: {
    subscribers: number;
    balance: string;
    carrier?: Record<string, unknown>;
    merchant?: Record<string, unknown>;
  },
): Promise<Tenants> {
  const admin = bearerHeaders(adminKey);
  const code = `chaos-${suffix()}`;
  const unlimited = { per_transaction_max: null, daily_max: null, monthly_max: null };
  const carrier = await ok<{ id: string }>(
    'create carrier',
    call(baseUrl, 'POST', '/v1/admin/carriers', {
      headers: admin,
      body: {
        code,
        name: `Carrier ${code}`,
        currency: 'VND',
        timezone: 'Asia/Ho_Chi_Minh',
        revenue_share_bps: 3000,
        limits: { prepaid: unlimited, postpaid: unlimited },
        ...options.carrier,
      },
    }),
    201,
  );
  const merchant = await ok<{ id: string }>(
    'create merchant',
    call(baseUrl, 'POST', '/v1/admin/merchants', {
      headers: admin,
      body: { name: `Merchant ${suffix()}`, fee_bps: 250, ...options.merchant },
    }),
    201,
  );
  const keyOf = async (role: string, owner: string) =>
    (
      await ok<{ key: string }>(
        `create ${role} key`,
        call(baseUrl, 'POST', '/v1/admin/api-keys', {
          headers: admin,
          body: { role, owner_id: owner },
        }),
        201,
      )
    ).key;
  const carrierKey = await keyOf('carrier', carrier.id);
  const merchantKey = await keyOf('merchant', merchant.id);
  const msisdns: string[] = [];
  for (let i = 0; i < options.subscribers; i++) {
    msisdns.push(await addSubscriber(baseUrl, carrierKey, options.balance));
  }
  return {
    carrier: { id: carrier.id, key: carrierKey },
    merchant: { id: merchant.id, key: merchantKey },
    msisdns,
  };
}

/** A prepaid subscriber at the carrier of `carrierKey`, topped up with `balance` (VND). */
export async function addSubscriber(
  baseUrl: string,
  carrierKey: string,
  balance: string,
): Promise<string> {
  const msisdn = chaosMsisdn();
  const path = `/v1/carrier/subscribers/${encodeURIComponent(msisdn)}`;
  await ok(
    'create subscriber',
    call(baseUrl, 'PUT', path, {
      headers: bearerHeaders(carrierKey),
      body: { funding_type: 'prepaid', status: 'active' },
    }),
    201,
  );
  if (balance !== '0') {
    await ok(
      'top up',
      call(baseUrl, 'POST', `${path}/topups`, {
        headers: bearerHeaders(carrierKey, { 'idempotency-key': `seed-${suffix()}` }),
        body: { amount: balance, currency: 'VND', reference: `seed-${suffix()}` },
      }),
      201,
    );
  }
  return msisdn;
}

/** The admin's view of the books. */
export async function ledgerVerify(baseUrl: string, adminKey: string) {
  return jsonOf<{ ok: boolean } & Record<string, unknown>>(
    await call(baseUrl, 'GET', '/v1/admin/ledger/verify', { headers: bearerHeaders(adminKey) }),
  );
}
