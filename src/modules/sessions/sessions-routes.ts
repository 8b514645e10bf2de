import { Router, type Request, type Response } from 'express';
import type { Config } from '../../config.js';
import { AppError } from '../../errors.js';
import {
  clearOnSessionEnd,
  clearSessionCookie,
  clientInfo,
  sessionCookie,
  sessionToken,
  setSessionCookie,
  type SessionCookie,
} from './sessions-http.js';
import type { SessionsService } from './sessions-service.js';

/** Console sign-in (SPEC §9.2): set-up link, password, second factor, who am I, sign-out. */
export function sessionsRoutes(deps: { sessions: SessionsService; config: Config }): Router {
  const { sessions } = deps;
  const cookie = sessionCookie(deps.config);
  const router = Router();

  // Answers here carry tokens or secrets: never stored by a cache.
  router.use('/v1/session', (_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  });

  router.post('/v1/session/setup', async (req, res) => {
    const body = req.body as { token: string; password: string };
    res.json({ object: 'operator', ...(await sessions.setUpPassword(body, clientInfo(req))) });
  });

  router.post('/v1/session', async (req, res) => {
    const body = req.body as { email: string; password: string };
    const { view, token } = await sessions.signIn(body, clientInfo(req));
    if (token !== undefined) setSessionCookie(res, cookie, token);
    res.status(201).json(view);
  });

  router.get('/v1/session', async (req, res) => {
    const token = requireToken(req, cookie);
    res.json(
      await sessions
        .current(token, clientInfo(req))
        .catch((err: unknown) => clearOnSessionEnd(res, cookie, err)),
    );
  });

  router.post('/v1/session/second-factor', async (req, res) => {
    const token = requireToken(req, cookie);
    const { code } = req.body as { code: string };
    const outcome = await sessions
      .secondFactor(token, csrf(req), code, clientInfo(req))
      .catch((err: unknown) => clearOnSessionEnd(res, cookie, err));
    if (outcome.token !== undefined) setSessionCookie(res, cookie, outcome.token);
    res.json(outcome.view);
  });

  router.post('/v1/session/totp/enrol', async (req, res) => {
    const token = requireToken(req, cookie);
    res.json(
      await sessions
        .enrolTotp(token, csrf(req), clientInfo(req))
        .catch((err: unknown) => clearOnSessionEnd(res, cookie, err)),
    );
  });

  router.delete('/v1/session', async (req: Request, res: Response) => {
    const token = sessionToken(req, cookie);
    if (token !== undefined) await sessions.signOut(token, csrf(req), clientInfo(req));
    clearSessionCookie(res, cookie);
    res.status(204).end();
  });

  return router;
}

const csrf = (req: Request) => req.get('x-csrf-token');

function requireToken(req: Request, cookie: SessionCookie): string {
  const token = sessionToken(req, cookie);
  if (token === undefined) {
    throw new AppError('unauthenticated', 'No session: sign in with POST /v1/session.');
  }
  return token;
}
