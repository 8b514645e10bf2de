import express, { type Express, type RequestHandler } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import type { Container } from './container.js';
import { AppError } from './errors.js';
import { authenticate, roleGate } from './http/auth.js';
import { limitJsonDepth } from './http/body-depth.js';
import { healthRoutes } from './http/health-routes.js';
import { refuseHostileInput, refuseInvalidUtf8 } from './http/hostile-input.js';
import { errorHandler } from './http/problem.js';
import { requestId } from './http/request-id.js';
import { requestLog } from './http/request-log.js';
import { apiKeysRoutes } from './modules/api-keys/api-keys-routes.js';
import { auditRoutes } from './modules/audit/audit-routes.js';
import { chargesRoutes } from './modules/charges/charges-routes.js';
import { eventsRoutes } from './modules/events/events-routes.js';
import { ledgerRoutes } from './modules/ledger/ledger-routes.js';
import { refundsRoutes } from './modules/refunds/refunds-routes.js';
import { reconciliationsRoutes } from './modules/reconciliations/reconciliations-routes.js';
import { settlementsRoutes } from './modules/settlements/settlements-routes.js';
import { smsRoutes } from './modules/sms/sms-routes.js';
import { adjustmentsRoutes } from './modules/adjustments/adjustments-routes.js';
import { searchRoutes } from './modules/search/search-routes.js';
import { subscribersRoutes } from './modules/subscribers/subscribers-routes.js';
import { carriersRoutes } from './modules/carriers/carriers-routes.js';
import { merchantsRoutes } from './modules/merchants/merchants-routes.js';
import { portsRoutes } from './modules/ports/ports-routes.js';
import { operatorsRoutes } from './modules/operators/operators-routes.js';
import { perKeyRateLimit } from './modules/rate-limit/rate-limit-http.js';
import {
  exceptSessionRoutes,
  sessionAuthentication,
  sessionCookie,
} from './modules/sessions/sessions-http.js';
import { sessionsRoutes } from './modules/sessions/sessions-routes.js';
import { OPENAPI_PATH } from './paths.js';

export const JSON_BODY_LIMIT = '64kb';
/** Deeper than any body of the contract (metadata and limits are two or three levels). */
export const MAX_JSON_DEPTH = 16;

/** Builds the HTTP app from its dependencies. Performs no I/O until a request arrives. */
export function buildApp(c: Container, options: { validateResponses?: boolean } = {}): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', c.config.TRUST_PROXY);
  app.set('etag', false);

  app.use(requestId());
  app.use(requestMetrics(c));
  app.use(requestLog(c.logger));

  app.use(
    express.json({
      limit: JSON_BODY_LIMIT,
      type: ['application/json', 'application/*+json'],
      verify: refuseInvalidUtf8,
    }),
  );
  app.use(limitJsonDepth(MAX_JSON_DEPTH));
  // SPEC §10: before anything looks a key up, stores or validates what the client sent.
  app.use(refuseHostileInput());
  app.use(healthRoutes(c));
  // A console session cookie (without an Authorization header) authenticates first; the sign-in
  // routes need no credential at all.
  app.use('/v1', sessionAuthentication(c.sessions, sessionCookie(c.config), c.authBrake));
  app.use('/v1', exceptSessionRoutes(authenticate(c.apiKeys, c.authBrake)));
  app.use('/v1', exceptSessionRoutes(perKeyRateLimit(c.rateLimits)));
  app.use('/v1', roleGate());
  app.use(
    OpenApiValidator.middleware({
      apiSpec: OPENAPI_PATH,
      validateRequests: { allowUnknownQueryParameters: false, removeAdditional: false },
      validateResponses: options.validateResponses ? { removeAdditional: false } : false,
      validateSecurity: false,
      ignorePaths: /^\/(healthz|readyz)$/,
    }),
  );

  // Routers are tried in order and their paths do not overlap: the charge path goes first.
  app.use(chargesRoutes(c));
  app.use(refundsRoutes(c));
  app.use(carriersRoutes(c));
  app.use(merchantsRoutes(c));
  app.use(apiKeysRoutes(c));
  app.use(operatorsRoutes(c));
  app.use(auditRoutes(c));
  app.use(subscribersRoutes(c));
  app.use(eventsRoutes(c));
  app.use(ledgerRoutes(c));
  app.use(settlementsRoutes(c));
  app.use(reconciliationsRoutes(c));
  app.use(smsRoutes(c));
  app.use(searchRoutes(c));
  app.use(adjustmentsRoutes(c));
  app.use(portsRoutes(c));
  app.use(sessionsRoutes(c));

  app.use(() => {
    throw new AppError('route_not_found', 'No such route.');
  });
  app.use(errorHandler(c.logger));
  return app;
}

function requestMetrics(c: Container): RequestHandler {
  return (req, res, next) => {
    const end = c.metrics.httpDuration.startTimer();
    res.on('finish', () => {
      const route = (req.route as { path?: string } | undefined)?.path ?? 'unmatched';
      end({ method: req.method, route, status: String(res.statusCode) });
    });
    next();
  };
}
