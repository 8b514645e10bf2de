import { Router } from 'express';
import { actorOf, requireRole } from '../../http/auth.js';
import type { Role } from '../../http/context.js';
import { pageRequest, queryString } from '../../http/pagination.js';
import type { OperatorsService } from './operators-service.js';
import type { CreateOperatorInput, OperatorStatus } from './operators-types.js';

export function operatorsRoutes(deps: { operators: OperatorsService }): Router {
  const { operators } = deps;
  const router = Router();
  const admin = requireRole('admin');
  const read = requireRole('admin', 'auditor');

  router.post('/v1/admin/operators', admin, async (req, res) => {
    res
      .status(201)
      .json(await operators.createOperator(actorOf(req), req.body as CreateOperatorInput));
  });
  router.get('/v1/admin/operators', read, async (req, res) => {
    res.json(
      await operators.listOperators({
        ...pageRequest(req),
        role: queryString(req, 'role') as Role | undefined,
        status: queryString(req, 'status') as OperatorStatus | undefined,
        ownerId: queryString(req, 'owner_id'),
      }),
    );
  });
  router.get('/v1/admin/operators/:id', read, async (req, res) => {
    res.json(await operators.getOperator(req.params.id as string));
  });
  router.post('/v1/admin/operators/:id/suspend', admin, async (req, res) => {
    res.json(await operators.setOperatorStatus(actorOf(req), req.params.id as string, 'suspended'));
  });
  router.post('/v1/admin/operators/:id/activate', admin, async (req, res) => {
    res.json(await operators.setOperatorStatus(actorOf(req), req.params.id as string, 'active'));
  });
  return router;
}
