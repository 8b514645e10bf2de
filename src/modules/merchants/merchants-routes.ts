import { Router } from 'express';
import { actorOf, requireRole } from '../../http/auth.js';
import { pageRequest, queryString } from '../../http/pagination.js';
import type { CreateMerchantInput, MerchantInput, MerchantsService } from './merchants-service.js';

export function merchantsRoutes(deps: { merchants: MerchantsService }): Router {
  const { merchants } = deps;
  const router = Router();
  const read = requireRole('admin', 'auditor');
  const write = requireRole('admin');

  router.post('/v1/admin/merchants', write, async (req, res) => {
    res
      .status(201)
      .json(await merchants.createMerchant(actorOf(req), req.body as CreateMerchantInput));
  });
  router.get('/v1/admin/merchants', read, async (req, res) => {
    const page = await merchants.listMerchants({
      ...pageRequest(req),
      status: queryString(req, 'status'),
    });
    res.json(page);
  });
  router.get('/v1/admin/merchants/:id', read, async (req, res) => {
    res.json(await merchants.getMerchant(req.params.id as string));
  });
  router.patch('/v1/admin/merchants/:id', write, async (req, res) => {
    res.json(
      await merchants.updateMerchant(
        actorOf(req),
        req.params.id as string,
        req.body as MerchantInput,
      ),
    );
  });
  router.post('/v1/admin/merchants/:id/suspend', write, async (req, res) => {
    res.json(await merchants.setMerchantStatus(actorOf(req), req.params.id as string, 'suspended'));
  });
  router.post('/v1/admin/merchants/:id/activate', write, async (req, res) => {
    res.json(await merchants.setMerchantStatus(actorOf(req), req.params.id as string, 'active'));
  });
  return router;
}
