import { createHash } from 'node:crypto';
import type { Pool, PoolClient } from '../../db/pool.js';
import { pgCode } from '../../db/errors.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError, isAppError } from '../../errors.js';
import { problemBody } from '../../http/problem.js';
import type { Worker } from '../../workers/workers.js';
import * as repo from './idempotency-repo.js';

/** What a money-moving request is, for exactly-once execution. */
export interface IdempotentRequest {
  ownerId: string;
  key: string;
  fingerprint: string;
  method: string;
  path: string;
  requestId: string;
}

/** A business outcome to answer and store: success, a recorded denial, a state conflict. */
export interface Outcome {
  status: number;
  body: unknown;
  contentType?: 'application/json' | 'application/problem+json';
}

export interface StoredOutcome {
  status: number;
  contentType: string;
  /** Serialized once; replays send exactly these bytes. */
  body: string;
  replayed: boolean;
}

/** Thrown errors that are business outcomes too: stored and replayed rather than leaving the key free. */
function isStorable(err: AppError): boolean {
  if (err.code === 'idempotency_request_in_progress' || err.code === 'idempotency_key_reused')
    return false;
  return err.status === 402 || err.status === 409 || err.status === 422;
}

const KEY_SHAPE = /^[\x20-\x7e]{1,255}$/;

/** Validates an Idempotency-Key header value (SPEC §3.1). */
export function checkIdempotencyKey(value: string | undefined): string {
  if (value === undefined) {
    throw new AppError(
      'idempotency_key_missing',
      'This request moves money: send an Idempotency-Key header.',
      {
        param: 'Idempotency-Key',
      },
    );
  }
  if (!KEY_SHAPE.test(value) || value.trim().length === 0) {
    throw new AppError(
      'idempotency_key_invalid',
      'Idempotency-Key must be 1–255 printable ASCII characters.',
      {
        param: 'Idempotency-Key',
      },
    );
  }
  return value;
}

const DECIMAL = /^[0-9]+(\.[0-9]+)?$/;

function normaliseAmount(value: string): string {
  if (!DECIMAL.test(value)) return value;
  let [int = '0', frac = ''] = value.split('.');
  int = int.replace(/^0+(?=\d)/, '');
  frac = frac.replace(/0+$/, '');
  return frac ? `${int}.${frac}` : int;
}

/** JSON with sorted keys and amounts normalised ("12.50" and "12.5" are the same request). */
export function canonicalJson(value: unknown, key?: string): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v, k)}`).join(',')}}`;
  }
  if (typeof value === 'string' && (key === 'amount' || key?.endsWith('_amount'))) {
    return JSON.stringify(normaliseAmount(value));
  }
  return JSON.stringify(value ?? null);
}

export function requestFingerprint(method: string, path: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method}\n${path}\n${canonicalJson(body ?? {})}`)
    .digest('hex');
}

export interface IdempotencyService {
  /**
   * Runs `execute` at most once per (owner, key): its writes and the stored outcome commit together.
   * A finished duplicate replays the stored bytes; a concurrent one gets 409 in progress; the same key
   * with a different request gets 422 and nothing runs.
   */
  run(
    req: IdempotentRequest,
    execute: (tx: PoolClient) => Promise<Outcome>,
  ): Promise<StoredOutcome>;
  reaper(): Worker;
}

/** The answer to a request whose key already has a stored outcome: a replay, or 422 when it differs. */
export function replayOf(req: IdempotentRequest, stored: repo.StoredResponse): StoredOutcome {
  if (stored.fingerprint !== req.fingerprint) {
    throw new AppError(
      'idempotency_key_reused',
      'This Idempotency-Key was used with a different request.',
      {
        param: 'Idempotency-Key',
      },
    );
  }
  return {
    status: stored.response_status,
    contentType: stored.content_type,
    body: stored.response_body,
    replayed: true,
  };
}

/** The 409 for a request whose key another request is executing right now. */
export function inProgressError(): AppError {
  return new AppError(
    'idempotency_request_in_progress',
    'A request with this Idempotency-Key is still running.',
    {
      headers: { 'Retry-After': '1' },
    },
  );
}

/** An outcome as it is stored and answered: the body serialized once. */
export function storedForm(outcome: Outcome): Omit<StoredOutcome, 'replayed'> {
  return {
    status: outcome.status,
    contentType: outcome.contentType ?? 'application/json',
    body: JSON.stringify(outcome.body),
  };
}

export function createIdempotencyService(deps: {
  pool: Pool;
  retentionHours: number;
}): IdempotencyService {
  const { pool, retentionHours } = deps;

  async function attempt(
    req: IdempotentRequest,
    execute: (tx: PoolClient) => Promise<Outcome>,
  ): Promise<StoredOutcome> {
    return withTransaction(pool, async (tx) => {
      const { locked, stored } = await repo.lockAndFind(tx, req.ownerId, req.key);
      if (stored) return replayOf(req, stored);
      if (!locked) throw inProgressError();
      await tx.query('SAVEPOINT idempotent_work');
      let outcome: Outcome;
      try {
        outcome = await execute(tx);
      } catch (err) {
        if (!isAppError(err) || !isStorable(err)) throw err;
        await tx.query('ROLLBACK TO SAVEPOINT idempotent_work');
        outcome = {
          status: err.status,
          body: problemBody(err, req.requestId),
          contentType: 'application/problem+json',
        };
      }
      const answer = storedForm(outcome);
      await repo.insertOutcome(tx, { ...req, ...answer });
      return { ...answer, replayed: false };
    });
  }

  return {
    async run(req, execute) {
      try {
        return await attempt(req, execute);
      } catch (err) {
        // A duplicate committed between our read and our insert: answer with what it stored.
        if (pgCode(err) === '23505') return attempt(req, execute);
        throw err;
      }
    },

    reaper: () => ({
      name: 'idempotency-reaper',
      runOnce: () => repo.deleteExpiredKeys(pool, retentionHours, 1000),
    }),
  };
}
