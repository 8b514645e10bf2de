import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { anyAddress } from '../../src/lib/outbound-address.js';
import { createSmsDispatcher, type SmsDispatcher } from '../../src/modules/sms/sms-service.js';
import {
  createWebhookDispatcher,
  type WebhookDispatcher,
} from '../../src/modules/events/webhook-dispatcher.js';
import { runWorkerLoops, type Workers } from '../../src/workers/workers.js';
import {
  newCarrier,
  newMerchant,
  newSubscriber,
  type MerchantFixture,
} from '../helpers/factories.js';
import { createHarness, type Harness } from '../helpers/harness.js';
import { bearerHeaders, call, percentile } from './helpers/http-client.js';

/**
 * SPEC §5.1 and the house rule "side effects after commit": a merchant webhook receiver that
 * never answers and a carrier SMS endpoint that hangs must not slow the charge path. Charge
 * latency is measured in the same run with well-behaved receivers and with hanging ones, while
 * the webhook and SMS dispatchers run in their loops in the same process.
 */

const CONCURRENCY = 4;
const CHARGES = 160;
const OTP_THRESHOLD = 50_000;

/** An HTTP endpoint that answers 200 at once, or one that accepts and never answers. */
class Receiver {
  readonly server: http.Server;
  readonly sockets = new Set<Socket>();
  requests = 0;
  constructor(readonly hangs: boolean) {
    this.server = http.createServer((req, res) => {
      this.requests += 1;
      req.resume();
      if (!hangs) req.on('end', () => res.writeHead(200).end('ok'));
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }
  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

interface Side {
  merchant: MerchantFixture;
  msisdns: string[];
  carrierId: string;
}

let h: Harness;
let server: http.Server;
let baseUrl: string;
const fast = new Receiver(false);
const hanging = new Receiver(true);
let healthy: Side;
let slow: Side;
let dispatchers: (SmsDispatcher | WebhookDispatcher)[] = [];
let loops: Workers | undefined;

async function side(receiverUrl: string): Promise<Side> {
  const unlimited = { per_transaction_max: null, daily_max: null, monthly_max: null };
  const carrier = await newCarrier(h, {
    otp_threshold: String(OTP_THRESHOLD),
    sms_url: receiverUrl,
    limits: { prepaid: unlimited, postpaid: unlimited },
  });
  const merchant = await newMerchant(h, { webhook_url: receiverUrl });
  const msisdns: string[] = [];
  for (let i = 0; i < 8; i++) {
    msisdns.push((await newSubscriber(h, carrier, { balance: '100000000' })).msisdn);
  }
  return { merchant, msisdns, carrierId: carrier.id };
}

beforeAll(async () => {
  h = await createHarness({ env: { PG_POOL_MAX: '20' } });
  server = h.app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  healthy = await side(await fast.listen());
  slow = await side(await hanging.listen());
  const common = { pool: h.c.pool, logger: h.c.logger, metrics: h.c.metrics };
  // The production timeouts (SMS 5 s, webhooks 10 s): a hanging receiver holds each attempt that long.
  dispatchers = [
    createWebhookDispatcher({
      ...common,
      sandbox: true,
      timeoutMs: h.c.config.WEBHOOK_TIMEOUT_MS,
      merchantIds: [healthy.merchant.id, slow.merchant.id],
    }),
    createSmsDispatcher({
      ...common,
      sandbox: false,
      // The carriers here are loopback receivers: this file is about slowness, not addresses.
      allowAddress: anyAddress,
      timeoutMs: h.c.config.SMS_TIMEOUT_MS,
      carrierIds: [healthy.carrierId, slow.carrierId],
    }),
  ];
  loops = runWorkerLoops(dispatchers, 50, h.c.logger);
});

afterAll(async () => {
  await hanging.close();
  await fast.close();
  for (const d of dispatchers) d.close();
  await loops?.stop();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await h?.close();
});

/** Charges `count` times with `CONCURRENCY` clients; a quarter need consent (an SMS goes out). */
async function chargeLatencies(s: Side, count: number): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) {
        const i = next++;
        const consent = i % 4 === 0;
        const answer = await call(baseUrl, 'POST', '/v1/charges', {
          agent,
          headers: bearerHeaders(s.merchant.key, {
            'idempotency-key': `k-${randomBytes(6).toString('hex')}`,
          }),
          body: {
            msisdn: s.msisdns[i % s.msisdns.length],
            amount: String(consent ? OTP_THRESHOLD + i : 1000 + i),
            currency: 'VND',
            description: 'chaos: slow dependencies',
          },
        });
        expect(answer.status, answer.text).toBe(201);
        latencies.push(answer.ms);
      }
    }),
  );
  agent.destroy();
  return latencies;
}

describe('slow dependencies', () => {
  it('a webhook receiver that never answers and an SMS endpoint that hangs do not slow the charge path', async () => {
    await chargeLatencies(healthy, 40); // warm-up: JIT, pool connections, prepared paths
    const without = await chargeLatencies(healthy, CHARGES);
    const deliveredBefore = fast.requests;
    const withSlow = await chargeLatencies(slow, CHARGES);

    const p = (xs: number[], q: number) => Math.round(percentile(xs, q));
    const report = {
      without: { p50: p(without, 50), p99: p(without, 99) },
      with: { p50: p(withSlow, 50), p99: p(withSlow, 99) },
      fastReceiverRequests: deliveredBefore,
      hangingReceiverRequests: hanging.requests,
      hangingConnectionsOpen: hanging.sockets.size,
    };
    console.log('slow dependencies:', JSON.stringify(report));

    // The dispatchers really were at work: the healthy receivers got webhooks and SMS, and the
    // hanging ones were holding deliveries while the second half ran.
    expect(deliveredBefore).toBeGreaterThan(0);
    expect(hanging.requests).toBeGreaterThan(0);
    expect(hanging.sockets.size).toBeGreaterThan(0);
    expect(report.with.p99).toBeLessThanOrEqual(2 * report.without.p99 + 50);
  });
});
