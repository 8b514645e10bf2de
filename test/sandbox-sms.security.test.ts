import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeIn, smsWorker } from './helpers/consent.js';
import { charge, newCarrier, newMerchant, newSubscriber } from './helpers/factories.js';
import { bearer, createHarness, newAdminKey, type Harness } from './helpers/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

interface InboxMessage {
  charge_id: string | null;
  carrier: string;
  message: string;
}

async function inbox(key: string, msisdn: string) {
  const res = await h.http
    .get(`/v1/sandbox/sms?msisdn=${encodeURIComponent(msisdn)}&limit=100`)
    .set(bearer(key));
  return { status: res.status, text: res.text, data: (res.body.data ?? []) as InboxMessage[] };
}

/**
 * Two carriers with one subscriber each, two merchants: merchant 1 charges both numbers,
 * merchant 2 charges the first one, every charge waiting for its code.
 */
async function twoOfEach() {
  const carrierA = await newCarrier(h, { otp_threshold: '1000' });
  const carrierB = await newCarrier(h, { otp_threshold: '1000' });
  const subA = await newSubscriber(h, carrierA, { balance: '100000' });
  const subB = await newSubscriber(h, carrierB, { balance: '100000' });
  const m1 = await newMerchant(h);
  const m2 = await newMerchant(h);
  const pending = async (m: typeof m1, msisdn: string) => {
    const res = await charge(h, m, { msisdn, amount: '5000' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.status).toBe('pending_validation');
    return res.body.id as string;
  };
  const charges = {
    m1a: await pending(m1, subA.msisdn),
    m2a: await pending(m2, subA.msisdn),
    m1b: await pending(m1, subB.msisdn),
  };
  await smsWorker(h).runOnce();
  return { carrierA, carrierB, subA, subB, m1, m2, charges };
}

describe('sandbox SMS inbox: who reads which codes', () => {
  it('a merchant reads only the codes of its own charges, never another merchant’s for the same number', async () => {
    const { subA, subB, m1, m2, charges } = await twoOfEach();
    const own1 = await inbox(m1.key, subA.msisdn);
    expect(own1.status).toBe(200);
    expect(own1.data.map((m) => m.charge_id)).toEqual([charges.m1a]);
    const own2 = await inbox(m2.key, subA.msisdn);
    expect(own2.data.map((m) => m.charge_id)).toEqual([charges.m2a]);

    // The attack: merchant 2 asks for the number merchant 1 is charging and gets nothing of it.
    const m1Code = codeIn(own1.data[0]!.message);
    expect(own2.text).not.toContain(m1Code);
    expect(own2.text).not.toContain(charges.m1a);
    const stolen = await inbox(m2.key, subB.msisdn);
    expect(stolen.status).toBe(200);
    expect(stolen.data).toEqual([]);
    expect(stolen.text).not.toContain(charges.m1b);
  });

  it('a carrier reads the messages to its own numbers only; an admin reads all; an auditor is refused', async () => {
    const { carrierA, carrierB, subA, subB, charges } = await twoOfEach();
    const aOwn = await inbox(carrierA.key, subA.msisdn);
    expect(aOwn.status).toBe(200);
    expect(aOwn.data.map((m) => m.charge_id).sort()).toEqual([charges.m1a, charges.m2a].sort());
    expect(new Set(aOwn.data.map((m) => m.carrier))).toEqual(new Set([carrierA.code]));

    // Each carrier trying to read the other's subscriber's codes.
    const aSteals = await inbox(carrierA.key, subB.msisdn);
    expect(aSteals.status).toBe(200);
    expect(aSteals.data).toEqual([]);
    const bSteals = await inbox(carrierB.key, subA.msisdn);
    expect(bSteals.data).toEqual([]);
    expect(bSteals.text).not.toContain(charges.m1a);
    expect((await inbox(carrierB.key, subB.msisdn)).data.map((m) => m.charge_id)).toEqual([
      charges.m1b,
    ]);

    const admin = await newAdminKey(h);
    const all = await inbox(admin, subA.msisdn);
    expect(all.data.map((m) => m.charge_id).sort()).toEqual([charges.m1a, charges.m2a].sort());

    const auditor = await inbox(await newAdminKey(h, 'auditor'), subA.msisdn);
    expect(auditor.status).toBe(403);
    expect(auditor.text).not.toContain(charges.m1a);
  });
});
