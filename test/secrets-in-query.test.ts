import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { redactUrl } from '../src/lib/secrets.js';
import { newMerchant, type MerchantFixture } from './helpers/factories.js';
import { bearer, createHarness, randomSuffix, type Harness } from './helpers/harness.js';

/**
 * SPEC §10 "Secrets": an API key sent anywhere but the Authorization header is refused with
 * 400 `credentials_in_query` before it is tried, and it is never written to a log — neither in
 * the request line nor on the error path, whatever the answer (400, 401, 404).
 */

let h: Harness;
let merchant: MerchantFixture;

beforeAll(async () => {
  h = await createHarness();
  merchant = await newMerchant(h);
});
afterAll(() => h.close());

/** Everything the harness's logger wrote, as one string. */
const logText = () => h.logs.join('');

function expectRefused(
  res: { status: number; headers: Record<string, string>; body: Record<string, unknown> },
  param: string,
) {
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({
    code: 'credentials_in_query',
    type: 'urn:dcb-gateway:problem:credentials_in_query',
    param,
  });
  expect(JSON.stringify(res.body)).not.toContain(merchant.key);
}

/** The key's secret part: what must never appear, even without its prefix or percent-encoded. */
const secretOf = (key: string) => key.slice('dcb_mk_'.length);

describe('credentials outside the Authorization header', () => {
  const NAMES = [
    'api_key',
    'key',
    'token',
    'access_token',
    'apikey',
    'authorization',
    'password',
    'secret',
    'API_KEY',
    'Api_Key',
    'Token',
    'ACCESS_TOKEN',
  ];

  it('a credential-named query parameter is 400 credentials_in_query, with or without a valid header', async () => {
    for (const name of NAMES) {
      const alone = await h.http.get(`/v1/charges?${name}=${encodeURIComponent(merchant.key)}`);
      expectRefused(alone, name);
      const withHeader = await h.http
        .get(`/v1/charges?limit=5&${name}=${encodeURIComponent(merchant.key)}`)
        .set(bearer(merchant.key));
      expectRefused(withHeader, name);
      // Whatever the value: the name alone says a secret was put in the URL.
      const other = await h.http.get(`/v1/charges?${name}=hunter2`).set(bearer(merchant.key));
      expectRefused(other, name);
    }
  });

  it('is refused before authentication: a valid key in the query never authenticates anything', async () => {
    const res = await h.http.get(`/v1/balance?api_key=${merchant.key}`);
    expect(res.status).toBe(400);
    expect(res.headers['www-authenticate']).toBeUndefined();
    // On an unknown route too (no 404 that would reveal the route table first).
    expectRefused(await h.http.get(`/v1/no-such-route?token=${merchant.key}`), 'token');
    expectRefused(await h.http.get(`/healthz?api_key=${merchant.key}`), 'api_key');
  });

  it('a key-shaped value anywhere else is refused: other query parameters, the path, headers, the body', async () => {
    const k = merchant.key;
    expectRefused(
      await h.http.get(`/v1/charges?starting_after=${k}`).set(bearer(k)),
      'starting_after',
    );
    // Percent-encoded, or only a truncated piece of a key.
    const encoded = k.replace(/_/g, '%5F');
    expectRefused(
      await h.http.get(`/v1/charges?starting_after=${encoded}`).set(bearer(k)),
      'starting_after',
    );
    expectRefused(
      await h.http.get(`/v1/charges?status=${k.slice(0, 20)}`).set(bearer(k)),
      'status',
    );
    expectRefused(await h.http.get(`/v1/charges/${k}`).set(bearer(k)), 'id');
    expectRefused(await h.http.get(`/v1/charges/${encoded}/refunds`), 'id');
    expectRefused(await h.http.get('/v1/charges').set('X-Api-Key', k), 'x-api-key');
    expectRefused(
      await h.http.get('/v1/charges').set(bearer(k)).set('X-Request-Id', k),
      'x-request-id',
    );
    const body = await h.http
      .post('/v1/charges')
      .set(bearer(k))
      .set('Idempotency-Key', `k-${randomSuffix()}`)
      .send({
        msisdn: '+84901234567',
        amount: '1000',
        currency: 'VND',
        description: 'x',
        metadata: { note: `my key is ${k}` },
      });
    expectRefused(body, 'metadata.note');
    const { rows } = await h.c.pool.query<{ n: string }>(
      'SELECT count(*) AS n FROM charges WHERE merchant_id = $1',
      [merchant.id],
    );
    expect(Number(rows[0]!.n)).toBe(0);
  });

  it('the key never reaches a log: refused, unauthenticated (401) and unknown-route (404) requests', async () => {
    const k = merchant.key;
    const trace = `sq-${randomSuffix()}`;
    const requests = [
      h.http.get(`/v1/charges?api_key=${k}`),
      h.http.get(`/v1/charges?API_KEY=${encodeURIComponent(k)}&limit=2`),
      h.http.get(`/v1/charges?password=${encodeURIComponent('s3cr3t-pass')}`),
      h.http.get(`/v1/charges/${k}`).set(bearer(k)),
      h.http.get(`/v1/charges?starting_after=${k.replace(/_/g, '%5F')}`),
      h.http.get(`/v1/no-such-route?key=${k}`),
      // 401: a key in the header that is wrong; 404: an unknown route with a valid key.
      h.http.get('/v1/charges').set(bearer(`${k.slice(0, -4)}AAAA`)),
      h.http.get('/v1/no-such-route').set(bearer(k)),
      h.http.get('/v1/charges/ch_unknown').set(bearer(k)),
    ];
    const answers = [];
    for (const [i, req] of requests.entries())
      answers.push((await req.set('X-Request-Id', `${trace}-${i}`)).status);
    expect(answers).toEqual([400, 400, 400, 400, 400, 400, 401, 404, 404]);

    const lines = logText()
      .split('\n')
      .filter((l) => l.includes(trace));
    // One request line per request, so the assertions below read real log lines.
    expect(lines).toHaveLength(requests.length);
    const text = lines.join('\n');
    expect(text).not.toContain(secretOf(k));
    expect(text).not.toContain(secretOf(k).slice(0, 16));
    expect(text).not.toContain(encodeURIComponent(secretOf(k)).slice(0, 16));
    expect(text).not.toContain('s3cr3t-pass');
    expect(text).toContain('"url":"/v1/charges?api_key=[redacted]"');
    expect(text).toContain('"url":"/v1/charges?API_KEY=[redacted]&limit=2"');
    expect(text).toContain('"url":"/v1/charges/[redacted]"');
    // And nowhere else in the whole log of this run either.
    expect(logText()).not.toContain(secretOf(k));
  });
});

describe('log redaction, the last line of defence', () => {
  it('a key-shaped string in any field or message of any log line is written as [redacted]', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString('utf8'));
        cb();
      },
    });
    const logger = createLogger('info', sink);
    const key = `dcb_ak_${'A1b2_C3-'.repeat(5)}xyz`;
    logger.error({ err: new Error(`query failed near '${key}'`) }, 'boom');
    logger.info({ detail: { nested: [`token ${key.toUpperCase()}`] } }, `saw ${key}`);
    const all = lines.join('');
    expect(lines).toHaveLength(2);
    expect(all).not.toContain(key.slice(7));
    expect(all).not.toContain(key.toUpperCase().slice(7));
    expect(all.match(/\[redacted\]/g)?.length).toBeGreaterThanOrEqual(4);
  });

  it('redactUrl keeps what helps debugging and drops only the secrets', () => {
    expect(redactUrl('/v1/charges?limit=5&Token=abc&starting_after=ch_1')).toBe(
      '/v1/charges?limit=5&Token=[redacted]&starting_after=ch_1',
    );
    expect(redactUrl('/v1/charges/dcb_mk_abc/refunds?x=dcb%5Fck%5Fzz')).toBe(
      '/v1/charges/[redacted]/refunds?x=[redacted]',
    );
    expect(redactUrl('/v1/charges?%ZZ=1&password')).toBe('/v1/charges?%ZZ=1&password');
  });
});
