import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitRevenue } from '../src/modules/money/money.js';
import { bearer, createHarness, type Harness } from './helpers/harness.js';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  subscriberBalance,
  verifyLedger,
} from './helpers/factories.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

type Op =
  | { kind: 'topup'; sub: number; amount: number }
  | { kind: 'charge'; sub: number; amount: number; capture: boolean }
  | { kind: 'capture'; charge: number; fraction: number }
  | { kind: 'cancel'; charge: number }
  | { kind: 'refund'; charge: number; fraction: number };

const SUBS = 3;
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('topup' as const),
    sub: fc.nat(SUBS - 1),
    amount: fc.integer({ min: 1, max: 50_000 }),
  }),
  fc.record({
    kind: fc.constant('charge' as const),
    sub: fc.nat(SUBS - 1),
    amount: fc.integer({ min: 1, max: 40_000 }),
    capture: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('capture' as const),
    charge: fc.nat(30),
    fraction: fc.double({ min: 0.01, max: 1, noNaN: true }),
  }),
  fc.record({ kind: fc.constant('cancel' as const), charge: fc.nat(30) }),
  fc.record({
    kind: fc.constant('refund' as const),
    charge: fc.nat(30),
    fraction: fc.double({ min: 0.01, max: 1, noNaN: true }),
  }),
);

interface ModelCharge {
  id: string;
  sub: number;
  status: 'reserved' | 'succeeded' | 'cancelled' | 'denied';
  held: number;
  captured: number;
  refunded: number;
}

describe('the ledger against a model', () => {
  it('random sequences of top-ups, charges, reservations, captures, cancels and refunds keep every balance equal to the model and the books balanced', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 25 }), async (ops) => {
        const carrier = await newCarrier(h, { revenue_share_bps: 2750 });
        const merchant = await newMerchant(h, { fee_bps: 315 });
        const subs = await Promise.all(
          Array.from({ length: SUBS }, () => newSubscriber(h, carrier)),
        );
        const posted = Array<number>(SUBS).fill(0);
        const held = Array<number>(SUBS).fill(0);
        const charges: ModelCharge[] = [];
        let merchantNet = 0n;
        const idem = () => `m-${Math.random()}`;

        for (const op of ops) {
          if (op.kind === 'topup') {
            const res = await h.http
              .post(`/v1/carrier/subscribers/${subs[op.sub]!.msisdn}/topups`)
              .set(bearer(carrier.key))
              .set('Idempotency-Key', idem())
              .send({ amount: String(op.amount), currency: 'VND', reference: 'model' });
            expect(res.status).toBe(201);
            posted[op.sub]! += op.amount;
          } else if (op.kind === 'charge') {
            const res = await charge(h, merchant, {
              msisdn: subs[op.sub]!.msisdn,
              amount: String(op.amount),
              capture: op.capture,
            });
            const fits = posted[op.sub]! - held[op.sub]! >= op.amount;
            expect(res.status, res.text).toBe(fits ? 201 : 402);
            if (!fits) continue;
            if (op.capture) {
              posted[op.sub]! -= op.amount;
              merchantNet += splitRevenue(BigInt(op.amount), 2750, 315).merchantNet;
              charges.push({
                id: res.body.id,
                sub: op.sub,
                status: 'succeeded',
                held: 0,
                captured: op.amount,
                refunded: 0,
              });
            } else {
              held[op.sub]! += op.amount;
              charges.push({
                id: res.body.id,
                sub: op.sub,
                status: 'reserved',
                held: op.amount,
                captured: 0,
                refunded: 0,
              });
            }
          } else {
            const c = charges[op.charge % Math.max(charges.length, 1)];
            if (!c) continue;
            if (op.kind === 'capture') {
              const amount = Math.max(1, Math.floor(c.held * op.fraction));
              const res = await h.http
                .post(`/v1/charges/${c.id}/capture`)
                .set(bearer(merchant.key))
                .set('Idempotency-Key', idem())
                .send({ amount: String(amount) });
              if (c.status !== 'reserved') {
                expect(res.status).toBe(409);
                continue;
              }
              expect(res.status, res.text).toBe(200);
              held[c.sub]! -= c.held;
              posted[c.sub]! -= amount;
              merchantNet += splitRevenue(BigInt(amount), 2750, 315).merchantNet;
              Object.assign(c, { status: 'succeeded', held: 0, captured: amount });
            } else if (op.kind === 'cancel') {
              const res = await h.http
                .post(`/v1/charges/${c.id}/cancel`)
                .set(bearer(merchant.key))
                .set('Idempotency-Key', idem());
              if (c.status !== 'reserved') {
                expect(res.status).toBe(409);
                continue;
              }
              expect(res.status).toBe(200);
              held[c.sub]! -= c.held;
              Object.assign(c, { status: 'cancelled', held: 0 });
            } else {
              const remaining = c.captured - c.refunded;
              const amount = Math.max(1, Math.floor(remaining * op.fraction));
              const res = await h.http
                .post(`/v1/charges/${c.id}/refunds`)
                .set(bearer(merchant.key))
                .set('Idempotency-Key', idem())
                .send({ amount: String(amount) });
              if (c.status !== 'succeeded') {
                expect(res.status).toBe(409);
                expect(res.body.code).toBe('invalid_state');
                continue;
              }
              if (remaining === 0) {
                expect(res.status).toBe(409);
                expect(res.body.code).toBe('refund_exceeds_charge');
                continue;
              }
              expect(res.status, res.text).toBe(201);
              merchantNet -= BigInt(res.body.split.merchant_net);
              posted[c.sub]! += amount;
              c.refunded += amount;
            }
          }
        }

        for (let i = 0; i < SUBS; i++) {
          expect(await subscriberBalance(h, subs[i]!)).toEqual({
            posted: String(posted[i]),
            held: String(held[i]),
            available: String(posted[i]! - held[i]!),
          });
        }
        for (const c of charges) {
          const got = await h.http.get(`/v1/charges/${c.id}`).set(bearer(merchant.key));
          expect(got.body).toMatchObject({
            status: c.status,
            amount_captured: String(c.captured),
            amount_refunded: String(c.refunded),
          });
        }
        const balance = await h.http.get('/v1/balance').set(bearer(merchant.key));
        const vnd = (
          balance.body.balances as { currency: string; pending_settlement: string }[]
        ).find((b) => b.currency === 'VND');
        expect(vnd?.pending_settlement ?? '0').toBe(merchantNet.toString());
        expect((await verifyLedger(h)).ok).toBe(true);
      }),
      { numRuns: 12, seed: Number(process.env.MODEL_SEED ?? Date.now() % 2 ** 31) },
    );
  });
});
