import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { dropFreshDatabases, freshDatabase } from './helpers/chaos-db.js';
import {
  ensureBuilt,
  freePort,
  gatewayEnv,
  startGateway,
  type GatewayProcess,
} from './helpers/gateway-process.js';
import { call, ConnectionLost } from './helpers/http-client.js';

/**
 * SPEC §10: the real `node dist/main.js` serves /metrics on METRICS_HOST:METRICS_PORT and not on
 * its public port, and closes both listeners on SIGTERM.
 */

let gateway: GatewayProcess;
let metricsUrl: string;

beforeAll(async () => {
  await ensureBuilt();
  const databaseUrl = await freshDatabase('metrics');
  const [port, metricsPort] = [await freePort(), await freePort()];
  gateway = await startGateway(
    gatewayEnv({ databaseUrl, redisUrl: inject('redisUrl'), port, metricsPort }),
  );
  metricsUrl = gateway.metricsUrl!;
});

afterAll(async () => {
  gateway?.signal('SIGKILL');
  await gateway?.exited;
  await dropFreshDatabases();
});

describe('the gateway process serves /metrics on its own listener', () => {
  it('the public port answers 404 for /metrics; the metrics port serves Prometheus text', async () => {
    expect((await call(gateway.baseUrl, 'GET', '/healthz')).status).toBe(200);
    const publicPort = await call(gateway.baseUrl, 'GET', '/metrics');
    expect(publicPort.status).toBe(404);
    expect(publicPort.text).not.toContain('http_request_duration_seconds');

    const scraped = await call(metricsUrl, 'GET', '/metrics');
    expect(scraped.status).toBe(200);
    expect(scraped.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(scraped.text).toMatch(
      /http_request_duration_seconds_count\{method="GET",route="\/healthz",status="200"\} [1-9]/,
    );
    // Default process metrics are on in production.
    expect(scraped.text).toContain('process_cpu_user_seconds_total');
    expect((await call(metricsUrl, 'GET', '/v1/charges')).status).toBe(404);
  });

  it('SIGTERM closes the metrics listener too, and the process exits 0', async () => {
    gateway.signal('SIGTERM');
    expect(await gateway.exited).toEqual({ code: 0, signal: null });
    await expect(call(metricsUrl, 'GET', '/metrics', { timeoutMs: 1000 })).rejects.toBeInstanceOf(
      ConnectionLost,
    );
  });
});
