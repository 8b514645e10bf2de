import type { Request, RequestHandler } from 'express';
import { AppError } from '../errors.js';
import type { Actor, AuthContext, Role } from './context.js';

/**
 * Brakes brute force of keys (SPEC §10): told of each failed authentication only, so a valid key
 * is never refused because others failed from the same address.
 */
export interface AuthFailureBrake {
  /** Counts one failure; throws a rate_limited AppError when this client has failed too often. */
  recordFailure(req: Request): Promise<void>;
}

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
    // Already resolved by an earlier authenticator (a console session).
    if (req.auth) return next();
    // The key is looked up first and a valid one goes through whatever the brake says: the brake
    // answers failures only (429 once engaged, instead of 401). A lookup is one indexed probe by
    // SHA-256 (a malformed key costs none), so an engaged brake still slows guessing to its rate.
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
    // A console session is no API key: its keyId only names its rate-limit bucket.
    apiKeyId: auth.sessionId === undefined ? auth.keyId : null,
    operatorId: auth.operatorId,
    ip: req.ip ?? null,
    requestId: req.requestId,
  };
}

const MERCHANT_AREAS = ['charges', 'refunds', 'balance', 'events', 'webhook-endpoint'];

/** Which roles may call anything under a /v1 path, by its first segment; undefined: no coarse rule. */
export function rolesForArea(method: string, path: string): Role[] | undefined {
  const area = /^\/v1\/([^/?]+)/.exec(path)?.[1];
  if (area === undefined) return undefined;
  if (area === 'admin')
    return method === 'GET' || method === 'HEAD' ? ['admin', 'auditor'] : ['admin'];
  if (area === 'carrier') return ['carrier'];
  if (MERCHANT_AREAS.includes(area)) return ['merchant'];
  return undefined;
}

/**
 * Refuses a key whose role has no business in the path's area before the request is validated,
 * so a wrong-role caller learns nothing about a route's body schema (403, not 400). Routes keep
 * their own exact role checks.
 */
export function roleGate(): RequestHandler {
  return (req, _res, next) => {
    const roles = rolesForArea(req.method, req.originalUrl);
    if (roles !== undefined && !roles.includes(authOf(req).role)) {
      throw new AppError('forbidden', `This route is for ${roles.join(' or ')} keys.`);
    }
    next();
  };
}
