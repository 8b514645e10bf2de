import { Router } from 'express';
import { requireRole } from '../../http/auth.js';
import { pageRequest, queryString } from '../../http/pagination.js';
import type { AuditService } from './audit-service.js';

export function auditRoutes(deps: { audit: AuditService }): Router {
  const { audit } = deps;
  const router = Router();
  const read = requireRole('admin', 'auditor');

  router.get('/v1/admin/audit-events', read, async (req, res) => {
    const page = await audit.listEvents(
      {
        actorId: queryString(req, 'actor_id'),
        actorOperator: queryString(req, 'actor_operator'),
        action: queryString(req, 'action'),
        objectType: queryString(req, 'object_type'),
        objectId: queryString(req, 'object_id'),
        createdGte: queryString(req, 'created_gte'),
        createdLt: queryString(req, 'created_lt'),
      },
      pageRequest(req),
    );
    res.json(page);
  });
  router.get('/v1/admin/audit-events/verify', read, async (_req, res) => {
    res.json(await audit.verifyChain());
  });
  return router;
}
