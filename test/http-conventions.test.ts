import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createHarness, newAdminKey, type Harness } from './helpers/harness.js';

let h: Harness;
let admin: string;
beforeAll(async () => {
  h = await createHarness();
  admin = await newAdminKey(h);
});
afterAll(() => h.close());

function expectProblem(
  res: { status: number; headers: Record<string, string>; body: Record<string, unknown> },
  status: number,
  code: string,
) {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, code, type: `urn:dcb-gateway:problem:${code}` });
  expect(typeof res.body.title).toBe('string');
  expect(typeof res.body.detail).toBe('string');
  expect(res.body.request_id).toBe(res.headers['request-id']);
}

describe('HTTP conventions', () => {
  it('answers every request with a Request-Id and echoes a valid X-Request-Id', async () => {
    const generated = await h.http.get('/healthz');
    expect(generated.headers['request-id']).toMatch(/^req_/);
    const echoed = await h.http.get('/healthz').set('X-Request-Id', 'client-trace-42');
    expect(echoed.headers['request-id']).toBe('client-trace-42');
    const tooLong = await h.http.get('/healthz').set('X-Request-Id', 'x'.repeat(129));
    expect(tooLong.headers['request-id']).toMatch(/^req_/);
  });

  it('logs one line per request with its id, status and the number in the URL masked', async () => {
    const id = `log-trace-${Date.now()}`;
    await h.http.get('/v1/charges?msisdn=%2B84901234567').set('X-Request-Id', id);
    const lines = h.logs
      .flatMap((chunk) => chunk.split('\n'))
      .filter((l) => l.includes(id))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 30,
      msg: 'request completed',
      request_id: id,
      req: { method: 'GET' },
      res: { statusCode: 401 },
    });
    expect(typeof lines[0]!.responseTime).toBe('number');
    expect(JSON.stringify(lines[0])).not.toMatch(/901234567/);
  });

  it('401 unauthenticated without a key, with a malformed key, and with an unknown key', async () => {
    expectProblem(await h.http.get('/v1/admin/merchants'), 401, 'unauthenticated');
    expectProblem(
      await h.http.get('/v1/admin/merchants').set('Authorization', 'Basic abc'),
      401,
      'unauthenticated',
    );
    expectProblem(
      await h.http.get('/v1/admin/merchants').set(bearer(`dcb_ak_${'A'.repeat(43)}`)),
      401,
      'unauthenticated',
    );
  });

  it('400 validation_failed with errors[] for unknown fields and wrong types, changing nothing', async () => {
    const before = await h.c.pool.query('SELECT count(*)::int AS n FROM merchants');
    const res = await h.http
      .post('/v1/admin/merchants')
      .set(bearer(admin))
      .send({ name: 'X', fee_bps: 100, colour: 'red' });
    expectProblem(res, 400, 'validation_failed');
    expect(Array.isArray(res.body.errors)).toBe(true);
    const wrongType = await h.http
      .post('/v1/admin/merchants')
      .set(bearer(admin))
      .send({ name: 'X', fee_bps: 'lots' });
    expectProblem(wrongType, 400, 'validation_failed');
    const after = await h.c.pool.query('SELECT count(*)::int AS n FROM merchants');
    expect(after.rows[0].n).toBe(before.rows[0].n);
  });

  it('400 invalid_json for a body that is not JSON', async () => {
    const res = await h.http
      .post('/v1/admin/merchants')
      .set(bearer(admin))
      .set('Content-Type', 'application/json')
      .send('{"name": ');
    expectProblem(res, 400, 'invalid_json');
  });

  it('404 route_not_found for an unknown route, 404 not_found for an unknown object', async () => {
    expectProblem(
      await h.http.get('/v1/admin/nothing-here').set(bearer(admin)),
      404,
      'route_not_found',
    );
    expectProblem(
      await h.http.get('/v1/admin/merchants/mer_00000000000000000000000000').set(bearer(admin)),
      404,
      'not_found',
    );
  });

  it('400 for a JSON body nested too deeply, even on a route that takes no body', async () => {
    for (const path of ['/v1/admin/merchants', '/v1/admin/carriers/car_x/suspend']) {
      const res = await h.http
        .post(path)
        .set(bearer(admin))
        .set('Content-Type', 'application/json')
        .send('['.repeat(5000) + ']'.repeat(5000));
      expectProblem(res, 400, 'validation_failed');
    }
  });

  it('413 payload_too_large for a body over 64 KiB', async () => {
    const res = await h.http
      .post('/v1/admin/merchants')
      .set(bearer(admin))
      .send({ name: 'x'.repeat(70 * 1024), fee_bps: 1 });
    expectProblem(res, 413, 'payload_too_large');
  });

  it('415 unsupported_media_type for a body that is not JSON', async () => {
    const res = await h.http
      .post('/v1/admin/merchants')
      .set(bearer(admin))
      .set('Content-Type', 'text/plain')
      .send('name=x');
    expectProblem(res, 415, 'unsupported_media_type');
  });

  it('serves health, readiness and Prometheus metrics', async () => {
    expect((await h.http.get('/healthz')).body).toEqual({ status: 'ok' });
    const ready = await h.http.get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: 'ready', postgres: 'ok', redis: 'ok' });
    const metrics = await h.metricsHttp.get('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toContain('http_request_duration_seconds');
    expect(metrics.text).toContain('db_pool_connections');
  });
});
