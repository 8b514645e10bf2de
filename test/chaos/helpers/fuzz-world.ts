import { expect } from 'vitest';
import { charge, newCarrier, newMerchant, newSubscriber } from '../../helpers/factories.js';
import { bearer, newAdminKey, randomSuffix, type Harness } from '../../helpers/harness.js';
import type { Role } from './openapi-operations.js';

/** A public unicast address (example.com's), so a URL passes the outbound-address rule. */
export const PUBLIC_URL = 'https://93.184.215.14/hooks/dcb';

/**
 * The objects a fuzz run points its requests at, all made by the run itself with random ids:
 * tenant A (a carrier without spend caps and with a consent threshold, a merchant with a webhook
 * endpoint, funded subscribers) and A's charges of every state, a refund, events, a settlement
 * statement, a reconciliation and pending adjustments; and spare tenants and keys that admin
 * writes (suspend, revoke, change) act on, so that they never stop tenant A's requests.
 */
export interface FuzzWorld {
  /** Keys by role; two admin keys, so that one can approve what the other proposed. */
  keys: Record<Role, string[]>;
  /** Object ids by kind (`charge`, `msisdn`, …) that requests read and act on. */
  pools: Record<string, string[]>;
  /** Where a kind has them: the objects that PUT, PATCH and DELETE change instead. */
  spare: Record<string, string[]>;
  /** Tenant A's funded subscribers, for bodies that name a number. */
  msisdns: string[];
  merchantIds: string[];
  carrierIds: string[];
  /** Every secret the run holds: none may ever appear in a log line. */
  secrets: string[];
  /**
   * Members that only make sense together, by component name (`AdjustmentAccountInput`) or by
   * operation id (`createApiKey`): a generated object takes one of these over, so that requests
   * get past the rules that tie members to each other (an undefined member is left out).
   */
  coherent: Record<string, Record<string, unknown>[]>;
}

async function createKey(h: Harness, admin: string, role: Role, ownerId?: string) {
  const res = await h.http
    .post('/v1/admin/api-keys')
    .set(bearer(admin))
    .send(ownerId ? { role, owner_id: ownerId } : { role });
  expect(res.status, res.text).toBe(201);
  return { id: res.body.id as string, key: res.body.key as string };
}

export async function buildFuzzWorld(h: Harness): Promise<FuzzWorld> {
  const admins = [await newAdminKey(h), await newAdminKey(h)];
  const auditor = await newAdminKey(h, 'auditor');
  const admin = admins[0]!;
  const unlimited = { per_transaction_max: null, daily_max: null, monthly_max: null };
  const carrier = await newCarrier(h, {
    otp_threshold: '100000',
    limits: { prepaid: unlimited, postpaid: unlimited },
  });
  const merchant = await newMerchant(h, { webhook_url: PUBLIC_URL });
  const msisdns: string[] = [];
  for (let i = 0; i < 3; i++) {
    msisdns.push((await newSubscriber(h, carrier, { balance: '1000000000000' })).msisdn);
  }
  const spareMsisdns = [
    (await newSubscriber(h, carrier)).msisdn,
    (await newSubscriber(h, carrier, { funding_type: 'postpaid', credit_limit: '1000000' })).msisdn,
  ];
  const spareCarrier = await newCarrier(h);
  const spareMerchant = await newMerchant(h);
  const spareKeys = [
    await createKey(h, admin, 'merchant', spareMerchant.id),
    await createKey(h, admin, 'carrier', spareCarrier.id),
    await createKey(h, admin, 'auditor'),
  ];

  const made = async (res: Promise<{ status: number; text: string; body: { id: string } }>) => {
    const r = await res;
    expect(r.status, r.text).toBe(201);
    return r.body.id;
  };
  const charges = [
    await made(charge(h, merchant, { msisdn: msisdns[0], amount: '5000' })),
    await made(charge(h, merchant, { msisdn: msisdns[1], amount: '8000' })),
    await made(charge(h, merchant, { msisdn: msisdns[0], amount: '7000', capture: false })),
    await made(charge(h, merchant, { msisdn: msisdns[1], amount: '9000', capture: false })),
    await made(charge(h, merchant, { msisdn: msisdns[2], amount: '6000', capture: false })),
    await made(charge(h, merchant, { msisdn: msisdns[0], amount: '200000' })),
    await made(charge(h, merchant, { msisdn: msisdns[2], amount: '300000', capture: false })),
  ];
  const refund = await made(
    h.http
      .post(`/v1/charges/${charges[0]}/refunds`)
      .set(bearer(merchant.key))
      .set('Idempotency-Key', `seed-${randomSuffix()}`)
      .send({ amount: '1000' }),
  );
  const events = await h.http.get('/v1/events').set(bearer(merchant.key));
  expect(events.status, events.text).toBe(200);
  await h.c.settlements.openStatements();
  const settlements = await h.http.get('/v1/carrier/settlements').set(bearer(carrier.key));
  expect(settlements.status, settlements.text).toBe(200);
  const reconciliation = await made(
    h.http
      .post('/v1/carrier/reconciliations')
      .set(bearer(carrier.key))
      .set('Content-Type', 'text/csv')
      .send(
        'carrier_ref,gateway_ref,msisdn,type,amount,currency,occurred_at\n' +
          `c1,${charges[0]},${msisdns[0]},charge,5000,VND,${new Date().toISOString()}\n`,
      ),
  );
  const adjustments: string[] = [];
  for (const [i, account] of [
    { type: 'merchant_payable', owner_id: spareMerchant.id },
    { type: 'carrier_share', owner_id: spareCarrier.id },
  ].entries()) {
    adjustments.push(
      await made(
        h.http
          .post('/v1/admin/adjustments')
          .set(bearer(admin))
          .set('Idempotency-Key', `seed-${randomSuffix()}`)
          .send({
            account,
            amount: `${10 + i}`,
            currency: 'VND',
            direction: 'credit',
            reason: 'seed',
          }),
      ),
    );
  }

  const pools: Record<string, string[]> = {
    charge: charges,
    refund: [refund],
    event: (events.body.data as { id: string }[]).map((e) => e.id).slice(0, 5),
    settlement: (settlements.body.data as { id: string }[]).map((s) => s.id),
    reconciliation: [reconciliation],
    msisdn: msisdns,
    carrier: [spareCarrier.id],
    merchant: [spareMerchant.id],
    apiKey: spareKeys.map((k) => k.id),
    adjustment: adjustments,
  };
  for (const [kind, list] of Object.entries(pools)) expect(list.length, kind).toBeGreaterThan(0);
  return {
    keys: {
      admin: admins,
      auditor: [auditor],
      merchant: [merchant.key],
      carrier: [carrier.key],
    },
    pools,
    spare: { msisdn: spareMsisdns },
    msisdns,
    merchantIds: [merchant.id, spareMerchant.id],
    carrierIds: [carrier.id, spareCarrier.id],
    coherent: {
      AdjustmentAccountInput: [
        { type: 'merchant_payable', owner_id: spareMerchant.id },
        { type: 'carrier_share', owner_id: spareCarrier.id },
        { type: 'carrier_funding', owner_id: spareCarrier.id },
        { type: 'gateway_fees' },
        { type: 'subscriber', owner_id: carrier.id, msisdn: msisdns[2] },
      ],
      createApiKey: [
        { role: 'merchant', owner_id: spareMerchant.id },
        { role: 'carrier', owner_id: spareCarrier.id },
        { role: 'auditor', owner_id: undefined },
        { role: 'admin', owner_id: undefined },
      ],
    },
    secrets: [
      ...admins,
      auditor,
      merchant.key,
      carrier.key,
      spareCarrier.key,
      spareMerchant.key,
      ...spareKeys.map((k) => k.key),
    ],
  };
}

/**
 * Adds what a successful create answered to the pool of the kind whose ids share its prefix
 * (`ch_…` to `charge`), so that later requests act on objects the run made.
 */
export function harvest(world: FuzzWorld, body: unknown): void {
  const id = (body as { id?: unknown } | null)?.id;
  if (typeof id !== 'string') return;
  const prefix = id.split('_')[0];
  for (const list of Object.values(world.pools)) {
    if (list[0]?.split('_')[0] === prefix && !list.includes(id) && list.length < 50) {
      list.push(id);
      return;
    }
  }
}
