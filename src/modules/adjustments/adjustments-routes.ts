import { Router } from 'express';
import { actorOf, requireRole } from '../../http/auth.js';
import { idempotencyOf, requireIdempotencyKey, sendOutcome } from '../../http/idempotency.js';
import { pageRequest, queryString } from '../../http/pagination.js';
import type { AdjustmentsService } from './adjustments-service.js';
import type { AdjustmentStatus, CreateAdjustmentInput } from './adjustments-types.js';

export function adjustmentsRoutes(deps: { adjustments: AdjustmentsService }): Router {
  const { adjustments } = deps;
  const router = Router();
  const admin = requireRole('admin');
  const read = requireRole('admin', 'auditor');

  router.post('/v1/admin/adjustments', admin, requireIdempotencyKey(), async (req, res) => {
    sendOutcome(
      res,
      await adjustments.createAdjustment(
        actorOf(req),
        req.body as CreateAdjustmentInput,
        idempotencyOf(req, res),
      ),
    );
  });

  router.post(
    '/v1/admin/adjustments/:id/approve',
    admin,
    requireIdempotencyKey(),
    async (req, res) => {
      sendOutcome(
        res,
        await adjustments.approveAdjustment(
          actorOf(req),
          req.params.id as string,
          idempotencyOf(req, res),
        ),
      );
    },
  );

  router.post(
    '/v1/admin/adjustments/:id/reject',
    admin,
    requireIdempotencyKey(),
    async (req, res) => {
      const body = (req.body ?? {}) as { reason?: string };
      sendOutcome(
        res,
        await adjustments.rejectAdjustment(
          actorOf(req),
          req.params.id as string,
          body,
          idempotencyOf(req, res),
        ),
      );
    },
  );

  router.get('/v1/admin/adjustments', read, async (req, res) => {
    const page = await adjustments.listAdjustments({
      ...pageRequest(req),
      status: queryString(req, 'status') as AdjustmentStatus | undefined,
    });
    res.json(page);
  });

  router.get('/v1/admin/adjustments/:id', read, async (req, res) => {
    res.json(await adjustments.getAdjustment(req.params.id as string));
  });
  return router;
}
