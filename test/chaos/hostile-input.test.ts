import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  type CarrierFixture,
  type MerchantFixture,
} from '../helpers/factories.js';
import { newId } from '../../src/lib/ids.js';
import { bearer, createHarness, newAdminKey, type Harness } from '../helpers/harness.js';
import { dropFreshDatabases, freshDatabase, rowCounts } from './helpers/chaos-db.js';
import { call, type Answer } from './helpers/http-client.js';
import {
  allowedRoles,
  contractOperations,
  objectKind,
  type JsonSchema,
  type Operation,
  type Role,
} from './helpers/openapi-operations.js';

/**
 * SPEC §2.5, §2.6 and §3 against hostile clients: a property-based fuzzer over every operation of
 * openapi.yaml (random and boundary JSON, wrong types, huge numbers, unicode, injection strings,
 * malformed Idempotency-Keys, path traversal and oversized ids, duplicate keys, wrong content
 * types), then every operation without a key, with a revoked key, with another role's key and
 * with another tenant's ids. Never a 5xx; every error is problem+json; a rejected request writes
 * nothing (row counts of every table, before and after, on a database of its own).
 */

const RUNS = Number(process.env.CHAOS_FUZZ_RUNS ?? 40);
/** Answers that reject a request: nothing may have been written. */
const REJECTIONS = new Set([400, 401, 403, 404, 405, 406, 413, 415, 429]);

let h: Harness;
let db: pg.Client;
let server: http.Server;
let baseUrl: string;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

interface Tenant {
  carrier: CarrierFixture;
  merchant: MerchantFixture;
  msisdn: string;
}
let a: Tenant;
let b: Tenant;
/** Admin routes act on these, so the fuzzer's suspensions do not stop tenant A's requests. */
let spare: { carrier: CarrierFixture; merchant: MerchantFixture; apiKeyId: string };
const keys = {} as Record<Role, string>;
const revoked = {} as Record<Role, string>;
const ids = {} as Record<string, string[]>;

async function tenant(): Promise<Tenant> {
  const carrier = await newCarrier(h, { otp_threshold: '100000' });
  const merchant = await newMerchant(h);
  const { msisdn } = await newSubscriber(h, carrier, { balance: '100000000' });
  return { carrier, merchant, msisdn };
}

async function createKey(role: Role, ownerId?: string): Promise<{ id: string; key: string }> {
  // An admin key is personal and issued only to its own operator: the admin's, here.
  const res = await h.http
    .post('/v1/admin/api-keys')
    .set(bearer(keys.admin))
    .send(
      ownerId
        ? { role, owner_id: ownerId }
        : role === 'admin'
          ? { role, operator_id: await operatorOf(keys.admin) }
          : { role },
    );
  expect(res.status, res.text).toBe(201);
  return { id: res.body.id, key: res.body.key };
}

async function operatorOf(key: string): Promise<string> {
  const { rows } = await db.query<{ operator_id: string }>(
    'SELECT operator_id FROM api_keys WHERE key_hash = $1',
    [createHash('sha256').update(key).digest()],
  );
  return rows[0]!.operator_id;
}

beforeAll(async () => {
  const databaseUrl = await freshDatabase('hostile');
  db = new pg.Client({ connectionString: databaseUrl, application_name: 'dcb-chaos-test' });
  await db.connect();
  h = await createHarness({ databaseUrl });
  server = h.app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  keys.admin = await newAdminKey(h);
  keys.auditor = await newAdminKey(h, 'auditor');
  a = await tenant();
  b = await tenant();
  keys.merchant = a.merchant.key;
  keys.carrier = a.carrier.key;
  const spareCarrier = await newCarrier(h);
  const spareMerchant = await newMerchant(h);
  spare = {
    carrier: spareCarrier,
    merchant: spareMerchant,
    apiKeyId: (await createKey('merchant', spareMerchant.id)).id,
  };
  for (const [role, owner] of [
    ['merchant', a.merchant.id],
    ['carrier', a.carrier.id],
    ['admin', undefined],
    ['auditor', undefined],
  ] as const) {
    const k = await createKey(role, owner);
    const del = await h.http.delete(`/v1/admin/api-keys/${k.id}`).set(bearer(keys.admin));
    expect(del.status, del.text).toBe(200);
    revoked[role] = k.key;
  }

  // Tenant A's objects of every kind: a succeeded, a reserved and a pending_validation charge, a
  // refund, an event, a settlement statement and a reconciliation.
  const succeeded = await charge(h, a.merchant, { msisdn: a.msisdn, amount: '5000' });
  const reserved = await charge(h, a.merchant, {
    msisdn: a.msisdn,
    amount: '7000',
    capture: false,
  });
  const pending = await charge(h, a.merchant, { msisdn: a.msisdn, amount: '200000' });
  expect([succeeded.status, reserved.status, pending.status]).toEqual([201, 201, 201]);
  const refund = await h.http
    .post(`/v1/charges/${succeeded.body.id}/refunds`)
    .set(bearer(a.merchant.key))
    .set('Idempotency-Key', 'seed-refund')
    .send({ amount: '1000' });
  expect(refund.status, refund.text).toBe(201);
  const events = await h.http.get('/v1/events').set(bearer(a.merchant.key));
  await h.c.settlements.openStatements();
  const settlements = await h.http.get('/v1/carrier/settlements').set(bearer(a.carrier.key));
  const recon = await h.http
    .post('/v1/carrier/reconciliations')
    .set(bearer(a.carrier.key))
    .set('Content-Type', 'text/csv')
    .send(
      'carrier_ref,gateway_ref,msisdn,type,amount,currency,occurred_at\n' +
        `c1,${succeeded.body.id},${a.msisdn},charge,5000,VND,${new Date().toISOString()}\n`,
    );
  expect(recon.status, recon.text).toBe(201);
  const adjustment = await h.http
    .post('/v1/admin/adjustments')
    .set(bearer(keys.admin))
    .set('Idempotency-Key', 'seed-adjustment')
    .send({
      account: { type: 'merchant_payable', owner_id: spare.merchant.id },
      amount: '10',
      currency: 'VND',
      direction: 'credit',
      reason: 'seed',
    });
  expect(adjustment.status, adjustment.text).toBe(201);
  const operator = await h.http.post('/v1/admin/operators').set(bearer(keys.admin)).send({
    email: 'spare@example.test',
    name: 'Spare',
    role: 'merchant',
    owner_id: spare.merchant.id,
  });
  expect(operator.status, operator.text).toBe(201);
  Object.assign(ids, {
    charge: [succeeded.body.id, reserved.body.id, pending.body.id],
    refund: [refund.body.id],
    event: (events.body.data as { id: string }[]).map((e) => e.id).slice(0, 3),
    settlement: (settlements.body.data as { id: string }[]).map((s) => s.id).slice(0, 1),
    reconciliation: [recon.body.id],
    msisdn: [a.msisdn],
    carrier: [spare.carrier.id],
    merchant: [spare.merchant.id],
    apiKey: [spare.apiKeyId],
    adjustment: [adjustment.body.id],
    operator: [operator.body.id],
    // A well-formed id that names no port: the routes must refuse hostile input before looking.
    port: [newId('port')],
  });
  for (const [kind, list] of Object.entries(ids)) expect(list.length, kind).toBeGreaterThan(0);
});

afterAll(async () => {
  agent.destroy();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await h?.close();
  await db?.end();
  await dropFreshDatabases();
});

/** The kind of object an operation's path parameter names (a new route must be added there). */
function idKind(op: Operation, param: string): string {
  const kind = objectKind(op, param);
  if (!kind) throw new Error(`no object kind for ${op.path} {${param}}: add it to objectKind()`);
  return kind;
}

// ---- arbitraries -------------------------------------------------------------------------

const HOSTILE = [
  '',
  ' ',
  '../',
  '../../etc/passwd',
  '..%2f..%2fadmin',
  '%2e%2e',
  '%2e%2e%2f%2e%2e%2f',
  '..\\..\\windows',
  '%00',
  '\u0000',
  "' OR '1'='1",
  '1; DROP TABLE charges; --',
  "'; SELECT pg_sleep(5); --",
  '{"$gt":""}',
  '{"amount":1}',
  '__proto__',
  'constructor',
  'null',
  'NaN',
  '-Infinity',
  '-1',
  '0',
  '1e309',
  '9'.repeat(400),
  '\u202e\u0645\u0631\u062d\u0628\u0627',
  'Ω≈ç√∫˜µ≤≥÷',
  '😀'.repeat(20),
  '\uFEFF',
  '\uD800',
  'ch_' + 'A'.repeat(2000),
  'x'.repeat(70_000),
];
const hostileString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
);
const hugeNumber = fc.constantFrom(
  1e308,
  -1e308,
  2 ** 53 + 1,
  -0,
  0.1,
  5e-324,
  1000,
  -1000,
  15000.5,
  2 ** 63,
);
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: hostileString },
  { weight: 2, arbitrary: hugeNumber },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.array(hostileString, { maxLength: 3 }) },
);

/** Values that are close to right for a field, so that requests get past the first checks. */
function plausible(name: string, schema: JsonSchema): fc.Arbitrary<unknown> {
  if (schema.enum) return fc.constantFrom(...schema.enum);
  if (/amount|_max$|threshold|credit_limit/.test(name)) {
    return fc.constantFrom(
      '1000',
      '1',
      '0',
      '-5',
      '1.5',
      '0.000001',
      '1e3',
      ' 100',
      '0x10',
      '１０００',
      '99999999999999999999999999999999999999',
      '10000000000000',
      1000,
    );
  }
  if (name === 'currency') return fc.constantFrom('VND', 'USD', 'vnd', 'XXX', 'JPY', 'BTC');
  if (name === 'msisdn') return fc.constantFrom(a.msisdn, b.msisdn, '+84', '+849' + '0'.repeat(14));
  if (name === 'code') return fc.constantFrom('000000', '123456', '12345', 'abcdef');
  if (/url$/.test(name)) {
    return fc.constantFrom(
      'https://shop.example/hooks',
      'http://127.0.0.1:1/x',
      'http://169.254.169.254/latest/meta-data',
      'file:///etc/passwd',
      'javascript:alert(1)',
      'https://',
    );
  }
  if (name === 'role') return fc.constantFrom('merchant', 'carrier', 'admin', 'auditor', 'root');
  if (/(^|_)id$/.test(name)) return fc.constantFrom(...Object.values(ids).flat());
  if (schema.type === 'integer') return fc.oneof(fc.integer(), hugeNumber);
  if (schema.type === 'boolean') return fc.boolean();
  if (schema.type === 'object') return fc.dictionary(hostileString, hostileString, { maxKeys: 25 });
  return fc.string({ maxLength: 30 });
}

/** An object with (some of) the schema's fields, holding plausible or hostile values. */
function objectFor(schema: JsonSchema | undefined): fc.Arbitrary<Record<string, unknown>> {
  const props = Object.entries(schema?.properties ?? {});
  const fields = props.map(([name, s]) =>
    fc.option(
      fc.tuple(
        fc.constant(name),
        fc.oneof(
          { weight: 2, arbitrary: plausible(name, s) },
          { weight: 1, arbitrary: hostileValue },
        ),
      ),
      { freq: 4 },
    ),
  );
  const unknown = fc.option(fc.tuple(hostileString, hostileValue), { freq: 4 });
  return fc
    .tuple(fc.tuple(...fields), unknown)
    .map(([chosen, extra]) =>
      Object.fromEntries([...chosen, extra].filter((x): x is [string, unknown] => x !== null)),
    );
}

const RAW_BODIES = [
  '{',
  '{"amount":',
  '[1,2',
  'nul',
  '\u0000',
  "{'amount':'1000'}",
  '{"amount":"1000","amount":1000}',
  '{"msisdn":"+84900000001","msisdn":{"$ne":null}}',
  '{"__proto__":{"admin":true}}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  '['.repeat(30_000) + ']'.repeat(30_000),
  '{"a":' + '"x"'.padEnd(70_000, 'x') + '}',
  'carrier_ref,gateway_ref\n1,2\n',
  '<?xml version="1.0"?><charge/>',
  'amount=1000&currency=VND',
];

interface Body {
  payload?: string | Buffer;
  contentType?: string;
}

function bodyFor(op: Operation): fc.Arbitrary<Body> {
  const contentType = fc.oneof(
    { weight: 6, arbitrary: fc.constant(op.body?.contentTypes[0] ?? 'application/json') },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        'application/json',
        'text/plain',
        'text/csv',
        'application/xml',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/json; charset=utf-16',
        'application/json; charset=latin1',
        'application/merge-patch+json',
      ),
    },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
  const payload: fc.Arbitrary<string | Buffer | undefined> = fc.oneof(
    { weight: 5, arbitrary: objectFor(op.body?.schema).map((o) => JSON.stringify(o)) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
    { weight: 2, arbitrary: fc.constantFrom(...RAW_BODIES) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((x) => Buffer.from(x)) },
    { weight: op.body ? 1 : 4, arbitrary: fc.constant(undefined) },
  );
  return fc.record({ payload, contentType });
}

/** Only what an HTTP header can carry (tab, visible ASCII and space, Latin-1 high bytes). */
const headerSafe = (s: string) => s.replace(/[^\t\x20-\x7e\x80-\xff]/g, '~');

/** 1–255 printable ASCII is valid; this also makes the invalid ones HTTP can carry. */
const idempotencyKey = fc.oneof(
  { weight: 4, arbitrary: fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme-ascii' }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '',
      ' ',
      '   ',
      'k'.repeat(255),
      'k'.repeat(256),
      'a\tb',
      'é',
      '\xff',
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 300 }).map(headerSafe) },
);

/** Percent-encodes a whole value (lone surrogates become U+FFFD first: they have no UTF-8). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const encode = (s: string) => encodeURIComponent(s.replace(LONE_SURROGATE, '\uFFFD'));

/** Percent-encodes what cannot travel raw in a request line, leaving `/`, `.` and `%` alone. */
function rawSegment(value: string): string {
  return Array.from(value)
    .map((ch) => (/^[\x21-\x7e]$/.test(ch) && !'?#'.includes(ch) ? ch : encode(ch)))
    .join('');
}

function requestFor(op: Operation) {
  const pathParams = op.parameters.filter((p) => p.in === 'path');
  const queryParams = op.parameters.filter((p) => p.in === 'query');
  const segment = (name: string) =>
    fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...ids[idKind(op, name)]!).map(encode) },
      { weight: 1, arbitrary: hostileString.map((s) => encode(s.slice(0, 3000))) },
      { weight: 1, arbitrary: hostileString.map((s) => rawSegment(s.slice(0, 3000))) },
    );
  const queryValue = (name: string, schema: JsonSchema) =>
    fc.oneof(
      plausible(name, schema).map((v) => String(v)),
      hostileString.map((s) => s.slice(0, 3000)),
    );
  return fc.record({
    path: fc.tuple(...pathParams.map((p) => segment(p.name))).map((values) => {
      let path = op.path;
      pathParams.forEach((p, i) => (path = path.replace(`{${p.name}}`, values[i]!)));
      return path;
    }),
    query: fc.array(
      fc.oneof(
        ...(queryParams.length
          ? [
              fc
                .constantFrom(...queryParams)
                .chain((p) => fc.tuple(fc.constant(p.name), queryValue(p.name, p.schema))),
            ]
          : []),
        fc.tuple(hostileString, hostileString).map(([k, v]) => [k.slice(0, 200), v.slice(0, 3000)]),
      ),
      { maxLength: 4 },
    ),
    idempotencyKey: fc.option(idempotencyKey, { freq: op.idempotent ? 6 : 2 }),
    role: fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...allowedRoles(op)) },
      { weight: 1, arbitrary: fc.constantFrom<Role>('merchant', 'carrier', 'admin', 'auditor') },
    ),
    body: bodyFor(op),
  });
}

// ---- checks -------------------------------------------------------------------------------

async function send(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<Answer> {
  return call(baseUrl, method, path, { headers, body, agent, timeoutMs: 15_000 });
}

/** Never a 5xx; an error is problem+json naming its status, code and request id. */
function expectWellFormed(answer: Answer, what: string): void {
  expect(answer.status, `${what} → ${answer.status} ${answer.text.slice(0, 400)}`).toBeLessThan(
    500,
  );
  if (answer.status < 400) return;
  expect(
    String(answer.headers['content-type']),
    `${what} → ${answer.status} ${answer.text.slice(0, 200)}`,
  ).toMatch(/^application\/problem\+json/);
  const problem = JSON.parse(answer.text) as Record<string, unknown>;
  expect(problem, what).toMatchObject({ status: answer.status });
  expect(typeof problem.code, what).toBe('string');
  expect(typeof problem.type, what).toBe('string');
  expect(problem.request_id, what).toBe(answer.headers['request-id']);
}

/** Sends a request; a rejected one must leave every table as it was. */
async function sendChecked(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<Answer> {
  const before = await rowCounts(db);
  const answer = await send(method, path, headers, body);
  const what = `${method} ${path.slice(0, 200)}`;
  expectWellFormed(answer, what);
  if (REJECTIONS.has(answer.status)) {
    expect(await rowCounts(db), `${what} → ${answer.status} wrote rows`).toEqual(before);
  }
  return answer;
}

const operations = contractOperations();

describe('hostile input: a fuzzer over every operation of openapi.yaml', () => {
  it('covers the contract', () => {
    expect(operations.length).toBeGreaterThan(40);
  });

  for (const op of operations) {
    it(`${op.method} ${op.path}`, async () => {
      await fc.assert(
        fc.asyncProperty(requestFor(op), async (r) => {
          const query = r.query.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&');
          const headers: Record<string, string> = { authorization: `Bearer ${keys[r.role]}` };
          if (r.idempotencyKey !== null) headers['idempotency-key'] = r.idempotencyKey;
          if (r.body.contentType) headers['content-type'] = r.body.contentType;
          await sendChecked(
            op.method,
            query ? `${r.path}?${query}` : r.path,
            headers,
            r.body.payload,
          );
        }),
        { numRuns: RUNS },
      );
    });
  }
});

// ---- auth abuse -------------------------------------------------------------------------------

/** A request the operation's own role could make: valid path, query and body. */
function validRequest(op: Operation, as: Tenant = a) {
  const idOf = (kind: string) => (kind === 'msisdn' ? as.msisdn : ids[kind]![0]!);
  let path = op.path;
  for (const p of op.parameters.filter((x) => x.in === 'path')) {
    path = path.replace(`{${p.name}}`, encodeURIComponent(idOf(idKind(op, p.name))));
  }
  if (op.parameters.some((p) => p.in === 'query' && p.required && p.name === 'msisdn')) {
    path += `?msisdn=${encodeURIComponent(as.msisdn)}`;
  }
  const headers: Record<string, string> = {};
  if (op.idempotent) headers['idempotency-key'] = `abuse-${Math.random().toString(36).slice(2)}`;
  const samples: Record<string, unknown> = {
    createCarrier: {
      code: 'abuse-carrier',
      name: 'X',
      currency: 'VND',
      timezone: 'UTC',
      revenue_share_bps: 1,
    },
    updateCarrier: { name: 'X' },
    createMerchant: { name: 'X', fee_bps: 1 },
    updateMerchant: { name: 'X' },
    createApiKey: { role: 'auditor' },
    setWebhookEndpoint: { url: 'https://shop.example/hooks' },
    putSubscriber: { funding_type: 'prepaid', status: 'active' },
    topupSubscriber: { amount: '1000', currency: 'VND', reference: 'abuse' },
    createCharge: { msisdn: as.msisdn, amount: '1000', currency: 'VND', description: 'abuse' },
    confirmCharge: { code: '123456' },
    captureCharge: {},
    createRefund: {},
    settleSettlement: { payment_reference: 'abuse' },
    createAdjustment: {
      account: { type: 'merchant_payable', owner_id: spare.merchant.id },
      amount: '10',
      currency: 'VND',
      direction: 'credit',
      reason: 'abuse',
    },
    rejectAdjustment: {},
    createOperator: {
      email: `abuse-${Math.random().toString(36).slice(2)}@example.test`,
      name: 'Abuse',
      role: 'auditor',
    },
    requestPortIn: { msisdn: as.msisdn, funding_type: 'prepaid' },
    acceptPortOut: {},
    rejectPortOut: { reason: 'abuse' },
    completePort: {},
    cancelPort: {},
  };
  let body: string | undefined;
  if (op.body?.contentTypes.includes('application/json')) {
    if (!(op.id in samples))
      throw new Error(`no sample body for ${op.id}: add one to validRequest()`);
    body = JSON.stringify(samples[op.id]);
    headers['content-type'] = 'application/json';
  } else if (op.body?.contentTypes.includes('text/csv')) {
    body = 'carrier_ref,gateway_ref,msisdn,type,amount,currency,occurred_at\n';
    headers['content-type'] = 'text/csv';
  }
  return { path, headers, body };
}

describe('auth abuse on every operation', () => {
  it('without a key, or with a malformed or unknown one: 401, nothing written', async () => {
    for (const op of operations) {
      const r = validRequest(op);
      for (const authorization of [
        undefined,
        'Basic YWRtaW46YWRtaW4=',
        `Bearer dcb_ak_${'A'.repeat(43)}`,
        'Bearer ',
      ]) {
        const headers = { ...r.headers, ...(authorization ? { authorization } : {}) };
        const answer = await sendChecked(op.method, r.path, headers, r.body);
        expect(answer.status, `${op.method} ${op.path} with ${authorization}`).toBe(401);
        expect(answer.headers['www-authenticate']).toBe('Bearer');
      }
    }
  });

  it('with a revoked key of the right role: 401, nothing written', async () => {
    for (const op of operations) {
      const r = validRequest(op);
      const role = allowedRoles(op)[0]!;
      const answer = await sendChecked(
        op.method,
        r.path,
        { ...r.headers, authorization: `Bearer ${revoked[role]}` },
        r.body,
      );
      expect(answer.status, `${op.method} ${op.path}`).toBe(401);
    }
  });

  it("with another role's key: 403, nothing written", async () => {
    let checked = 0;
    for (const op of operations) {
      const r = validRequest(op);
      const others = (['merchant', 'carrier', 'admin', 'auditor'] as const).filter(
        (role) => !allowedRoles(op).includes(role),
      );
      for (const role of others) {
        const answer = await sendChecked(
          op.method,
          r.path,
          { ...r.headers, authorization: `Bearer ${keys[role]}` },
          r.body,
        );
        expect(
          { op: `${op.method} ${op.path}`, role, status: answer.status },
          answer.text.slice(0, 300),
        ).toEqual({ op: `${op.method} ${op.path}`, role, status: 403 });
        checked += 1;
      }
    }
    expect(checked).toBeGreaterThan(100);
  });

  it("with another tenant's ids: 404, as if they did not exist, nothing written", async () => {
    const tenantOps = operations.filter(
      (op) =>
        op.tag !== 'admin' &&
        op.parameters.some((p) => p.in === 'path') &&
        // Creating a subscriber is keyed by (carrier, msisdn): B may have its own +84… too.
        !(op.method === 'PUT' && op.path === '/v1/carrier/subscribers/{msisdn}'),
    );
    expect(tenantOps.length).toBeGreaterThan(10);
    for (const op of tenantOps) {
      const r = validRequest(op);
      const otherKey = op.tag === 'merchant' ? b.merchant.key : b.carrier.key;
      const answer = await sendChecked(
        op.method,
        r.path,
        { ...r.headers, authorization: `Bearer ${otherKey}` },
        r.body,
      );
      expect(
        { op: `${op.method} ${op.path}`, status: answer.status },
        answer.text.slice(0, 300),
      ).toEqual({
        op: `${op.method} ${op.path}`,
        status: 404,
      });
    }
  });

  it('after all of it the books balance and the audit chain checks out', async () => {
    const ledger = await send('GET', '/v1/admin/ledger/verify', {
      authorization: `Bearer ${keys.auditor}`,
    });
    expect(ledger.status).toBe(200);
    expect(JSON.parse(ledger.text).ok).toBe(true);
    const audit = await send('GET', '/v1/admin/audit-events/verify', {
      authorization: `Bearer ${keys.auditor}`,
    });
    expect(audit.status).toBe(200);
    expect(JSON.parse(audit.text).ok).toBe(true);
  });
});
