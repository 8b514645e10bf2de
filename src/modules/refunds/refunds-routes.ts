import { Router } from 'express';
import { actorOf, authOf, requireRole } from '../../http/auth.js';
import { idempotencyOf, requireIdempotencyKey, sendOutcome } from '../../http/idempotency.js';
import { pageRequest } from '../../http/pagination.js';
import type { RefundsService } from './refunds-service.js';

export function refundsRoutes(deps: { refunds: RefundsService }): Router {
  const { refunds } = deps;
  const router = Router();
  const merchantOnly = requireRole('merchant');

  router.post(
    '/v1/charges/:id/refunds',
    merchantOnly,
    requireIdempotencyKey(),
    async (req, res) => {
      const body = (req.body ?? {}) as { amount?: string; reason?: string };
      sendOutcome(
        res,
        await refunds.createRefund(
          actorOf(req),
          authOf(req).ownerId,
          req.params.id as string,
          body,
          idempotencyOf(req, res),
        ),
      );
    },
  );

  router.get('/v1/charges/:id/refunds', merchantOnly, async (req, res) => {
    const page = await refunds.listChargeRefunds(
      authOf(req).ownerId,
      req.params.id as string,
      pageRequest(req),
    );
    res.json(page);
  });

  router.get('/v1/refunds/:id', merchantOnly, async (req, res) => {
    res.json(await refunds.getRefund(authOf(req).ownerId, req.params.id as string));
  });
  return router;
}
