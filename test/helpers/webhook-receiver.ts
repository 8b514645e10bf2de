import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { withTransaction } from '../../src/db/transaction.js';
import { insertEvent, type EventType } from '../../src/modules/events/events-repo.js';
import {
  createWebhookDispatcher,
  type WebhookDispatcher,
  type WebhookDispatcherOptions,
} from '../../src/modules/events/webhook-dispatcher.js';
import { bearer, type Harness } from './harness.js';

export interface Reception {
  headers: IncomingHttpHeaders;
  rawBody: string;
  body: { id: string; sequence: string; data: Record<string, unknown>; [k: string]: unknown };
}

/** What the receiver does with the n-th request (0-based): answer a status, or never answer. */
export type Responder = (reception: Reception, n: number) => number | 'hang';

export interface Receiver {
  url: string;
  receptions: Reception[];
  respond: Responder;
  /** Receptions per CloudEvent id. */
  countsById(): Map<string, number>;
  close(): Promise<void>;
}

/** A real HTTP receiver on 127.0.0.1 with a random port, recording every request. */
export async function startReceiver(respond: Responder = () => 204): Promise<Receiver> {
  const receptions: Reception[] = [];
  const receiver: Receiver = {
    url: '',
    receptions,
    respond,
    countsById() {
      const counts = new Map<string, number>();
      for (const r of receptions) counts.set(r.body.id, (counts.get(r.body.id) ?? 0) + 1);
      return counts;
    },
    close: () => Promise.resolve(),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      const reception: Reception = {
        headers: req.headers,
        rawBody,
        body: JSON.parse(rawBody) as Reception['body'],
      };
      const n = receptions.length;
      receptions.push(reception);
      const answer = receiver.respond(reception, n);
      if (answer === 'hang') return;
      res.statusCode = answer;
      res.end(answer >= 400 ? 'nope' : '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  receiver.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}

/** Sets the merchant's endpoint through the API; returns the signing secret. */
export async function setEndpoint(h: Harness, merchantKey: string, url: string): Promise<string> {
  const res = await h.http.put('/v1/webhook-endpoint').set(bearer(merchantKey)).send({ url });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.secret as string;
}

/** A charge object shaped as the API shows it (the outbox does not look inside). */
export function chargeData(
  id: string,
  status: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    id,
    object: 'charge',
    status,
    amount: '15000',
    currency: 'VND',
    amount_captured: status === 'succeeded' ? '15000' : '0',
    amount_refunded: '0',
    capture: true,
    msisdn: '+8490****567',
    carrier: 'car_test',
    funding_type: 'prepaid',
    description: 'Game credits',
    merchant_reference: null,
    denial_code: null,
    cancellation_reason: null,
    split: null,
    reserved_until: null,
    created_at: '2025-01-15T09:30:12.345Z',
    updated_at: new Date().toISOString(),
    metadata: null,
    ...extra,
  };
}

export function fakeChargeId(): string {
  return `ch_${randomBytes(13).toString('hex')}`;
}

/** Writes one event the way a charge transaction does: inside a committed transaction. */
export function emit(
  h: Harness,
  merchantId: string,
  type: EventType,
  subjectId: string,
  data: Record<string, unknown>,
): Promise<string> {
  return withTransaction(h.c.pool, (tx) => insertEvent(tx, { merchantId, type, subjectId, data }));
}

/** A new charge id and one event about it whose type is `charge.<status>`. */
export async function emitChargeEvent(
  h: Harness,
  merchantId: string,
  status: 'succeeded' | 'reserved' | 'pending_validation' | 'denied' | 'cancelled',
): Promise<{ eventId: string; chargeId: string }> {
  const chargeId = fakeChargeId();
  const eventId = await emit(
    h,
    merchantId,
    `charge.${status}`,
    chargeId,
    chargeData(chargeId, status),
  );
  return { eventId, chargeId };
}

/**
 * A dispatcher on the harness's pool limited to the given merchants (other test files share the
 * database), retrying immediately unless told otherwise.
 */
export function dispatcherFor(
  h: Harness,
  merchantIds: string[],
  options: Partial<WebhookDispatcherOptions> = {},
): WebhookDispatcher {
  return createWebhookDispatcher({
    pool: h.c.pool,
    logger: h.c.logger,
    metrics: h.c.metrics,
    sandbox: h.c.config.SANDBOX,
    timeoutMs: 2000,
    retryScheduleMs: [0, 0, 0, 0, 0],
    merchantIds,
    ...options,
  });
}
