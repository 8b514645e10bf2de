import { Router } from 'express';
import { requireRole } from '../../http/auth.js';
import { pageRequest, queryString } from '../../http/pagination.js';
import type { ChargeStatus } from '../charges/charges-types.js';
import type { SearchService } from './search-service.js';

export function searchRoutes(deps: { search: SearchService }): Router {
  const { search } = deps;
  const router = Router();

  router.get('/v1/admin/charges', requireRole('admin', 'auditor'), async (req, res) => {
    const page = await search.searchCharges(
      {
        merchantId: queryString(req, 'merchant_id'),
        carrierId: queryString(req, 'carrier_id'),
        msisdn: queryString(req, 'msisdn'),
        status: queryString(req, 'status') as ChargeStatus | undefined,
        currency: queryString(req, 'currency'),
        amountGte: queryString(req, 'amount_gte'),
        amountLte: queryString(req, 'amount_lte'),
        createdGte: queryString(req, 'created_gte'),
        createdLt: queryString(req, 'created_lt'),
      },
      pageRequest(req),
    );
    res.json(page);
  });
  return router;
}
