import type { Request, RequestHandler, Response } from 'express';
import {
  checkIdempotencyKey,
  requestFingerprint,
  type IdempotentRequest,
  type StoredOutcome,
} from '../modules/idempotency/idempotency-service.js';
import { authOf } from './auth.js';

/** Requires a valid Idempotency-Key on a money-moving route; runs after authentication and validation. */
export function requireIdempotencyKey(): RequestHandler {
  return (req, res, next) => {
    const key = checkIdempotencyKey(req.get('idempotency-key'));
    const path = req.originalUrl.split('?')[0] ?? req.path;
    const idem: IdempotentRequest = {
      ownerId: authOf(req).ownerId,
      key,
      fingerprint: requestFingerprint(req.method, path, req.body),
      method: req.method,
      path,
      requestId: req.requestId,
    };
    res.locals.idempotency = idem;
    next();
  };
}

export function idempotencyOf(req: Request, res: Response): IdempotentRequest {
  const idem = res.locals.idempotency as IdempotentRequest | undefined;
  if (!idem) throw new Error(`requireIdempotencyKey() is missing on ${req.method} ${req.path}`);
  return idem;
}

/** Sends a stored outcome byte for byte; replays are marked. */
export function sendOutcome(res: Response, outcome: StoredOutcome): void {
  if (outcome.replayed) res.setHeader('Idempotent-Replayed', 'true');
  res.status(outcome.status).type(outcome.contentType).send(outcome.body);
}
