import { Router } from 'express';
import { actorOf, authOf, requireRole } from '../../http/auth.js';
import { idempotencyOf, requireIdempotencyKey, sendOutcome } from '../../http/idempotency.js';
import { pageRequest, queryString } from '../../http/pagination.js';
import { enforceChargeVelocity } from '../rate-limit/rate-limit-http.js';
import type { RateLimitService } from '../rate-limit/rate-limit-service.js';
import type { ChargesService } from './charges-service.js';
import type { ChargeStatus, CreateChargeInput } from './charges-types.js';

export function chargesRoutes(deps: {
  charges: ChargesService;
  rateLimits: RateLimitService;
}): Router {
  const { charges, rateLimits } = deps;
  const router = Router();
  const merchantOnly = requireRole('merchant');

  router.post('/v1/charges', merchantOnly, requireIdempotencyKey(), async (req, res) => {
    const input = req.body as CreateChargeInput;
    const idem = idempotencyOf(req, res);
    // The subscriber's velocity counts attempts, once per key, never replays of finished ones.
    const outcome = await charges.createCharge(actorOf(req), authOf(req).ownerId, input, idem, {
      beforeExecute: () => enforceChargeVelocity(rateLimits, res, input.msisdn, idem),
    });
    sendOutcome(res, outcome);
  });

  router.post(
    '/v1/charges/:id/confirm',
    merchantOnly,
    requireIdempotencyKey(),
    async (req, res) => {
      sendOutcome(
        res,
        await charges.confirmCharge(
          actorOf(req),
          authOf(req).ownerId,
          req.params.id as string,
          req.body as { code: string },
          idempotencyOf(req, res),
        ),
      );
    },
  );

  router.post(
    '/v1/charges/:id/capture',
    merchantOnly,
    requireIdempotencyKey(),
    async (req, res) => {
      const body = (req.body ?? {}) as { amount?: string };
      sendOutcome(
        res,
        await charges.captureCharge(
          actorOf(req),
          authOf(req).ownerId,
          req.params.id as string,
          body,
          idempotencyOf(req, res),
        ),
      );
    },
  );

  router.post('/v1/charges/:id/cancel', merchantOnly, requireIdempotencyKey(), async (req, res) => {
    sendOutcome(
      res,
      await charges.cancelCharge(
        actorOf(req),
        authOf(req).ownerId,
        req.params.id as string,
        idempotencyOf(req, res),
      ),
    );
  });

  router.get('/v1/charges/:id', merchantOnly, async (req, res) => {
    res.json(await charges.getCharge(authOf(req).ownerId, req.params.id as string));
  });

  router.get('/v1/charges', merchantOnly, async (req, res) => {
    const page = await charges.listCharges(
      {
        merchantId: authOf(req).ownerId,
        status: queryString(req, 'status') as ChargeStatus | undefined,
        msisdn: queryString(req, 'msisdn'),
        createdGte: queryString(req, 'created_gte'),
        createdLt: queryString(req, 'created_lt'),
      },
      pageRequest(req),
    );
    res.json(page);
  });
  return router;
}
