import { Router } from 'express';
import { pageRequest, queryString } from '../../http/pagination.js';
import type { SmsService } from './sms-service.js';

/**
 * The sandbox SMS inbox: what the sandbox sink "delivered", so a developer can read one-time
 * codes. Any authenticated key may read it; outside sandbox the route does not exist (404).
 */
export function smsRoutes(deps: { sms: SmsService; config: { SANDBOX: boolean } }): Router {
  const router = Router();
  if (!deps.config.SANDBOX) return router;
  router.get('/v1/sandbox/sms', async (req, res) => {
    res.json(
      await deps.sms.sandboxInbox({ ...pageRequest(req), msisdn: queryString(req, 'msisdn')! }),
    );
  });
  return router;
}
