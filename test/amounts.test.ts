import { readFileSync } from 'node:fs';
import type { Test } from 'supertest';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAmountField } from '../src/http/problem.js';
import { AMOUNT_PATTERN } from '../src/modules/money/money.js';
import { OPENAPI_PATH } from '../src/paths.js';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  type CarrierFixture,
  type MerchantFixture,
} from './helpers/factories.js';
import {
  bearer,
  createHarness,
  newAdminKey,
  randomSuffix,
  type Harness,
} from './helpers/harness.js';

/**
 * SPEC §3 "Money" and §10 "Amounts": an amount is a canonical decimal string — no sign,
 * exponent, whitespace or leading zeros — within its currency's exponent; anything else,
 * including a JSON number, is 400 `invalid_amount` naming the field, on every route that takes
 * one, and changes nothing.
 */

let h: Harness;
let admin: string;
let carrier: CarrierFixture;
let merchant: MerchantFixture;
let msisdn: string;
let postpaid: string;
let succeededId: string;
let reservedId: string;
const trace = `am-${randomSuffix()}`;
let traced = 0;

beforeAll(async () => {
  h = await createHarness();
  admin = await newAdminKey(h);
  carrier = await newCarrier(h);
  merchant = await newMerchant(h);
  ({ msisdn } = await newSubscriber(h, carrier, { balance: '1000000' }));
  ({ msisdn: postpaid } = await newSubscriber(h, carrier, {
    funding_type: 'postpaid',
    credit_limit: '50000',
  }));
  const ok = await charge(h, merchant, { msisdn, amount: '5000' });
  expect(ok.status, ok.text).toBe(201);
  succeededId = ok.body.id;
  const held = await charge(h, merchant, { msisdn, amount: '5000', capture: false });
  expect(held.status, held.text).toBe(201);
  reservedId = held.body.id;
});
afterAll(() => h.close());

/** Every refused spelling, for a VND (exponent 0) field; `positive` ones refuse "0" too. */
const REFUSED: [string, unknown][] = [
  ['leading zero', '015000'],
  ['leading zeros on zero', '00'],
  ['plus sign', '+100'],
  ['minus sign', '-1'],
  ['exponent', '1e3'],
  ['upper-case exponent', '1E3'],
  ['leading space', ' 100'],
  ['trailing space', '100 '],
  ['tab', '100\t'],
  ['underscore separator', '1_000'],
  ['comma separator', '1,000'],
  ['hex', '0x10'],
  ['full-width digits', '１００'],
  ['Arabic-Indic digits', '١٠٠'],
  ['empty string', ''],
  ['trailing point', '100.'],
  ['leading point', '.5'],
  ['too many decimals for VND', '1.5'],
  ['a zero decimal for VND', '100.0'],
  ['Infinity', 'Infinity'],
  ['NaN', 'NaN'],
  ['beyond the maximum', '9'.repeat(20)],
  ['41 characters', '1'.repeat(41)],
  ['JSON number', 15000],
  ['JSON fraction', 1.5],
  ['JSON zero', 0],
  ['boolean', true],
  ['object', { value: '100' }],
];

interface AmountField {
  route: string;
  param: string;
  /** Refuses "0" as well (an amount to move; limits and credit may be zero). */
  positive: boolean;
  send: (amount: unknown) => Test;
}

const key = () => `k-${randomSuffix()}`;

const FIELDS: AmountField[] = [
  {
    route: 'POST /v1/charges',
    param: 'amount',
    positive: true,
    send: (amount) => charge(h, merchant, { msisdn, amount }),
  },
  {
    route: 'POST /v1/charges/{id}/capture',
    param: 'amount',
    positive: true,
    send: (amount) =>
      h.http
        .post(`/v1/charges/${reservedId}/capture`)
        .set(bearer(merchant.key))
        .set('Idempotency-Key', key())
        .send({ amount }),
  },
  {
    route: 'POST /v1/charges/{id}/refunds',
    param: 'amount',
    positive: true,
    send: (amount) =>
      h.http
        .post(`/v1/charges/${succeededId}/refunds`)
        .set(bearer(merchant.key))
        .set('Idempotency-Key', key())
        .send({ amount }),
  },
  {
    route: 'POST /v1/carrier/subscribers/{msisdn}/topups',
    param: 'amount',
    positive: true,
    send: (amount) =>
      h.http
        .post(`/v1/carrier/subscribers/${msisdn}/topups`)
        .set(bearer(carrier.key))
        .set('Idempotency-Key', key())
        .send({ amount, currency: 'VND', reference: `r-${randomSuffix()}` }),
  },
  {
    route: 'PUT /v1/carrier/subscribers/{msisdn} (credit_limit)',
    param: 'credit_limit',
    positive: false,
    send: (amount) =>
      h.http
        .put(`/v1/carrier/subscribers/${postpaid}`)
        .set(bearer(carrier.key))
        .send({ funding_type: 'postpaid', status: 'active', credit_limit: amount }),
  },
  {
    route: 'POST /v1/admin/adjustments',
    param: 'amount',
    positive: true,
    send: (amount) =>
      h.http
        .post('/v1/admin/adjustments')
        .set(bearer(admin))
        .set('Idempotency-Key', key())
        .send({
          account: { type: 'merchant_payable', owner_id: merchant.id },
          amount,
          currency: 'VND',
          direction: 'credit',
          reason: `${trace} adjustment`,
        }),
  },
  {
    route: 'PATCH /v1/admin/carriers/{id} (limits)',
    param: 'limits.prepaid.daily_max',
    positive: true,
    send: (amount) =>
      h.http
        .patch(`/v1/admin/carriers/${carrier.id}`)
        .set(bearer(admin))
        .send({ limits: { prepaid: { daily_max: amount } } }),
  },
  {
    route: 'PATCH /v1/admin/carriers/{id} (otp_threshold)',
    param: 'otp_threshold',
    positive: true,
    send: (amount) =>
      h.http
        .patch(`/v1/admin/carriers/${carrier.id}`)
        .set(bearer(admin))
        .send({ otp_threshold: amount }),
  },
  {
    route: 'PATCH /v1/admin/merchants/{id} (per_transaction_max)',
    param: 'per_transaction_max.amount',
    positive: true,
    send: (amount) =>
      h.http
        .patch(`/v1/admin/merchants/${merchant.id}`)
        .set(bearer(admin))
        .send({ per_transaction_max: { amount, currency: 'VND' } }),
  },
  {
    route: 'GET /v1/admin/charges?amount_gte',
    param: 'amount_gte',
    positive: false,
    send: (amount) =>
      h.http
        .get(
          `/v1/admin/charges?currency=VND&amount_gte=${encodeURIComponent(
            typeof amount === 'string' ? amount : JSON.stringify(amount),
          )}`,
        )
        .set(bearer(admin)),
  },
];

interface Counts {
  charges: number;
  refunds: number;
  audit: number;
  adjustments: number;
  journal: number;
}

async function counts(): Promise<Counts> {
  const { rows } = await h.c.pool.query<Record<keyof Counts, string>>(
    `SELECT
       (SELECT count(*) FROM charges WHERE merchant_id = $1) AS charges,
       (SELECT count(*) FROM refunds r JOIN charges c ON c.id = r.charge_id
         WHERE c.merchant_id = $1) AS refunds,
       (SELECT count(*) FROM audit_events WHERE request_id LIKE $3 || '%'
         OR actor_id = ANY(ARRAY[$1, $2]) OR object_id = ANY(ARRAY[$1, $2])) AS audit,
       (SELECT count(*) FROM adjustments WHERE reason LIKE $3 || '%') AS adjustments,
       (SELECT count(*) FROM journal_entries e JOIN ledger_accounts a ON a.id = e.account_id
         WHERE a.owner_id = ANY(ARRAY[$1, $2])) AS journal`,
    [merchant.id, carrier.id, trace],
  );
  return Object.fromEntries(
    Object.entries(rows[0]!).map(([k, v]) => [k, Number(v)]),
  ) as unknown as Counts;
}

describe('amounts', () => {
  for (const field of FIELDS) {
    it(`${field.route}: every non-canonical spelling is 400 invalid_amount on ${field.param}, nothing written`, async () => {
      const before = await counts();
      const refused = field.positive ? [...REFUSED, ['zero', '0'] as [string, unknown]] : REFUSED;
      for (const [label, amount] of refused) {
        // A query parameter is always text: the JSON types do not apply there.
        if (field.route.startsWith('GET') && typeof amount !== 'string') continue;
        traced += 1;
        const res = await field.send(amount).set('X-Request-Id', `${trace}-${traced}`);
        expect(res.status, `${label} ${JSON.stringify(amount)}: ${res.text}`).toBe(400);
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(res.body, `${label} ${JSON.stringify(amount)}`).toMatchObject({
          code: 'invalid_amount',
          type: 'urn:dcb-gateway:problem:invalid_amount',
          param: field.param,
        });
      }
      expect(await counts()).toEqual(before);
    });
  }

  it('canonical spellings are accepted: "15000", "0.50" and "12.5" USD, "0" where zero is allowed', async () => {
    const ok = await charge(h, merchant, { msisdn, amount: '15000' });
    expect(ok.status, ok.text).toBe(201);
    expect(ok.body.amount).toBe('15000');
    const credit = await h.http
      .put(`/v1/carrier/subscribers/${postpaid}`)
      .set(bearer(carrier.key))
      .send({ funding_type: 'postpaid', status: 'active', credit_limit: '0' });
    expect(credit.status, credit.text).toBe(200);
    expect(credit.body.credit_limit).toBe('0');
    // Trailing zeros within the currency's exponent are fine and mean nothing.
    for (const [amount, shown] of [
      ['0.50', '0.50'],
      ['12.5', '12.50'],
      ['7', '7.00'],
    ]) {
      const usd = await h.http
        .post('/v1/admin/merchants')
        .set(bearer(admin))
        .send({
          name: `usd ${randomSuffix()}`,
          fee_bps: 0,
          per_transaction_max: { amount, currency: 'USD' },
        });
      expect(usd.status, usd.text).toBe(201);
      expect(usd.body.per_transaction_max).toEqual({ amount: shown, currency: 'USD' });
    }
    for (const amount of ['00.50', '0.500', '1e1', 12.5]) {
      const usd = await h.http
        .post('/v1/admin/merchants')
        .set(bearer(admin))
        .send({
          name: `usd ${randomSuffix()}`,
          fee_bps: 0,
          per_transaction_max: { amount, currency: 'USD' },
        });
      expect(usd.status, `${JSON.stringify(amount)}: ${usd.text}`).toBe(400);
      expect(usd.body).toMatchObject({
        code: 'invalid_amount',
        param: 'per_transaction_max.amount',
      });
    }
  });
});

describe('the amount rule has one definition', () => {
  type Node = Record<string, unknown>;
  const doc = parse(readFileSync(OPENAPI_PATH, 'utf8')) as Node;
  const schemas = (doc.components as Node).schemas as Record<string, Node>;
  const AMOUNT_REFS = ['#/components/schemas/Amount', '#/components/schemas/NullableAmount'];

  it('the Amount schemas of openapi.yaml carry the pattern of money.ts, and both agree', () => {
    const samples = [
      '0',
      '1',
      '15000',
      '0.50',
      '12.5',
      '015000',
      '00',
      '+1',
      '-1',
      '1e3',
      ' 1',
      '1.',
      '.5',
      '１',
    ];
    for (const name of ['Amount', 'NullableAmount']) {
      const pattern = new RegExp(String(schemas[name]!.pattern));
      for (const s of samples) expect(pattern.test(s), `${name} ${s}`).toBe(AMOUNT_PATTERN.test(s));
    }
  });

  it('every request field the contract declares as an amount is mapped to invalid_amount', () => {
    // Request schemas and parameters: walk everything, collect the dotted paths of amount properties.
    const found = new Set<string>();
    const walk = (node: unknown, path: string, seen: Set<unknown>) => {
      if (node === null || typeof node !== 'object' || seen.has(node)) return;
      const n = node as Node;
      if (typeof n.$ref === 'string') {
        if (AMOUNT_REFS.includes(n.$ref)) found.add(path);
        const target = schemas[n.$ref.split('/').pop()!];
        walk(target, path, new Set([...seen, node]));
        return;
      }
      if (n.pattern === schemas.Amount!.pattern) found.add(path);
      for (const [k, child] of Object.entries((n.properties ?? {}) as Node))
        walk(child, path ? `${path}.${k}` : k, new Set([...seen, node]));
    };
    for (const item of Object.values(doc.paths as Record<string, Node>)) {
      for (const op of Object.values(item)) {
        if (op === null || typeof op !== 'object') continue;
        const body = (op as Node).requestBody as Node | undefined;
        const content = body?.content as Record<string, { schema?: unknown }> | undefined;
        if (content?.['application/json']) walk(content['application/json'].schema, '', new Set());
        for (const p of ((op as Node).parameters ?? []) as Node[]) {
          if (p.in === 'query') walk(p.schema, String(p.name), new Set());
        }
      }
    }
    expect(found.size).toBeGreaterThan(5);
    for (const path of found) expect(isAmountField(`body.${path}`), path).toBe(true);
    // And nothing else is: a field that is not an amount keeps validation_failed.
    for (const other of [
      'body.description',
      'body.name',
      'body.fee_bps',
      'query.limit',
      'body.reason',
    ])
      expect(isAmountField(other), other).toBe(false);
  });
});
