import type { Request, RequestHandler } from 'express';
import { AppError } from '../errors.js';
import type { Actor, AuthContext, Role } from './context.js';

/** Brakes brute force: consulted before a presented key is looked up, told of each failure. */
export interface AuthFailureBrake {
  /** Throws a rate_limited AppError when this client has failed too often. */
  check(req: Request): Promise<void>;
  recordFailure(req: Request): Promise<void>;
}

export const NO_BRAKE: AuthFailureBrake = {
  check: () => Promise.resolve(),
  recordFailure: () => Promise.resolve(),
};

export interface Authenticator {
  authenticate(presented: string): Promise<AuthContext | undefined>;
}

const BEARER = /^Bearer ([\x21-\x7e]{1,200})$/;

/** Resolves `Authorization: Bearer <key>` into `req.auth`, or answers 401. */
export function authenticate(
  authenticator: Authenticator,
  brake: AuthFailureBrake,
): RequestHandler {
  return async (req, _res, next) => {
    await brake.check(req);
    const header = req.get('authorization');
    const match = header === undefined ? null : BEARER.exec(header);
    const auth = match?.[1] === undefined ? undefined : await authenticator.authenticate(match[1]);
    if (!auth) {
      await brake.recordFailure(req);
      throw new AppError(
        'unauthenticated',
        header === undefined
          ? 'Send an API key as "Authorization: Bearer <key>".'
          : 'The API key is unknown or revoked.',
        { headers: { 'WWW-Authenticate': 'Bearer' } },
      );
    }
    req.auth = auth;
    next();
  };
}

/** Lets only the given roles through; everyone else gets 403. */
export function requireRole(...roles: Role[]): RequestHandler {
  return (req, _res, next) => {
    const role = req.auth?.role;
    if (role === undefined || !roles.includes(role)) {
      throw new AppError('forbidden', `This route is for ${roles.join(' or ')} keys.`);
    }
    next();
  };
}

export function authOf(req: Request): AuthContext {
  if (!req.auth) throw new AppError('unauthenticated', 'Authentication required.');
  return req.auth;
}

export function actorOf(req: Request): Actor {
  const auth = authOf(req);
  return {
    type: auth.role,
    id: auth.ownerId,
    apiKeyId: auth.keyId,
    ip: req.ip ?? null,
    requestId: req.requestId,
  };
}
