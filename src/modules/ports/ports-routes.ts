import { Router } from 'express';
import { actorOf, authOf, requireRole } from '../../http/auth.js';
import { idempotencyOf, requireIdempotencyKey, sendOutcome } from '../../http/idempotency.js';
import { pageRequest, queryString } from '../../http/pagination.js';
import type { PortInInput, PortsService } from './ports-service.js';
import type { PortStatus } from './ports-types.js';

/** Number porting (SPEC §9.1): the gaining carrier asks, the losing one answers, an admin closes. */
export function portsRoutes(deps: { ports: PortsService }): Router {
  const { ports } = deps;
  const router = Router();
  const carrier = requireRole('carrier');

  router.post('/v1/carrier/port-ins', carrier, requireIdempotencyKey(), async (req, res) => {
    sendOutcome(
      res,
      await ports.requestPortIn(
        actorOf(req),
        authOf(req).ownerId,
        req.body as PortInInput,
        idempotencyOf(req, res),
      ),
    );
  });

  for (const side of ['gaining', 'losing'] as const) {
    const path = side === 'gaining' ? '/v1/carrier/port-ins' : '/v1/carrier/port-outs';
    router.get(path, carrier, async (req, res) => {
      res.json(
        await ports.listPorts(
          { carrierId: authOf(req).ownerId, side },
          { ...pageRequest(req), status: queryString(req, 'status') as PortStatus | undefined },
        ),
      );
    });
  }

  for (const action of ['accept', 'reject'] as const) {
    router.post(
      `/v1/carrier/port-outs/:id/${action}`,
      carrier,
      requireIdempotencyKey(),
      async (req, res) => {
        const answer =
          action === 'accept'
            ? { accept: true as const }
            : { accept: false as const, reason: (req.body as { reason: string }).reason };
        sendOutcome(
          res,
          await ports.answerPortOut(
            actorOf(req),
            authOf(req).ownerId,
            req.params.id as string,
            answer,
            idempotencyOf(req, res),
          ),
        );
      },
    );
  }

  router.get('/v1/admin/ports', requireRole('admin', 'auditor'), async (req, res) => {
    res.json(
      await ports.listPorts('admin', {
        ...pageRequest(req),
        status: queryString(req, 'status') as PortStatus | undefined,
        msisdn: queryString(req, 'msisdn'),
      }),
    );
  });
  for (const action of ['complete', 'cancel'] as const) {
    router.post(
      `/v1/admin/ports/:id/${action}`,
      requireRole('admin'),
      requireIdempotencyKey(),
      async (req, res) => {
        sendOutcome(
          res,
          await ports.closePort(
            actorOf(req),
            req.params.id as string,
            action,
            idempotencyOf(req, res),
          ),
        );
      },
    );
  }
  return router;
}
