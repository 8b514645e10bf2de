import { parseCookie, stringifySetCookie } from 'cookie';
import type { Request, RequestHandler, Response } from 'express';
import type { Config } from '../../config.js';
import { AppError } from '../../errors.js';
import type { AuthFailureBrake } from '../../http/auth.js';
import type { ClientInfo, SessionsService } from './sessions-service.js';

/**
 * The console's session cookie (SPEC §9.2): HttpOnly, SameSite=Strict, Path=/, Secure outside
 * sandbox. Outside sandbox the name carries the `__Host-` prefix, so browsers accept it only
 * when Secure, host-only and for Path=/, and a sibling subdomain cannot plant one.
 */
export interface SessionCookie {
  name: string;
  secure: boolean;
  maxAgeSeconds: number;
}

export function sessionCookie(
  config: Pick<Config, 'SANDBOX' | 'SESSION_ABSOLUTE_TIMEOUT_SECONDS'>,
): SessionCookie {
  return {
    name: config.SANDBOX ? 'dcb_session' : '__Host-dcb_session',
    secure: !config.SANDBOX,
    maxAgeSeconds: config.SESSION_ABSOLUTE_TIMEOUT_SECONDS,
  };
}

/** Paths under /v1 that resolve the session themselves and need no API key. */
const SESSION_ROUTES = /^\/session(\/|$)/i;

export function setSessionCookie(res: Response, cookie: SessionCookie, token: string): void {
  res.append(
    'Set-Cookie',
    stringifySetCookie({
      name: cookie.name,
      value: token,
      httpOnly: true,
      sameSite: 'strict',
      secure: cookie.secure,
      path: '/',
      maxAge: cookie.maxAgeSeconds,
    }),
  );
}

export function clearSessionCookie(res: Response, cookie: SessionCookie): void {
  res.append(
    'Set-Cookie',
    stringifySetCookie({
      name: cookie.name,
      value: '',
      httpOnly: true,
      sameSite: 'strict',
      secure: cookie.secure,
      path: '/',
      maxAge: 0,
      expires: new Date(0),
    }),
  );
}

export function sessionToken(req: Request, cookie: SessionCookie): string | undefined {
  const header = req.get('cookie');
  if (header === undefined) return undefined;
  const value = parseCookie(header)[cookie.name];
  return value === undefined || value === '' ? undefined : value;
}

export function clientInfo(req: Request): ClientInfo {
  return { ip: req.ip ?? null, userAgent: req.get('user-agent') ?? null, requestId: req.requestId };
}

/** Clears the cookie when the answer says the session is over. */
export function clearOnSessionEnd(res: Response, cookie: SessionCookie, err: unknown): never {
  if (err instanceof AppError && err.code === 'session_expired') clearSessionCookie(res, cookie);
  throw err;
}

/**
 * Authenticates a request that carries a session cookie and no Authorization header as the
 * operator (mount before `authenticate`, which then lets it through). Every POST, PUT, PATCH and
 * DELETE must bring the session's CSRF token in X-CSRF-Token, checked before any route runs; a
 * request with an API key is untouched, cookie or not. The /v1/session routes resolve the
 * session themselves. An unknown cookie counts as a failed authentication of its address, as an
 * unknown key does, and only then meets the brake.
 */
export function sessionAuthentication(
  sessions: SessionsService,
  cookie: SessionCookie,
  brake: AuthFailureBrake,
): RequestHandler {
  return async (req, res, next) => {
    if (req.auth || req.get('authorization') !== undefined || SESSION_ROUTES.test(req.path)) {
      return next();
    }
    const token = sessionToken(req, cookie);
    if (token === undefined) return next();
    // The brake counts failures only (SPEC §10): a valid session is never refused by it.
    try {
      req.auth = await sessions.authenticate(
        token,
        req.method,
        req.get('x-csrf-token'),
        clientInfo(req),
      );
    } catch (err) {
      if (err instanceof AppError && err.code === 'session_expired') {
        clearSessionCookie(res, cookie);
        if (err.extra?.reason === 'unknown') await brake.recordFailure(req);
      }
      throw err;
    }
    next();
  };
}

/** Runs `handler` except on the /v1/session routes (sign-in comes before any credential). */
export function exceptSessionRoutes(handler: RequestHandler): RequestHandler {
  return (req, res, next) => (SESSION_ROUTES.test(req.path) ? next() : handler(req, res, next));
}
