import { Router } from 'express';
import type { Pool } from '../../db/pool.js';
import { authOf, requireRole } from '../../http/auth.js';
import { formatAmount } from '../money/money.js';
import type { LedgerService } from './ledger-service.js';

export function ledgerRoutes(deps: { pool: Pool; ledger: LedgerService }): Router {
  const { pool, ledger } = deps;
  const router = Router();

  router.get('/v1/balance', requireRole('merchant'), async (req, res) => {
    const rows = await ledger.partyBalances(pool, 'merchant_payable', authOf(req).ownerId);
    res.json({
      object: 'balance',
      balances: rows.map((r) => ({
        currency: r.currency,
        pending_settlement: formatAmount(BigInt(r.posted), r.currency),
        settled: formatAmount(0n, r.currency),
      })),
    });
  });

  router.get('/v1/admin/ledger/verify', requireRole('admin', 'auditor'), async (_req, res) => {
    res.json(await ledger.verify());
  });
  return router;
}
