import { withTransaction } from '../db/transaction.js';
import type { Container } from '../container.js';
import { SYSTEM_ACTOR } from '../http/context.js';

export interface SandboxSeed {
  keys: { role: string; key: string; owner?: string }[];
  subscribers: string[];
  tryCommands(baseUrl: string): string[];
}

const SANDBOX_CARRIER_CODE = 'sandbox-mobile';

/**
 * Seeds a demo carrier, merchant and keys on first start in sandbox mode; returns undefined
 * when the sandbox carrier already exists (a restart reuses the data).
 */
export async function seedSandbox(c: Container): Promise<SandboxSeed | undefined> {
  const actor = SYSTEM_ACTOR('sandbox-seed');
  const { rowCount } = await c.pool.query('SELECT 1 FROM carriers WHERE code = $1', [
    SANDBOX_CARRIER_CODE,
  ]);
  if (rowCount) return undefined;

  const carrier = await c.carriers.createCarrier(actor, {
    code: SANDBOX_CARRIER_CODE,
    name: 'Sandbox Mobile',
    currency: 'VND',
    timezone: 'Asia/Ho_Chi_Minh',
    revenue_share_bps: 3000,
  });
  const merchant = await c.merchants.createMerchant(actor, {
    name: 'Sandbox Games',
    fee_bps: 250,
  });
  const keys = await withTransaction(c.pool, async (tx) => [
    {
      ...(await c.apiKeys.createKeyIn(tx, actor, { role: 'admin', description: 'sandbox admin' })),
    },
    {
      ...(await c.apiKeys.createKeyIn(tx, actor, {
        role: 'auditor',
        description: 'sandbox auditor',
      })),
    },
    {
      ...(await c.apiKeys.createKeyIn(tx, actor, {
        role: 'merchant',
        owner_id: merchant.id,
        description: 'sandbox merchant',
      })),
      owner: `${merchant.name}, ${merchant.id}`,
    },
    {
      ...(await c.apiKeys.createKeyIn(tx, actor, {
        role: 'carrier',
        owner_id: carrier.id,
        description: 'sandbox carrier',
      })),
      owner: `${carrier.name}, ${carrier.id}`,
    },
  ]);
  const subscribers: {
    msisdn: string;
    funding_type: 'prepaid' | 'postpaid';
    credit_limit?: string;
    topup?: string;
  }[] = [
    { msisdn: '+84901234567', funding_type: 'prepaid', topup: '500000' },
    { msisdn: '+84901234568', funding_type: 'prepaid', topup: '20000' },
    { msisdn: '+84981234569', funding_type: 'postpaid', credit_limit: '1000000' },
  ];
  for (const s of subscribers) {
    await c.subscribers.putSubscriber(actor, carrier.id, s.msisdn, {
      funding_type: s.funding_type,
      status: 'active',
      ...(s.credit_limit ? { credit_limit: s.credit_limit } : {}),
    });
    if (s.topup) {
      await c.subscribers.topup(
        actor,
        carrier.id,
        s.msisdn,
        { amount: s.topup, currency: 'VND', reference: 'sandbox-seed' },
        {
          ownerId: carrier.id,
          key: `sandbox-seed-${s.msisdn}`,
          fingerprint: 'sandbox-seed',
          method: 'POST',
          path: `/v1/carrier/subscribers/${s.msisdn}/topups`,
          requestId: 'sandbox-seed',
        },
      );
    }
  }
  const merchantKey = keys.find((k) => k.role === 'merchant')?.key ?? '';
  const body = JSON.stringify({
    msisdn: '+84901234567',
    amount: '15000',
    currency: 'VND',
    description: '100 gems',
  });
  return {
    keys: keys.map((k) => ({
      role: k.role,
      key: k.key,
      ...('owner' in k ? { owner: k.owner } : {}),
    })),
    subscribers: subscribers.map(
      (s) =>
        `${s.msisdn} (${s.funding_type}, ${s.topup ? `balance ${s.topup}` : `credit limit ${s.credit_limit ?? '0'}`} VND)`,
    ),
    tryCommands: (base) => [
      `curl -s ${base}/v1/charges -H "Authorization: Bearer ${merchantKey}" -H "Idempotency-Key: first-charge" -H "Content-Type: application/json" -d '${body}'`,
    ],
  };
}
