import { createHash, randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newId } from '../../src/lib/ids.js';
import { dropFreshDatabases, openFreshDatabase } from './helpers/chaos-db.js';
import {
  ensureBuilt,
  freePort,
  gatewayEnv,
  run,
  startGateway,
  type GatewayProcess,
} from './helpers/gateway-process.js';
import { bearerHeaders, call, sleep, waitUntil } from './helpers/http-client.js';
import { addSubscriber, chaosMsisdn, ledgerVerify, seedTenants } from './helpers/tenants.js';

/**
 * SPEC §9 as a hostile tenant meets it: two production gateway processes on one fresh database,
 * workers on, each trusting a resolved key for 60 s, so that only the pushed invalidation can
 * explain a key refused within a second on the instance that did not make the change. A carrier
 * tries to take another's numbers; a number is ported while merchants charge it through both
 * instances; one admin with two keys tries to pass four-eyes alone; a revoked key and a
 * suspended person are used on the other instance. Afterwards the books and the audit chain
 * verify.
 */

const CACHE_MS = '60000';

let db: pg.Client;
let databaseUrl: string;
let g1: GatewayProcess;
let g2: GatewayProcess;

interface Carrier {
  id: string;
  key: string;
  code: string;
  name: string;
}
interface Person {
  id: string;
  email: string;
  key: string;
}

let alice: Person & { secondKey: string };
let bob: Person;
let carrierA: Carrier;
let carrierB: Carrier;
let carrierC: Carrier;
let aNumbers: string[];
let cNumbers: string[];
let merchant: { id: string; key: string; staffKey: string };

interface Reply {
  status: number;
  text: string;
  contentType: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

async function api(
  g: GatewayProcess,
  method: string,
  path: string,
  key: string,
  options: { body?: unknown; idem?: boolean } = {},
): Promise<Reply> {
  const headers = bearerHeaders(
    key,
    options.idem ? { 'idempotency-key': `trust-${randomBytes(8).toString('hex')}` } : {},
  );
  const a = await call(g.baseUrl, method, path, { headers, body: options.body });
  let body: unknown = undefined;
  try {
    body = a.text ? JSON.parse(a.text) : undefined;
  } catch {
    body = a.text;
  }
  return { status: a.status, text: a.text, contentType: String(a.headers['content-type']), body };
}

async function expectOk(what: string, reply: Promise<Reply>, status: number): Promise<Reply> {
  const r = await reply;
  if (r.status !== status) throw new Error(`${what}: ${r.status} ${r.text.slice(0, 400)}`);
  return r;
}

/** The admin CLI as an operator of the install runs it, against the test's database. */
async function adminCli(args: string[]): Promise<string[]> {
  const out = await run(process.execPath, ['dist/cli/admin.js', ...args], {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: 'warn',
  });
  return out.trim().split('\n');
}

async function carrierOf(id: string, key: string): Promise<Carrier> {
  const r = await expectOk(
    'read carrier',
    api(g1, 'GET', `/v1/admin/carriers/${id}`, alice.key),
    200,
  );
  return { id, key, code: r.body.code as string, name: r.body.name as string };
}

const subscriberPath = (msisdn: string) => `/v1/carrier/subscribers/${encodeURIComponent(msisdn)}`;

function charge(
  g: GatewayProcess,
  key: string,
  msisdn: string,
  amount: number,
  capture: boolean,
  reference: string,
) {
  return api(g, 'POST', '/v1/charges', key, {
    idem: true,
    body: {
      msisdn,
      amount: String(amount),
      currency: 'VND',
      description: 'chaos: trust',
      merchant_reference: reference,
      capture,
    },
  });
}

const gateways = () => [g1, g2] as const;
const pickGateway = (i: number) => gateways()[i % 2]!;

beforeAll(async () => {
  await ensureBuilt();
  ({ databaseUrl, db } = await openFreshDatabase('trust'));
  const redisUrl = inject('redisUrl');
  const [p1, p2] = [await freePort(), await freePort()];
  const extra = { API_KEY_CACHE_MS: CACHE_MS };
  [g1, g2] = await Promise.all([
    startGateway(gatewayEnv({ databaseUrl, redisUrl, port: p1, extra })),
    startGateway(gatewayEnv({ databaseUrl, redisUrl, port: p2, extra })),
  ]);

  // The first person of the install, and their first key, from the admin CLI.
  const aliceEmail = `alice-${randomBytes(4).toString('hex')}@example.test`;
  const created = await adminCli(['create-operator', '--email', aliceEmail, '--role', 'admin']);
  const aliceId = /operator (op_\S+)/.exec(created.join('\n'))?.[1];
  expect(aliceId, created.join('\n')).toBeDefined();
  expect(created.at(-1)).toMatch(/\/console\/setup#token=/);
  const aliceKey = (
    await adminCli(['create-admin-key', '--operator', aliceEmail, '--description', 'desktop'])
  ).at(-1)!;
  expect(aliceKey).toMatch(/^dcb_ak_/);
  // Her second key (a laptop), asked for by herself over HTTP: still one person.
  const second = await expectOk(
    'second key',
    api(g2, 'POST', '/v1/admin/api-keys', aliceKey, {
      body: { role: 'admin', operator_id: aliceId, description: 'laptop' },
    }),
    201,
  );
  expect(second.body.operator_id).toBe(aliceId);
  alice = { id: aliceId!, email: aliceEmail, key: aliceKey, secondKey: second.body.key as string };

  // A second admin: created by Alice, their key from the CLI (no admin may mint another's).
  const bobEmail = `bob-${randomBytes(4).toString('hex')}@example.test`;
  const bobOp = await expectOk(
    'create bob',
    api(g1, 'POST', '/v1/admin/operators', alice.key, {
      body: { email: bobEmail, name: 'Bob', role: 'admin' },
    }),
    201,
  );
  const bobKey = (await adminCli(['create-admin-key', '--operator', bobOp.body.id as string])).at(
    -1,
  )!;
  bob = { id: bobOp.body.id as string, email: bobEmail, key: bobKey };

  const [a, b, c] = await Promise.all([
    seedTenants(g1.baseUrl, alice.key, { subscribers: 20, balance: '100000' }),
    seedTenants(g2.baseUrl, alice.key, { subscribers: 0, balance: '0' }),
    seedTenants(g2.baseUrl, bob.key, { subscribers: 2, balance: '5000' }),
  ]);
  [carrierA, carrierB, carrierC] = await Promise.all([
    carrierOf(a.carrier.id, a.carrier.key),
    carrierOf(b.carrier.id, b.carrier.key),
    carrierOf(c.carrier.id, c.carrier.key),
  ]);
  aNumbers = a.msisdns;
  cNumbers = c.msisdns;
  // The merchant charges with its machine key and with a staff member's personal key; reserve
  // charges take the transactional path, so the porting race goes through both paths.
  const staff = await expectOk(
    'merchant staff',
    api(g1, 'POST', '/v1/admin/operators', alice.key, {
      body: {
        email: `staff-${randomBytes(4).toString('hex')}@example.test`,
        name: 'Merchant staff',
        role: 'merchant',
        owner_id: a.merchant.id,
      },
    }),
    201,
  );
  const staffKey = await expectOk(
    'staff key',
    api(g1, 'POST', '/v1/admin/api-keys', alice.key, {
      body: { role: 'merchant', operator_id: staff.body.id },
    }),
    201,
  );
  merchant = { id: a.merchant.id, key: a.merchant.key, staffKey: staffKey.body.key as string };
});

afterAll(async () => {
  for (const g of [g1, g2]) g?.signal('SIGTERM');
  await Promise.all(
    [g1, g2].map(async (g) => {
      if (!g) return;
      const timer = setTimeout(() => g.signal('SIGKILL'), 10_000);
      await g.exited;
      clearTimeout(timer);
    }),
  );
  await db?.end();
  await dropFreshDatabases();
});

describe('one holder per number', () => {
  it("a carrier PUTting another's numbers gets one 409 that names nobody; nothing changes; charges still bill the holder", async () => {
    const before = await Promise.all(
      aNumbers.map((n) =>
        expectOk('A reads', api(g1, 'GET', subscriberPath(n), carrierA.key), 200).then(
          (r) => r.body as Record<string, unknown>,
        ),
      ),
    );
    // Every variant of a takeover: as is, barred, moved to postpaid with credit, suspended.
    const variants = [
      { funding_type: 'prepaid', status: 'active' },
      { funding_type: 'prepaid', status: 'barred' },
      { funding_type: 'postpaid', status: 'active', credit_limit: '9999999' },
      { funding_type: 'prepaid', status: 'suspended' },
    ];
    const claims = await Promise.all(
      [...aNumbers, ...cNumbers].map((n, i) =>
        api(pickGateway(i), 'PUT', subscriberPath(n), carrierB.key, {
          body: variants[i % variants.length],
        }),
      ),
    );
    const shapes = new Set<string>();
    for (const r of claims) {
      expect(r.status, r.text).toBe(409);
      expect(r.contentType).toMatch(/application\/problem\+json/);
      expect(r.body.code).toBe('msisdn_held_elsewhere');
      for (const other of [carrierA, carrierC]) {
        for (const secret of [other.id, other.code, other.name])
          expect(r.text).not.toContain(secret);
      }
      const rest = { ...(r.body as Record<string, unknown>) };
      expect(typeof rest.request_id).toBe('string');
      delete rest.request_id;
      shapes.add(JSON.stringify(rest));
    }
    // One body for all: whoever holds the number (A or C), through either instance.
    expect([...shapes]).toHaveLength(1);

    // A reading the number it does not hold learns nothing either.
    const peek = await api(g2, 'GET', subscriberPath(aNumbers[0]!), carrierB.key);
    expect(peek.status).toBe(404);
    for (const secret of [carrierA.id, carrierA.code, carrierA.name])
      expect(peek.text).not.toContain(secret);

    // Two carriers racing for a number nobody holds: one gets it, the other is refused.
    const free = chaosMsisdn();
    const race = await Promise.all(
      [carrierB, carrierC, carrierB, carrierC, carrierB, carrierC].map((c, i) =>
        api(pickGateway(i), 'PUT', subscriberPath(free), c.key, {
          body: { funding_type: 'prepaid', status: 'active' },
        }).then((r) => ({ carrier: c, r })),
      ),
    );
    const winners = new Set(race.filter((x) => x.r.status < 300).map((x) => x.carrier.id));
    expect(winners.size).toBe(1);
    for (const x of race) {
      if (winners.has(x.carrier.id)) expect([200, 201], x.r.text).toContain(x.r.status);
      else expect(x.r.body.code, x.r.text).toBe('msisdn_held_elsewhere');
    }
    expect(race.filter((x) => x.r.status === 201)).toHaveLength(1);

    const after = await Promise.all(
      aNumbers.map((n) => api(g2, 'GET', subscriberPath(n), carrierA.key).then((r) => r.body)),
    );
    expect(after).toEqual(before);

    // Charges to those numbers still resolve to A's subscribers and bill them.
    const charged = aNumbers.slice(0, 6);
    const made = await Promise.all(
      charged.map((n, i) =>
        charge(
          pickGateway(i),
          merchant.key,
          n,
          1500,
          true,
          `held-${i}-${randomBytes(4).toString('hex')}`,
        ),
      ),
    );
    for (const [i, m] of made.entries()) {
      expect(m.status, m.text).toBe(201);
      const read = await api(pickGateway(i + 1), 'GET', `/v1/charges/${m.body.id}`, merchant.key);
      expect(read.body).toMatchObject({ status: 'succeeded', carrier: carrierA.code });
      const sub = await api(g1, 'GET', subscriberPath(charged[i]!), carrierA.key);
      expect(sub.body.balance.posted).toBe(String(100000 - 1500));
    }
  });
});

describe('porting under concurrent charges', () => {
  it('every charge lands on exactly one holder; the old record hands its balance back and the new one starts at zero', async () => {
    const BALANCE = 1_000_000;
    const number = await addSubscriber(g1.baseUrl, carrierA.key, String(BALANCE));
    const fundingOf = async (carrierId: string) => {
      // From the journal: a carrier's funding account is a hot account, whose balance column
      // catches up in batches.
      const { rows } = await db.query<{ s: string }>(
        `SELECT coalesce(sum(e.amount), 0)::text AS s FROM journal_entries e
           JOIN ledger_accounts a ON a.id = e.account_id
          WHERE a.kind = 'carrier_funding' AND a.owner_id = $1`,
        [carrierId],
      );
      return BigInt(rows[0]!.s);
    };
    const fundingBefore = await fundingOf(carrierA.id);

    // A date in the future keeps the completion worker away: the admin completes it, mid-race.
    const requested = await expectOk(
      'port-in',
      api(g2, 'POST', '/v1/carrier/port-ins', carrierB.key, {
        idem: true,
        body: {
          msisdn: number,
          funding_type: 'prepaid',
          effective_at: new Date(Date.now() + 86_400_000).toISOString(),
        },
      }),
      201,
    );
    const portId = requested.body.id as string;
    expect(requested.body).toMatchObject({ status: 'pending', losing_carrier: null });
    const outs = await api(g1, 'GET', '/v1/carrier/port-outs', carrierA.key);
    expect(outs.body.data.map((p: { id: string }) => p.id)).toContain(portId);
    await expectOk(
      'accept',
      api(g2, 'POST', `/v1/carrier/port-outs/${portId}/accept`, carrierA.key, { idem: true }),
      200,
    );

    // Reservations made before the port, to be captured while it completes.
    const held = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        charge(pickGateway(i), merchant.key, number, 2000, false, `port-held-${i}`).then((r) => {
          expect(r.status, r.text).toBe(201);
          expect(r.body.status).toBe('reserved');
          return r.body.id as string;
        }),
      ),
    );

    // A stream of charges from 8 clients (4 per instance): the completion starts once 5 are
    // answered, and the stream goes on until 8 more were sent after the gaining carrier had
    // funded its new record (at least 40, at most 100 in all).
    const MIN_CHARGES = 40;
    const MAX_CHARGES = 100;
    let sent = 0;
    let answered = 0;
    let sentAfterFunding = 0;
    let funded = false;
    let go!: () => void;
    const started = new Promise<void>((resolve) => (go = resolve));
    const t0 = performance.now();
    const timeline: Record<string, number> = {};
    const completion = started.then(async () => {
      timeline.completionSent = Math.round(performance.now() - t0);
      const r = await api(g1, 'POST', `/v1/admin/ports/${portId}/complete`, alice.key, {
        idem: true,
      });
      timeline.completionAnswered = Math.round(performance.now() - t0);
      return r;
    });
    const captures = started.then(() =>
      Promise.all(
        held.map((id, i) =>
          api(pickGateway(i + 1), 'POST', `/v1/charges/${id}/capture`, merchant.key, {
            idem: true,
            body: {},
          }),
        ),
      ),
    );
    // The gaining carrier funds its new record as soon as it is told the port is done, while
    // charges are still arriving.
    const GAINING_TOPUP = 100_000;
    const gainingTopup = completion.then(async (c) => {
      if (c.status !== 200) return c;
      const r = await api(g2, 'POST', `${subscriberPath(number)}/topups`, carrierB.key, {
        idem: true,
        body: { amount: String(GAINING_TOPUP), currency: 'VND', reference: 'after-port' },
      });
      funded = r.status === 201;
      timeline.fundedAt = Math.round(performance.now() - t0);
      return r;
    });
    const burst: Reply[] = [];
    const deadline = Date.now() + 20_000;
    const more = () =>
      sent < MAX_CHARGES && (sent < MIN_CHARGES || sentAfterFunding < 8) && Date.now() < deadline;
    await Promise.all(
      Array.from({ length: 8 }, async (_, client) => {
        while (more()) {
          const i = sent++;
          if (funded) sentAfterFunding += 1;
          const key = i % 3 === 0 ? merchant.staffKey : merchant.key;
          const r = await charge(
            pickGateway(client),
            key,
            number,
            1000,
            i % 2 === 0,
            `port-race-${i}`,
          );
          burst.push(r);
          if (++answered === 5) go();
        }
      }),
    );
    timeline.burstDone = Math.round(performance.now() - t0);
    const BURST = burst.length;
    expect(BURST).toBeGreaterThanOrEqual(MIN_CHARGES);
    expect(sentAfterFunding).toBeGreaterThanOrEqual(8);
    const done = await completion;
    expect(done.status, done.text).toBe(200);
    expect((await gainingTopup).status).toBe(201);

    for (const c of await captures) {
      expect(
        c.status === 200 || (c.status === 409 && c.body.current_status === 'cancelled'),
        c.text,
      ).toBe(true);
    }
    // Every charge was answered as a charge: created (on one holder) or denied, nothing else.
    for (const r of burst) {
      expect([201, 402], r.text).toContain(r.status);
      if (r.status === 201) expect(['succeeded', 'reserved']).toContain(r.body.status);
      else expect(r.body.denial_code, r.text).toBe('insufficient_funds');
    }

    const { rows: records } = await db.query<{
      id: string;
      carrier_id: string;
      status: string;
      account_id: string;
    }>(
      'SELECT id, carrier_id, status, account_id FROM subscribers WHERE msisdn = $1 ORDER BY created_at, id',
      [number],
    );
    expect(records.map((r) => [r.carrier_id, r.status])).toEqual([
      [carrierA.id, 'ported_out'],
      [carrierB.id, 'active'],
    ]);
    const [oldRec, newRec] = records as [(typeof records)[0], (typeof records)[0]];
    const { rows: charges } = await db.query<{
      id: string;
      merchant_reference: string;
      subscriber_id: string;
      carrier_id: string;
      status: string;
      amount: string;
      amount_captured: string;
      cancellation_reason: string | null;
      denial_code: string | null;
    }>(
      `SELECT id, merchant_reference, subscriber_id, carrier_id, status, amount::text,
              amount_captured::text, cancellation_reason, denial_code
         FROM charges WHERE merchant_id = $1 AND merchant_reference LIKE 'port-%'`,
      [merchant.id],
    );
    // None lost, none doubled: exactly the charges the merchant was told of, each on one record.
    const answeredIds = burst.map((r) => (r.body.id ?? r.body.charge_id) as string);
    expect(new Set(answeredIds).size).toBe(BURST);
    expect(charges.map((c) => c.id).sort()).toEqual([...answeredIds, ...held].sort());
    const byId = new Map(charges.map((c) => [c.id, c]));
    for (const [i, r] of burst.entries()) {
      const row = byId.get(answeredIds[i]!)!;
      const holder = row.subscriber_id === oldRec.id ? carrierA : carrierB;
      expect([oldRec.id, newRec.id]).toContain(row.subscriber_id);
      expect(row.carrier_id).toBe(holder.id);
      if (r.status === 201) expect(r.body.carrier).toBe(holder.code);
    }
    const onOld = charges.filter((c) => c.subscriber_id === oldRec.id);
    const onNew = charges.filter((c) => c.subscriber_id === newRec.id);
    // The old holder: what it charged before the port, its open holds cancelled by the port.
    for (const c of onOld) {
      expect(
        c.status === 'succeeded' ||
          (c.status === 'cancelled' && c.cancellation_reason === 'ported'),
        JSON.stringify(c),
      ).toBe(true);
    }
    // The new holder: nothing until its carrier topped it up, then charges like any other.
    for (const c of onNew) {
      expect(
        ['succeeded', 'reserved'].includes(c.status) ||
          (c.status === 'denied' && c.denial_code === 'insufficient_funds'),
        JSON.stringify(c),
      ).toBe(true);
    }
    expect(onOld.length).toBeGreaterThanOrEqual(5 + held.length);
    expect(onNew.length).toBeGreaterThan(0);

    const spentOld = onOld.reduce((s, c) => s + BigInt(c.amount_captured), 0n);
    const returned = BigInt(BALANCE) - spentOld;
    // The losing carrier sees what came back to it; the gaining carrier does not.
    const aView = (await api(g2, 'GET', '/v1/carrier/port-outs', carrierA.key)).body.data.find(
      (p: { id: string }) => p.id === portId,
    );
    expect(aView).toMatchObject({
      status: 'completed',
      returned_balance: String(returned),
      cancelled_charges: onOld.filter((c) => c.status === 'cancelled').length,
    });
    const bView = (await api(g1, 'GET', '/v1/carrier/port-ins', carrierB.key)).body.data.find(
      (p: { id: string }) => p.id === portId,
    );
    expect(bView).toMatchObject({
      status: 'completed',
      losing_carrier: carrierA.id,
      returned_balance: null,
      cancelled_charges: null,
    });
    expect(await fundingOf(carrierA.id)).toBe(fundingBefore + returned);
    const { rows: legs } = await db.query<{ kind: string; owner_id: string; amount: string }>(
      `SELECT a.kind, a.owner_id, e.amount::text FROM journal_transactions t
         JOIN journal_entries e ON e.transaction_id = t.id
         JOIN ledger_accounts a ON a.id = e.account_id
        WHERE t.kind = 'port_out' AND t.reference_id = $1 ORDER BY e.amount`,
      [portId],
    );
    expect(legs).toEqual([
      { kind: 'subscriber', owner_id: oldRec.id, amount: String(-returned) },
      { kind: 'carrier_funding', owner_id: carrierA.id, amount: String(returned) },
    ]);

    // The old record: read-only history at zero, still readable by A, no longer writable.
    const oldView = await api(g1, 'GET', subscriberPath(number), carrierA.key);
    expect(oldView.body).toMatchObject({
      status: 'ported_out',
      balance: { posted: '0', held: '0', available: '0' },
    });
    const rewrite = await api(g2, 'PUT', subscriberPath(number), carrierA.key, {
      body: { funding_type: 'prepaid', status: 'active' },
    });
    expect(rewrite.body).toMatchObject({ status: 409, code: 'invalid_state' });
    const lateTopup = await api(g1, 'POST', `${subscriberPath(number)}/topups`, carrierA.key, {
      idem: true,
      body: { amount: '1000', currency: 'VND', reference: 'too-late' },
    });
    expect(lateTopup.body).toMatchObject({ status: 409, code: 'invalid_state' });

    // The new record started at zero: its money is the gaining carrier's top-up, nothing else.
    const spentNew = onNew.reduce((s, c) => s + BigInt(c.amount_captured), 0n);
    const heldNew = onNew
      .filter((c) => c.status === 'reserved')
      .reduce((s, c) => s + BigInt(c.amount), 0n);
    const newView = await api(g2, 'GET', subscriberPath(number), carrierB.key);
    expect(newView.body).toMatchObject({
      status: 'active',
      carrier: carrierB.id,
      balance: { posted: String(BigInt(GAINING_TOPUP) - spentNew), held: String(heldNew) },
    });
    const { rows: newAccountTxns } = await db.query<{ kind: string; n: number }>(
      `SELECT t.kind, count(*)::int AS n FROM journal_entries e
         JOIN journal_transactions t ON t.id = e.transaction_id
        WHERE e.account_id = $1 GROUP BY t.kind ORDER BY t.kind`,
      [newRec.account_id],
    );
    expect(newAccountTxns.filter((t) => !['topup', 'capture'].includes(t.kind))).toEqual([]);
    const after = await charge(g1, merchant.key, number, 5000, true, 'port-after');
    expect(after.status, after.text).toBe(201);
    expect(after.body).toMatchObject({ status: 'succeeded', carrier: carrierB.code });

    // Both carriers were told of every step.
    for (const c of [carrierA, carrierB]) {
      const events = await api(
        pickGateway(c === carrierA ? 0 : 1),
        'GET',
        '/v1/carrier/events?limit=100',
        c.key,
      );
      const types = (events.body.data as { type: string; subject_id: string }[])
        .filter((e) => e.subject_id === portId)
        .map((e) => e.type);
      expect(types.sort()).toEqual(['port.accepted', 'port.completed', 'port.requested']);
    }
    console.log(
      'porting race:',
      JSON.stringify({
        burst: BURST,
        onOld: onOld.length,
        onOldSucceeded: onOld.filter((c) => c.status === 'succeeded').length,
        cancelledByPort: onOld.filter((c) => c.status === 'cancelled').length,
        onNew: onNew.length,
        onNewDenied: onNew.filter((c) => c.status === 'denied').length,
        onNewCharged: onNew.filter((c) => c.status !== 'denied').length,
        returned: String(returned),
        sentAfterFunding,
        timeline,
      }),
    );
  });
});

describe('four-eyes means two people', () => {
  const proposal = (reason: string) => ({
    account: { type: 'merchant_payable', owner_id: merchant.id },
    amount: '2500',
    currency: 'VND',
    direction: 'credit',
    reason,
  });

  it('two keys of one person are one person; a machine key can do neither; a second person approves', async () => {
    const created = await expectOk(
      'propose',
      api(g1, 'POST', '/v1/admin/adjustments', alice.key, {
        idem: true,
        body: proposal('four-eyes, chaos'),
      }),
      201,
    );
    const id = created.body.id as string;
    expect(created.body).toMatchObject({
      status: 'pending_approval',
      created_by_operator: alice.id,
    });
    // Her other key, on the other instance, and the same key: both refused.
    for (const [g, key] of [
      [g2, alice.secondKey],
      [g1, alice.secondKey],
      [g2, alice.key],
    ] as const) {
      const self = await api(g, 'POST', `/v1/admin/adjustments/${id}/approve`, key, { idem: true });
      expect(self.status, self.text).toBe(403);
      expect(self.body.code).toBe('forbidden');
    }
    // Nor can she make herself a colleague: no key for Bob from her.
    const mint = await api(g1, 'POST', '/v1/admin/api-keys', alice.key, {
      body: { role: 'admin', operator_id: bob.id },
    });
    expect(mint.status, mint.text).toBe(403);

    // A machine admin key, as an instance older than operators could still have minted during
    // a rolling upgrade (the API and the CLI no longer make one): refused both ways.
    const machineKey = `dcb_ak_${randomBytes(32).toString('base64url')}`;
    await db.query(
      `INSERT INTO api_keys (id, key_hash, key_prefix, role) VALUES ($1, $2, $3, 'admin')`,
      [newId('key'), createHash('sha256').update(machineKey).digest(), machineKey.slice(0, 12)],
    );
    const machineCreates = await api(g2, 'POST', '/v1/admin/adjustments', machineKey, {
      idem: true,
      body: proposal('machine'),
    });
    expect(machineCreates.status, machineCreates.text).toBe(403);
    expect(machineCreates.body.code).toBe('operator_required');
    for (const verb of ['approve', 'reject']) {
      const r = await api(g1, 'POST', `/v1/admin/adjustments/${id}/${verb}`, machineKey, {
        idem: true,
        body: verb === 'reject' ? { reason: 'machine' } : undefined,
      });
      expect(r.status, r.text).toBe(403);
      expect(r.body.code).toBe('operator_required');
    }
    // A tenant's machine key is no admin at all.
    const tenantCreates = await api(g1, 'POST', '/v1/admin/adjustments', merchant.key, {
      idem: true,
      body: proposal('tenant'),
    });
    expect(tenantCreates.status).toBe(403);
    const { rows: none } = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM journal_transactions WHERE reference_id = $1`,
      [id],
    );
    expect(none[0]!.n).toBe(0);
    expect(
      (await db.query(`SELECT 1 FROM adjustments WHERE reason IN ('machine', 'tenant')`)).rowCount,
    ).toBe(0);

    const approved = await api(g2, 'POST', `/v1/admin/adjustments/${id}/approve`, bob.key, {
      idem: true,
    });
    expect(approved.status, approved.text).toBe(200);
    expect(approved.body).toMatchObject({
      status: 'posted',
      created_by_operator: alice.id,
      decided_by_operator: bob.id,
    });
    const { rows: posted } = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM journal_transactions WHERE reference_id = $1`,
      [id],
    );
    expect(posted[0]!.n).toBe(1);
  });
});

describe('a revocation or a suspension reaches the other instance within a second', () => {
  /** Polls every 50 ms until `g` answers `status`; the time from `since`, or Infinity. */
  async function msUntil(
    g: GatewayProcess,
    key: string,
    path: string,
    status: number,
    since: number,
    withinMs = 3000,
  ): Promise<number> {
    for (;;) {
      const r = await api(g, 'GET', path, key);
      const now = performance.now();
      if (r.status === status) return now - since;
      expect([200, 401], r.text).toContain(r.status);
      if (now - since > withinMs) return Infinity;
      await sleep(50);
    }
  }

  it('a key used on instance 2 and revoked through instance 1 is refused on 2 within 1 s', async () => {
    const other = await seedTenants(g1.baseUrl, alice.key, { subscribers: 0, balance: '0' });
    const listed = await api(
      g1,
      'GET',
      `/v1/admin/api-keys?owner_id=${other.merchant.id}`,
      alice.key,
    );
    const keyId = listed.body.data[0].id as string;
    for (let i = 0; i < 3; i++) {
      expect((await api(g2, 'GET', '/v1/balance', other.merchant.key)).status).toBe(200);
    }
    const sent = performance.now();
    await expectOk('revoke', api(g1, 'DELETE', `/v1/admin/api-keys/${keyId}`, alice.key), 200);
    const committed = performance.now();
    const ms = await msUntil(g2, other.merchant.key, '/v1/balance', 401, committed);
    console.log(
      'revocation on instance 2:',
      JSON.stringify({
        msAfterAnswer: Math.round(ms),
        msAfterSent: Math.round(ms + committed - sent),
      }),
    );
    expect(ms).toBeLessThanOrEqual(1000);
    // Instance 1 made the change: refused there at once.
    expect((await api(g1, 'GET', '/v1/balance', other.merchant.key)).status).toBe(401);
  });

  it('suspending an operator through instance 1 refuses their cached key on 2 within 1 s; activating restores it', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await api(g2, 'GET', '/v1/balance', merchant.staffKey)).status).toBe(200);
    }
    const staffId = (
      await api(g1, 'GET', `/v1/admin/operators?role=merchant&owner_id=${merchant.id}`, alice.key)
    ).body.data[0].id as string;
    await expectOk(
      'suspend',
      api(g1, 'POST', `/v1/admin/operators/${staffId}/suspend`, bob.key),
      200,
    );
    const suspendedAt = performance.now();
    const refused = await msUntil(g2, merchant.staffKey, '/v1/balance', 401, suspendedAt);
    // The tenant's machine key is not the person's and keeps working.
    expect((await api(g2, 'GET', '/v1/balance', merchant.key)).status).toBe(200);
    await expectOk(
      'activate',
      api(g1, 'POST', `/v1/admin/operators/${staffId}/activate`, bob.key),
      200,
    );
    const activatedAt = performance.now();
    const restored = await msUntil(g2, merchant.staffKey, '/v1/balance', 200, activatedAt);
    console.log(
      'suspension on instance 2:',
      JSON.stringify({ refusedMs: Math.round(refused), restoredMs: Math.round(restored) }),
    );
    expect(refused).toBeLessThanOrEqual(1000);
    expect(restored).toBeLessThanOrEqual(1000);
  });
});

describe('afterwards', () => {
  it('the books balance and the audit chain verifies, sealed to the end', async () => {
    expect((await ledgerVerify(g2.baseUrl, bob.key)).ok).toBe(true);
    let last: Reply | undefined;
    await waitUntil(
      'the sealer seals every audit event',
      async () => {
        last = await api(g1, 'GET', '/v1/admin/audit-events/verify', bob.key);
        return last.status === 200 && last.body.unsealed === 0;
      },
      20_000,
    );
    expect(last!.body).toMatchObject({ ok: true, unsealed: 0 });
    expect(last!.body.checked).toBeGreaterThan(100);
  });
});
