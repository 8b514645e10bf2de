import { Router } from 'express';
import { actorOf, authOf, requireRole } from '../../http/auth.js';
import { idempotencyOf, requireIdempotencyKey, sendOutcome } from '../../http/idempotency.js';
import type { SubscriberInput, SubscribersService, TopupInput } from './subscribers-service.js';

export function subscribersRoutes(deps: { subscribers: SubscribersService }): Router {
  const { subscribers } = deps;
  const router = Router();
  const carrierOnly = requireRole('carrier');

  router.put('/v1/carrier/subscribers/:msisdn', carrierOnly, async (req, res) => {
    const { created, subscriber } = await subscribers.putSubscriber(
      actorOf(req),
      authOf(req).ownerId,
      req.params.msisdn as string,
      req.body as SubscriberInput,
    );
    res.status(created ? 201 : 200).json(subscriber);
  });

  router.get('/v1/carrier/subscribers/:msisdn', carrierOnly, async (req, res) => {
    res.json(await subscribers.getSubscriber(authOf(req).ownerId, req.params.msisdn as string));
  });

  router.post(
    '/v1/carrier/subscribers/:msisdn/topups',
    carrierOnly,
    requireIdempotencyKey(),
    async (req, res) => {
      const outcome = await subscribers.topup(
        actorOf(req),
        authOf(req).ownerId,
        req.params.msisdn as string,
        req.body as TopupInput,
        idempotencyOf(req, res),
      );
      sendOutcome(res, outcome);
    },
  );
  return router;
}
