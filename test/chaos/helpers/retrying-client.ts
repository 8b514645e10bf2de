import type http from 'node:http';
import { call, ConnectionLost, sleep, type Answer } from './http-client.js';

/** A money-moving request, always sent with the same key and body. */
export interface KeyedRequest {
  key: string;
  method: 'POST';
  path: string;
  body: Record<string, unknown>;
  apiKey: string;
}

/** What a client saw for one key: every attempt, and the answer it finally kept. */
export interface KeyedRecord {
  request: KeyedRequest;
  attempts: number;
  /** Attempts whose connection failed (refused, reset mid-request, …). */
  lost: number;
  /** Of those, attempts whose request had been sent in full: the outcome was unknown. */
  lostAfterSend: number;
  /** 503 or 409 idempotency_request_in_progress: "try again", not an answer. */
  transient: number;
  /** Every answer that was not transient, in order; the first is the original. */
  answers: { status: number; text: string; replayed: boolean }[];
}

export interface Tally {
  requests: number;
  attempts: number;
  lost: number;
  lostAfterSend: number;
  transient: number;
  retriedRequests: number;
  answered: number;
}

export function tally(records: KeyedRecord[]): Tally {
  return {
    requests: records.length,
    attempts: records.reduce((n, r) => n + r.attempts, 0),
    lost: records.reduce((n, r) => n + r.lost, 0),
    lostAfterSend: records.reduce((n, r) => n + r.lostAfterSend, 0),
    transient: records.reduce((n, r) => n + r.transient, 0),
    retriedRequests: records.filter((r) => r.attempts > 1).length,
    answered: records.filter((r) => r.answers.length > 0).length,
  };
}

function isTransient(a: Answer): boolean {
  if (a.status === 503) return true;
  return a.status === 409 && a.text.includes('"idempotency_request_in_progress"');
}

/**
 * Sends `request` until it gets an answer: a lost connection, a 503 or a 409 in-progress is
 * retried with the same key and body (what a well-behaved merchant does). Gives up after
 * `deadlineMs`, leaving `answers` empty.
 */
export async function sendUntilAnswered(
  baseUrl: string,
  request: KeyedRequest,
  options: { agent?: http.Agent; deadlineMs?: number; record?: KeyedRecord } = {},
): Promise<KeyedRecord> {
  const record: KeyedRecord = options.record ?? {
    request,
    attempts: 0,
    lost: 0,
    lostAfterSend: 0,
    transient: 0,
    answers: [],
  };
  const deadline = Date.now() + (options.deadlineMs ?? 60_000);
  while (Date.now() < deadline) {
    record.attempts += 1;
    try {
      const answer = await call(baseUrl, request.method, request.path, {
        headers: { authorization: `Bearer ${request.apiKey}`, 'idempotency-key': request.key },
        body: request.body,
        agent: options.agent,
        timeoutMs: 20_000,
      });
      if (isTransient(answer)) {
        record.transient += 1;
        await sleep(100);
        continue;
      }
      record.answers.push({
        status: answer.status,
        text: answer.text,
        replayed: answer.headers['idempotent-replayed'] === 'true',
      });
      return record;
    } catch (err) {
      if (!(err instanceof ConnectionLost)) throw err;
      record.lost += 1;
      if (err.sent) record.lostAfterSend += 1;
      await sleep(100);
    }
  }
  return record;
}
