import { Router, type Response } from 'express';
import { AppError } from '../../errors.js';
import { actorOf, authOf, requireRole } from '../../http/auth.js';
import { queryString } from '../../http/pagination.js';
import type { ReconciliationsService } from './reconciliations-service.js';
import { EXCEPTIONS_CSV_HEADER, exceptionCsvLine } from './reconciliations-types.js';

/** Resolves when the response can take more, or when the client has gone. */
function drained(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

export function reconciliationsRoutes(deps: {
  reconciliations: ReconciliationsService;
  config: { RECONCILIATION_MAX_BYTES: number };
}): Router {
  const { reconciliations } = deps;
  const maxBytes = deps.config.RECONCILIATION_MAX_BYTES;
  const router = Router();
  const carrier = requireRole('carrier');

  // The body is the request stream itself (the JSON parser and the contract validator leave
  // text/csv alone), read once by the service.
  router.post('/v1/carrier/reconciliations', carrier, async (req, res) => {
    try {
      const declared = Number(req.get('content-length') ?? '0');
      if (declared > maxBytes) {
        throw new AppError(
          'payload_too_large',
          `The reconciliation file exceeds the allowed ${maxBytes} bytes.`,
          { extra: { max_bytes: maxBytes } },
        );
      }
      const from = queryString(req, 'from');
      const to = queryString(req, 'to');
      const view = await reconciliations.reconcile(actorOf(req), authOf(req).ownerId, req, {
        from: from === undefined ? undefined : new Date(from),
        to: to === undefined ? undefined : new Date(to),
        source: 'api',
        maxBytes,
      });
      res.status(201).json(view);
    } catch (err) {
      // Answer without reading the rest, discard whatever else arrives, and end the connection.
      if (!req.complete) {
        res.setHeader('Connection', 'close');
        req.resume();
      }
      throw err;
    }
  });

  router.get('/v1/carrier/reconciliations/:id', carrier, async (req, res) => {
    const id = req.params.id as string;
    const view = await reconciliations.getReconciliation(id, authOf(req).ownerId);
    if (queryString(req, 'exceptions') !== 'csv') {
      res.json(view);
      return;
    }
    res
      .status(200)
      .type('text/csv; charset=utf-8')
      .setHeader('Content-Disposition', `attachment; filename="${id}-exceptions.csv"`);
    res.write(EXCEPTIONS_CSV_HEADER);
    try {
      for await (const page of reconciliations.exceptionPages(id)) {
        for (const row of page) {
          if (!res.write(exceptionCsvLine(row))) await drained(res);
        }
        if (res.destroyed) return;
      }
      res.end();
    } catch (err) {
      // Headers are gone: cut the connection so the client sees a failure, not a short file.
      res.destroy(err as Error);
    }
  });
  return router;
}
