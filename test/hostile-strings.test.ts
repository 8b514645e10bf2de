import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Test } from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerClientErrors } from '../src/http/client-errors.js';
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
 * SPEC §10 "Strings": a string with NUL, a lone surrogate or a control character other than
 * tab and line feed, in any field — a JSON value or key at any depth, a query parameter, a
 * path segment, a header the gateway reads — is 400 `invalid_string` naming the field, and
 * nothing is written.
 */

let h: Harness;
let admin: string;
let carrier: CarrierFixture;
let merchant: MerchantFixture;
let msisdn: string;
let chargeId: string;
/** Every request of this file carries an X-Request-Id with this prefix; audit rows record it. */
const trace = `hs-${randomSuffix()}`;
let traced = 0;

beforeAll(async () => {
  h = await createHarness();
  admin = await newAdminKey(h);
  carrier = await newCarrier(h);
  merchant = await newMerchant(h);
  ({ msisdn } = await newSubscriber(h, carrier, { balance: '1000000' }));
  const ok = await charge(h, merchant, { msisdn, amount: '1000' });
  expect(ok.status, ok.text).toBe(201);
  chargeId = ok.body.id;
});
afterAll(() => h.close());

/** The kinds of bad character, each inside otherwise ordinary text. */
const BAD: [string, string][] = [
  ['NUL', '\u0000'],
  ['a lone high surrogate', '\ud800'],
  ['a lone low surrogate', '\udfff'],
  ['SOH (C0)', '\u0001'],
  ['ESC (C0)', '\u001b'],
  ['vertical tab', '\u000b'],
  ['carriage return', '\r'],
  ['DEL', '\u007f'],
  ['NEL (C1)', '\u0085'],
  ['U+009F (C1)', '\u009f'],
];

/** Percent-encodes every UTF-16 code unit as its (generalised) UTF-8 bytes, lone surrogates too. */
function percentEncode(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i += 1) {
    const unit = text.charCodeAt(i);
    const next = text.charCodeAt(i + 1);
    let cp = unit;
    if (unit >= 0xd800 && unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      cp = 0x10000 + ((unit - 0xd800) << 10) + (next - 0xdc00);
      i += 1;
    }
    const bytes =
      cp < 0x80
        ? [cp]
        : cp < 0x800
          ? [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)]
          : cp < 0x10000
            ? [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)]
            : [
                0xf0 | (cp >> 18),
                0x80 | ((cp >> 12) & 0x3f),
                0x80 | ((cp >> 6) & 0x3f),
                0x80 | (cp & 0x3f),
              ];
    out += bytes.map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
  }
  return out;
}

/** How the problem names a JSON key that holds a bad character. */
function escaped(text: string): string {
  return text.replace(
    /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\uD800-\uDFFF]/gu, // eslint-disable-line no-control-regex
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

interface Counts {
  charges: number;
  refunds: number;
  subscribers: number;
  merchants: number;
  keys: number;
  audit: number;
  idempotency: number;
}

async function counts(marker: string): Promise<Counts> {
  const { rows } = await h.c.pool.query<Record<keyof Counts, string>>(
    `SELECT
       (SELECT count(*) FROM charges WHERE merchant_id = $1) AS charges,
       (SELECT count(*) FROM refunds r JOIN charges c ON c.id = r.charge_id
         WHERE c.merchant_id = $1) AS refunds,
       (SELECT count(*) FROM subscribers WHERE carrier_id = $2) AS subscribers,
       (SELECT count(*) FROM merchants WHERE name LIKE $3 || '%') AS merchants,
       (SELECT count(*) FROM api_keys WHERE description LIKE $3 || '%') AS keys,
       (SELECT count(*) FROM audit_events WHERE request_id LIKE $4 || '%'
         OR actor_id = ANY(ARRAY[$1, $2])) AS audit,
       (SELECT count(*) FROM idempotency_keys WHERE owner_id = ANY(ARRAY[$1, $2])) AS idempotency`,
    [merchant.id, carrier.id, marker, trace],
  );
  const row = rows[0]!;
  return Object.fromEntries(
    Object.entries(row).map(([k, v]) => [k, Number(v)]),
  ) as unknown as Counts;
}

function expectInvalidString(
  res: { status: number; headers: Record<string, string>; body: Record<string, unknown> },
  param: string,
) {
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({
    status: 400,
    code: 'invalid_string',
    type: 'urn:dcb-gateway:problem:invalid_string',
    title: 'Invalid string',
    param,
  });
  expect(res.body.request_id).toBe(res.headers['request-id']);
}

/** One place a string can arrive; `send` builds the request, `param` is what the problem names. */
interface Place {
  name: string;
  send: (bad: string, marker: string) => Test;
  param: (bad: string) => string;
}

const key = () => `k-${randomSuffix()}`;

const PLACES: Place[] = [
  {
    name: 'charge description (body, top level)',
    send: (bad) =>
      charge(h, merchant, { msisdn, amount: '1000', description: `Game ${bad} coins` }),
    param: () => 'description',
  },
  {
    name: 'charge merchant_reference (body, top level)',
    send: (bad) => charge(h, merchant, { msisdn, amount: '1000', merchant_reference: `o${bad}1` }),
    param: () => 'merchant_reference',
  },
  {
    name: 'charge metadata value (nested)',
    send: (bad) =>
      charge(h, merchant, { msisdn, amount: '1000', metadata: { level: '3', note: `a${bad}b` } }),
    param: () => 'metadata.note',
  },
  {
    name: 'charge metadata key (nested)',
    send: (bad) =>
      charge(h, merchant, { msisdn, amount: '1000', metadata: { [`no${bad}te`]: 'x' } }),
    param: (bad) => `metadata.${escaped(`no${bad}te`)}`,
  },
  {
    name: 'refund reason',
    send: (bad) =>
      h.http
        .post(`/v1/charges/${chargeId}/refunds`)
        .set(bearer(merchant.key))
        .set('Idempotency-Key', key())
        .send({ amount: '1', reason: `changed ${bad} mind` }),
    param: () => 'reason',
  },
  {
    name: 'top-up reference',
    send: (bad, marker) =>
      h.http
        .post(`/v1/carrier/subscribers/${msisdn}/topups`)
        .set(bearer(carrier.key))
        .set('Idempotency-Key', key())
        .send({ amount: '100', currency: 'VND', reference: `${marker}${bad}` }),
    param: () => 'reference',
  },
  {
    name: 'merchant name (admin)',
    send: (bad, marker) =>
      h.http
        .post('/v1/admin/merchants')
        .set(bearer(admin))
        .send({ name: `${marker}${bad}`, fee_bps: 100 }),
    param: () => 'name',
  },
  {
    name: 'API key description (admin)',
    send: (bad, marker) =>
      h.http
        .post('/v1/admin/api-keys')
        .set(bearer(admin))
        .send({ role: 'merchant', owner_id: merchant.id, description: `${marker}${bad}` }),
    param: () => 'description',
  },
  {
    name: 'webhook URL (was stored cut off at a NUL)',
    send: (bad) =>
      h.http
        .put('/v1/webhook-endpoint')
        .set(bearer(merchant.key))
        .send({ url: `https://example.com/hook${bad}.evil.example` }),
    param: () => 'url',
  },
  {
    name: 'query parameter value',
    send: (bad) =>
      h.http
        .get(`/v1/charges?starting_after=${percentEncode(`ch_${bad}`)}`)
        .set(bearer(merchant.key)),
    param: () => 'starting_after',
  },
  {
    name: 'query parameter name',
    send: (bad) =>
      h.http.get(`/v1/charges?${percentEncode(`li${bad}mit`)}=5`).set(bearer(merchant.key)),
    // A name that is not UTF-8 (a lone surrogate has no UTF-8 form) is named as it was sent.
    param: (bad) =>
      /[\ud800-\udfff]/.test(bad) ? percentEncode(`li${bad}mit`) : escaped(`li${bad}mit`),
  },
  {
    name: 'path parameter (charge id)',
    send: (bad) =>
      h.http.get(`/v1/charges/${percentEncode(`ch_${bad}`)}`).set(bearer(merchant.key)),
    param: () => 'id',
  },
  {
    name: 'path parameter (msisdn, a write)',
    send: (bad) =>
      h.http
        .put(`/v1/carrier/subscribers/${percentEncode(`+8490${bad}1234567`)}`)
        .set(bearer(carrier.key))
        .send({ funding_type: 'prepaid', status: 'active' }),
    param: () => 'msisdn',
  },
];

describe('hostile strings', () => {
  for (const place of PLACES) {
    it(`${place.name}: every kind of bad character is 400 invalid_string naming the field, nothing written`, async () => {
      const marker = `hs-${randomSuffix()}-`;
      const before = await counts(marker);
      for (const [label, bad] of BAD) {
        traced += 1;
        const res = await place.send(bad, marker).set('X-Request-Id', `${trace}-${traced}`);
        expect(res.status, `${label}: ${res.text}`).toBe(400);
        expectInvalidString(res, place.param(bad));
        expect(String(res.body.detail)).not.toContain(bad);
      }
      expect(await counts(marker)).toEqual(before);
    });
  }

  it('the same text without the bad character is accepted (the rule refuses only what it names)', async () => {
    const ok = await charge(h, merchant, {
      msisdn,
      amount: '1000',
      description: 'Tab\tand\nnewline, 日本語, emoji 🎮, RTL עברית, zero\u200bwidth, U+FFFD \ufffd',
      metadata: { 'clé 🎮': 'value\twith\ttabs' },
    });
    expect(ok.status, ok.text).toBe(201);
    expect(ok.body.description).toContain('🎮');
    expect(ok.body.metadata).toEqual({ 'clé 🎮': 'value\twith\ttabs' });
  });

  it("a control character in a header the gateway reads is refused, by that header's own rule where it has one", async () => {
    const before = await counts('none');
    // Node's HTTP client (and server) refuse C0 and DEL in a header; C1 bytes reach the app.
    for (const bad of ['\u0085', '\u009f', '\u0080']) {
      // SPEC §3.1: a non-printable Idempotency-Key is idempotency_key_invalid.
      const idem = await charge(h, merchant, { msisdn, amount: '1000' }, `key${bad}1`);
      expect(idem.status, idem.text).toBe(400);
      expect(idem.body).toMatchObject({
        code: 'idempotency_key_invalid',
        param: 'Idempotency-Key',
      });
      // The client address (req.ip behind a trusted proxy) is written to every audit event.
      const forwarded = await charge(h, merchant, { msisdn, amount: '1000' }).set(
        'X-Forwarded-For',
        `203.0.113.7${bad}`,
      );
      expectInvalidString(forwarded, 'X-Forwarded-For');
    }
    expect(await counts('none')).toEqual(before);
  });

  it('an X-Request-Id with a control character is not echoed: the request gets an id of its own (SPEC §3)', async () => {
    for (const bad of ['\u0085', '\u009f']) {
      const traced = await charge(h, merchant, { msisdn, amount: '1000' }).set(
        'X-Request-Id',
        `trace${bad}1`,
      );
      expect(traced.status, traced.text).toBe(201);
      expect(traced.headers['request-id']).toMatch(/^req_/);
    }
  });

  it('raw bytes that are not UTF-8 in a JSON body are refused, not decoded into U+FFFD', async () => {
    const before = await counts('none');
    for (const bytes of [
      [0xff],
      [0xc3],
      [0xed, 0xa0, 0x80],
      [0xc0, 0x80],
      [0xf8, 0x88, 0x80, 0x80, 0x80],
    ]) {
      const body = Buffer.concat([
        Buffer.from(`{"msisdn":"${msisdn}","amount":"1000","currency":"VND","description":"a`),
        Buffer.from(bytes),
        Buffer.from('b"}'),
      ]);
      const res = await h.http
        .post('/v1/charges')
        .set(bearer(merchant.key))
        .set('Idempotency-Key', key())
        .set('Content-Type', 'application/json')
        .serialize((raw: unknown) => raw as string)
        .send(body);
      expectInvalidString(res, 'body');
    }
    expect(await counts('none')).toEqual(before);
  });

  it('literal DEL and C1 characters in the JSON text (legal JSON) are refused like escaped ones', async () => {
    for (const bad of ['\u007f', '\u0085']) {
      const res = await h.http
        .post('/v1/charges')
        .set(bearer(merchant.key))
        .set('Idempotency-Key', key())
        .set('Content-Type', 'application/json')
        .serialize((raw: unknown) => raw as string)
        .send(
          Buffer.from(
            `{"msisdn":"${msisdn}","amount":"1000","currency":"VND","description":"a${bad}b"}`,
            'utf8',
          ),
        );
      expectInvalidString(res, 'description');
    }
  });

  it('a bad string deep in an array is named by its position', async () => {
    const res = await charge(h, merchant, {
      msisdn,
      amount: '1000',
      metadata: { tags: [{ a: 'ok' }, { a: 'ok', b: 'x\u0000' }] },
    });
    expectInvalidString(res, 'metadata.tags[1].b');
  });

  it('a NUL in a header never reaches the app: the HTTP parser answers 400 problem+json', async () => {
    const server: Server = h.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    answerClientErrors(server, h.c.logger);
    try {
      const port = (server.address() as AddressInfo).port;
      const before = await counts('none');
      const raw = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          const body = JSON.stringify({
            msisdn,
            amount: '1000',
            currency: 'VND',
            description: 'x',
          });
          socket.write(
            Buffer.concat([
              Buffer.from(
                `POST /v1/charges HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${merchant.key}\r\n` +
                  'Content-Type: application/json\r\nIdempotency-Key: a',
              ),
              Buffer.from([0]),
              Buffer.from(`b\r\nContent-Length: ${body.length}\r\n\r\n${body}`),
            ]),
          );
        });
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString('utf8')));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
      expect(raw).toMatch(/^HTTP\/1\.1 400 /);
      expect(raw).toContain('application/problem+json');
      expect(await counts('none')).toEqual(before);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('nothing was stored cut short at a NUL: no charge of this merchant has a truncated description', async () => {
    const { rows } = await h.c.pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM charges WHERE merchant_id = $1 AND description <> 'test purchase'
         AND description NOT LIKE 'Tab%'`,
      [merchant.id],
    );
    expect(Number(rows[0]!.n)).toBe(0);
  });

  describe('reconciliation CSV (text/csv)', () => {
    const HEADER = 'carrier_ref,gateway_ref,msisdn,type,amount,currency,occurred_at';
    const upload = (body: Buffer | string) =>
      h.http
        .post('/v1/carrier/reconciliations')
        .set(bearer(carrier.key))
        .set('Content-Type', 'text/csv')
        .serialize((raw: unknown) => raw as string)
        .send(typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
    const reconciliations = async () => {
      const { rows } = await h.c.pool.query<{ n: string }>(
        'SELECT count(*) AS n FROM reconciliations WHERE carrier_id = $1',
        [carrier.id],
      );
      return Number(rows[0]!.n);
    };

    it('a NUL or control character in a row makes that line an invalid row, not a 500', async () => {
      const at = new Date().toISOString();
      const lines = [
        HEADER,
        `c-1,${chargeId},${msisdn},charge,1000,VND,${at}`,
        `c\u00002,ch_x\u0000y,${msisdn},charge,1000,VND,${at}`,
        `c-3,ch_other,${msisdn},charge,10\u001b00,VND,${at}`,
        `c-4,ch_del,${msisdn},charge,1000,VND\u007f,${at}`,
      ];
      const res = await upload(lines.join('\n') + '\n');
      expect(res.status, res.text).toBe(201);
      expect(res.body.rows).toBe(4);
      expect(res.body.counts.invalid_row).toBe(3);
      const csv = await h.http
        .get(`/v1/carrier/reconciliations/${res.body.id}?exceptions=csv`)
        .set(bearer(carrier.key));
      expect(csv.status).toBe(200);
      const invalid = csv.text.split('\n').filter((l) => l.startsWith('invalid_row'));
      expect(invalid).toHaveLength(3);
      expect(invalid[0]).toContain('carrier_ref contains U+0000 (NUL)');
      expect(invalid[0]).toContain('gateway_ref contains U+0000 (NUL)');
      // The refs are kept to find the row, with the NUL shown escaped, never cut short.
      expect(invalid[0]).toContain('ch_x\\u0000y');
      expect(invalid[1]).toContain('amount contains U+001B');
      expect(invalid[2]).toContain('currency contains U+007F');
      expect(csv.text).not.toContain('\u0000');
    });

    it('a file that is not UTF-8 is 400 invalid_string and nothing is stored', async () => {
      const before = await reconciliations();
      const at = new Date().toISOString();
      const res = await upload(
        Buffer.concat([
          Buffer.from(`${HEADER}\nc-1,${chargeId},${msisdn},charge,1000,VND,${at}\nc-`),
          Buffer.from([0xe9, 0x32]), // "é" in Latin-1
          Buffer.from(`,ch_y,${msisdn},charge,1000,VND,${at}\n`),
        ]),
      );
      expectInvalidString(res, 'body');
      expect(await reconciliations()).toBe(before);
    });
  });
});
