import { Router } from 'express';
import { actorOf, requireRole } from '../../http/auth.js';
import { pageRequest, queryString } from '../../http/pagination.js';
import type {
  CarriersService,
  CreateCarrierInput,
  UpdateCarrierInput,
} from './carriers-service.js';

export function carriersRoutes(deps: { carriers: CarriersService }): Router {
  const { carriers } = deps;
  const router = Router();
  const read = requireRole('admin', 'auditor');
  const write = requireRole('admin');

  router.post('/v1/admin/carriers', write, async (req, res) => {
    res
      .status(201)
      .json(await carriers.createCarrier(actorOf(req), req.body as CreateCarrierInput));
  });
  router.get('/v1/admin/carriers', read, async (req, res) => {
    const page = await carriers.listCarriers({
      ...pageRequest(req),
      status: queryString(req, 'status'),
    });
    res.json(page);
  });
  router.get('/v1/admin/carriers/:id', read, async (req, res) => {
    res.json(await carriers.getCarrier(req.params.id as string));
  });
  router.patch('/v1/admin/carriers/:id', write, async (req, res) => {
    res.json(
      await carriers.updateCarrier(
        actorOf(req),
        req.params.id as string,
        req.body as UpdateCarrierInput,
      ),
    );
  });
  router.post('/v1/admin/carriers/:id/suspend', write, async (req, res) => {
    res.json(await carriers.setCarrierStatus(actorOf(req), req.params.id as string, 'suspended'));
  });
  router.post('/v1/admin/carriers/:id/activate', write, async (req, res) => {
    res.json(await carriers.setCarrierStatus(actorOf(req), req.params.id as string, 'active'));
  });
  return router;
}
