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
  return {
    keys: keys.map((k) => ({
      role: k.role,
      key: k.key,
      ...('owner' in k ? { owner: k.owner } : {}),
    })),
    subscribers: [],
    tryCommands: () => [],
  };
}
