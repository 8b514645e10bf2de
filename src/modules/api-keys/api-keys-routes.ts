import { Router } from 'express';
import { actorOf, requireRole } from '../../http/auth.js';
import type { Role } from '../../http/context.js';
import { pageRequest, queryString } from '../../http/pagination.js';
import type { ApiKeysService, CreateApiKeyInput } from './api-keys-service.js';

export function apiKeysRoutes(deps: { apiKeys: ApiKeysService }): Router {
  const { apiKeys } = deps;
  const router = Router();

  router.post('/v1/admin/api-keys', requireRole('admin'), async (req, res) => {
    res.status(201).json(await apiKeys.createKey(actorOf(req), req.body as CreateApiKeyInput));
  });
  router.get('/v1/admin/api-keys', requireRole('admin', 'auditor'), async (req, res) => {
    const page = await apiKeys.listKeys({
      ...pageRequest(req),
      ownerId: queryString(req, 'owner_id'),
      role: queryString(req, 'role') as Role | undefined,
      operatorId: queryString(req, 'operator_id'),
    });
    res.json(page);
  });
  router.get('/v1/admin/api-keys/:id', requireRole('admin', 'auditor'), async (req, res) => {
    res.json(await apiKeys.getKey(req.params.id as string));
  });
  router.delete('/v1/admin/api-keys/:id', requireRole('admin'), async (req, res) => {
    res.json(await apiKeys.revokeKey(actorOf(req), req.params.id as string));
  });
  return router;
}
