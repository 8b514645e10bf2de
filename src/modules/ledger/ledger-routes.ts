import { Router } from 'express';
import type { Pool } from '../../db/pool.js';
import { authOf, requireRole } from '../../http/auth.js';
import { formatAmount } from '../money/money.js';
import type { SettlementsService } from '../settlements/settlements-service.js';
import type { LedgerService } from './ledger-service.js';

export function ledgerRoutes(deps: {
  pool: Pool;
  ledger: LedgerService;
  settlements: Pick<SettlementsService, 'merchantSettled'>;
}): Router {
  const { pool, ledger, settlements } = deps;
  const router = Router();

  router.get('/v1/balance', requireRole('merchant'), async (req, res) => {
    const merchantId = authOf(req).ownerId;
    // The payable account holds what carriers have not paid yet; settled statements moved the rest.
    const [rows, settled] = await Promise.all([
      ledger.partyBalances(pool, 'merchant_payable', merchantId),
      settlements.merchantSettled(merchantId),
    ]);
    res.json({
      object: 'balance',
      balances: rows.map((r) => ({
        currency: r.currency,
        pending_settlement: formatAmount(BigInt(r.posted), r.currency),
        settled: formatAmount(settled.get(r.currency) ?? 0n, r.currency),
      })),
    });
  });

  router.get('/v1/admin/ledger/verify', requireRole('admin', 'auditor'), async (_req, res) => {
    res.json(await ledger.verify());
  });
  return router;
}
