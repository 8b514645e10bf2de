import { expect } from 'vitest';
import type { Worker } from '../../src/workers/workers.js';
import { bearer, randomSuffix, type Harness } from './harness.js';

export function smsWorker(h: Harness): Worker {
  const worker = h.c.workers.find((w) => w.name === 'sms-dispatcher');
  if (!worker) throw new Error('the container has no sms-dispatcher worker');
  return worker;
}

/** The 6-digit code in an SMS text. */
export function codeIn(text: string): string {
  const match = /code: (\d{6})\b/.exec(text);
  if (!match?.[1]) throw new Error('no one-time code in the message');
  return match[1];
}

/**
 * Runs the SMS worker, then reads the newest message of `msisdn` from the sandbox SMS inbox (as
 * a developer would: a merchant sees the codes of its own charges) and returns its code.
 */
export async function sandboxCode(h: Harness, key: string, msisdn: string): Promise<string> {
  await smsWorker(h).runOnce();
  const res = await h.http
    .get(`/v1/sandbox/sms?msisdn=${encodeURIComponent(msisdn)}`)
    .set(bearer(key));
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  const newest = res.body.data[0] as { message: string } | undefined;
  if (!newest) throw new Error('the sandbox inbox is empty');
  return codeIn(newest.message);
}

export function confirm(
  h: Harness,
  merchantKey: string,
  chargeId: string,
  code: string,
  key = `cf-${randomSuffix()}`,
) {
  return h.http
    .post(`/v1/charges/${chargeId}/confirm`)
    .set(bearer(merchantKey))
    .set('Idempotency-Key', key)
    .send({ code });
}

/** A code other than `code` (the next one, wrapping around). */
export function wrongCode(code: string): string {
  return String((Number(code) + 1) % 1_000_000).padStart(6, '0');
}

/** True when `code` appears in any captured log line as a number of its own. */
export function logsMention(h: Harness, code: string): boolean {
  const pattern = new RegExp(`(?<![0-9])${code}(?![0-9])`);
  return h.logs.some((line) => pattern.test(line));
}
