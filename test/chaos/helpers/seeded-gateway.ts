import type pg from 'pg';
import { inject } from 'vitest';
import { openFreshDatabase } from './chaos-db.js';
import {
  createAdminKeyWithCli,
  ensureBuilt,
  freePort,
  gatewayEnv,
  startGateway,
  type GatewayProcess,
} from './gateway-process.js';
import { seedTenants, type Tenants } from './tenants.js';

export interface SeededGateway {
  databaseUrl: string;
  db: pg.Client;
  /** The gateway's environment, to start it again on the same port and database. */
  env: Record<string, string>;
  gateway: GatewayProcess;
  adminKey: string;
  tenants: Tenants;
}

/**
 * A production gateway process of the test's own: a fresh database with a client on it, an admin
 * key made with the CLI, the gateway on a free port, and a carrier, merchants and funded
 * subscribers seeded through its API.
 */
export async function startSeededGateway(
  label: string,
  seed: { subscribers: number; balance: string },
): Promise<SeededGateway> {
  await ensureBuilt();
  const { databaseUrl, db } = await openFreshDatabase(label);
  const adminKey = await createAdminKeyWithCli(databaseUrl);
  const env = gatewayEnv({ databaseUrl, redisUrl: inject('redisUrl'), port: await freePort() });
  const gateway = await startGateway(env);
  const tenants = await seedTenants(gateway.baseUrl, adminKey, seed);
  return { databaseUrl, db, env, gateway, adminKey, tenants };
}
