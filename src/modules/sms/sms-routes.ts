import { Router } from 'express';
import { authOf, requireRole } from '../../http/auth.js';
import type { AuthContext } from '../../http/context.js';
import { pageRequest, queryString } from '../../http/pagination.js';
import type { SmsReader } from './sms-repo.js';
import type { SmsService } from './sms-service.js';

/**
 * The messages a caller may read (SPEC §10): a one-time code is a credential, so a merchant reads
 * only those of its own charges (never another merchant's codes for the same number), a carrier
 * those it carried, an admin all. Auditors are refused by the route: a code is no record to audit
 * (the audit trail says a code was sent), and reading one would let its reader approve a charge.
 */
function readerOf(auth: AuthContext): SmsReader {
  if (auth.role === 'merchant') return { merchantId: auth.ownerId };
  if (auth.role === 'carrier') return { carrierId: auth.ownerId };
  return 'all';
}

/**
 * The sandbox SMS inbox: what the sandbox sink "delivered", so a developer can read one-time
 * codes. Outside sandbox the route does not exist (404).
 */
export function smsRoutes(deps: { sms: SmsService; config: { SANDBOX: boolean } }): Router {
  const router = Router();
  if (!deps.config.SANDBOX) return router;
  router.get('/v1/sandbox/sms', requireRole('merchant', 'carrier', 'admin'), async (req, res) => {
    res.json(
      await deps.sms.sandboxInbox({
        ...pageRequest(req),
        msisdn: queryString(req, 'msisdn')!,
        reader: readerOf(authOf(req)),
      }),
    );
  });
  return router;
}
