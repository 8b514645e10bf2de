import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { startMetricsServer } from '../src/http/metrics-server.js';
import { createHarness, type Harness } from './helpers/harness.js';

let h: Harness;
let server: Server;
let metricsUrl: string;
beforeAll(async () => {
  h = await createHarness();
  // The listener main.ts starts, on a free loopback port.
  server = await startMetricsServer(h.c, { host: '127.0.0.1', port: 0 });
  metricsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await h.close();
});

describe('/metrics on its own listener (SPEC §10)', () => {
  it('is not served on the public port: 404 route_not_found', async () => {
    for (const path of ['/metrics', '/metrics?format=text', '/metrics/']) {
      const res = await h.http.get(path);
      expect(res.status, path).toBe(404);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.body).toMatchObject({ code: 'route_not_found' });
      expect(res.text).not.toContain('http_request_duration_seconds');
    }
  });

  it('the metrics listener serves Prometheus text, including what the public port did', async () => {
    expect((await h.http.get('/healthz')).status).toBe(200);
    const res = await fetch(`${metricsUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('# TYPE http_request_duration_seconds histogram');
    expect(text).toMatch(
      /http_request_duration_seconds_count\{method="GET",route="\/healthz",status="200"\} [1-9]/,
    );
    expect(text).toMatch(/db_pool_connections\{state="total"\} \d+/);
    const head = await fetch(`${metricsUrl}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
  });

  it('the metrics listener answers 404 to everything else, the API included', async () => {
    for (const path of ['/', '/healthz', '/v1/charges', '/metricsx']) {
      expect((await fetch(`${metricsUrl}${path}`)).status, path).toBe(404);
    }
    expect((await fetch(`${metricsUrl}/metrics`, { method: 'POST' })).status).toBe(404);
  });

  it('binds to loopback on port 9464 unless METRICS_HOST and METRICS_PORT say otherwise', () => {
    const defaults = loadConfig({});
    expect(defaults.METRICS_HOST).toBe('127.0.0.1');
    expect(defaults.METRICS_PORT).toBe(9464);
    expect((server.address() as AddressInfo).address).toBe('127.0.0.1');
    const set = loadConfig({ METRICS_HOST: '0.0.0.0', METRICS_PORT: '9100' });
    expect(set.METRICS_HOST).toBe('0.0.0.0');
    expect(set.METRICS_PORT).toBe(9100);
    expect(() => loadConfig({ METRICS_PORT: '70000' })).toThrow(/METRICS_PORT/);
  });
});
