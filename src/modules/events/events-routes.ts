import { Router } from 'express';
import { actorOf, authOf, requireRole } from '../../http/auth.js';
import { pageRequest, queryString } from '../../http/pagination.js';
import type { CarrierEventType } from './carrier-events-repo.js';
import type { EventsService } from './events-service.js';
import type { EventType } from './events-types.js';
import type { WebhookEndpointService } from './webhook-endpoint-service.js';

/** The merchant's events and webhook endpoint, and the carrier's events; each sees only its own. */
export function eventsRoutes(deps: {
  events: EventsService;
  webhookEndpoints: WebhookEndpointService;
}): Router {
  const { events, webhookEndpoints } = deps;
  const router = Router();
  const merchant = requireRole('merchant');

  router.put('/v1/webhook-endpoint', merchant, async (req, res) => {
    const { url } = req.body as { url: string };
    res.json(await webhookEndpoints.setEndpoint(actorOf(req), authOf(req).ownerId, url));
  });
  router.get('/v1/webhook-endpoint', merchant, async (req, res) => {
    res.json(await webhookEndpoints.getEndpoint(authOf(req).ownerId));
  });
  router.post('/v1/webhook-endpoint/rotate-secret', merchant, async (req, res) => {
    res.json(await webhookEndpoints.rotateSecret(actorOf(req), authOf(req).ownerId));
  });

  router.get('/v1/events', merchant, async (req, res) => {
    res.json(
      await events.listEvents(authOf(req).ownerId, {
        ...pageRequest(req),
        type: queryString(req, 'type') as EventType | undefined,
      }),
    );
  });
  router.get('/v1/events/:id', merchant, async (req, res) => {
    res.json(await events.getEvent(authOf(req).ownerId, req.params.id as string));
  });
  router.post('/v1/events/:id/redeliver', merchant, async (req, res) => {
    res
      .status(202)
      .json(
        await events.redeliverEvent(actorOf(req), authOf(req).ownerId, req.params.id as string),
      );
  });
  router.get('/v1/carrier/events', requireRole('carrier'), async (req, res) => {
    res.json(
      await events.listCarrierEvents(authOf(req).ownerId, {
        ...pageRequest(req),
        type: queryString(req, 'type') as CarrierEventType | undefined,
      }),
    );
  });
  return router;
}
