import { Router, type Request, type Response } from 'express';
import { AppError } from '../../errors.js';
import { actorOf, authOf, requireRole } from '../../http/auth.js';
import { pageRequest, queryString } from '../../http/pagination.js';
import type { SettlementsService } from './settlements-service.js';
import { statementCsv, type SettlementView, type StatementStatus } from './settlements-types.js';

/** JSON by default; CSV (one line per merchant plus a TOTAL line) for `Accept: text/csv`. */
function sendStatement(req: Request, res: Response, view: SettlementView): void {
  const type = req.accepts(['application/json', 'text/csv']);
  if (type === false) {
    throw new AppError('not_acceptable', 'Ask for application/json or text/csv.');
  }
  if (type === 'text/csv') {
    res
      .type('text/csv; charset=utf-8')
      .setHeader('Content-Disposition', `attachment; filename="${view.id}.csv"`);
    res.send(statementCsv(view));
    return;
  }
  res.json(view);
}

function listFilter(req: Request) {
  const page = pageRequest(req);
  return {
    limit: page.limit,
    startingAfter: page.startingAfter,
    status: queryString(req, 'status') as StatementStatus | undefined,
    dateGte: queryString(req, 'date_gte'),
    dateLt: queryString(req, 'date_lt'),
  };
}

export function settlementsRoutes(deps: { settlements: SettlementsService }): Router {
  const { settlements } = deps;
  const router = Router();
  const carrier = requireRole('carrier');
  const read = requireRole('admin', 'auditor');
  const write = requireRole('admin');

  router.get('/v1/carrier/settlements', carrier, async (req, res) => {
    const page = await settlements.listStatements({
      ...listFilter(req),
      carrierId: authOf(req).ownerId,
    });
    res.json(page);
  });
  router.get('/v1/carrier/settlements/:id', carrier, async (req, res) => {
    sendStatement(
      req,
      res,
      await settlements.getStatement(req.params.id as string, authOf(req).ownerId),
    );
  });

  router.get('/v1/admin/settlements', read, async (req, res) => {
    const page = await settlements.listStatements({
      ...listFilter(req),
      carrierId: queryString(req, 'carrier_id'),
    });
    res.json(page);
  });
  router.get('/v1/admin/settlements/:id', read, async (req, res) => {
    sendStatement(req, res, await settlements.getStatement(req.params.id as string));
  });
  router.post('/v1/admin/settlements/:id/close', write, async (req, res) => {
    res.json(await settlements.closeStatement(actorOf(req), req.params.id as string));
  });
  router.post('/v1/admin/settlements/:id/settle', write, async (req, res) => {
    const body = req.body as { payment_reference: string };
    res.json(
      await settlements.settleStatement(
        actorOf(req),
        req.params.id as string,
        body.payment_reference,
      ),
    );
  });
  return router;
}
