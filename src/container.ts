import type { Redis } from 'ioredis';
import type { Config } from './config.js';
import type { Pool } from './db/pool.js';
import { NO_BRAKE, type AuthFailureBrake } from './http/auth.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { Worker } from './workers/workers.js';
import { createApiKeysService, type ApiKeysService } from './modules/api-keys/api-keys-service.js';
import {
  createCarriersService,
  type CarriersService,
} from './modules/carriers/carriers-service.js';
import {
  createMerchantsService,
  type MerchantsService,
} from './modules/merchants/merchants-service.js';

export interface Infrastructure {
  config: Config;
  pool: Pool;
  /** Absent when no REDIS_URL is configured: limits then live in process. */
  redis: Redis | null;
  logger: Logger;
  metrics: Metrics;
}

export interface Container extends Infrastructure {
  apiKeys: ApiKeysService;
  carriers: CarriersService;
  merchants: MerchantsService;
  authBrake: AuthFailureBrake;
  /** Background loops this instance may run (see workers/). */
  workers: Worker[];
}

/** The composition root: every service gets exactly the dependencies it uses. No I/O here. */
export function createContainer(infra: Infrastructure): Container {
  const { pool, config } = infra;
  return {
    ...infra,
    apiKeys: createApiKeysService({ pool }),
    carriers: createCarriersService({ pool }),
    merchants: createMerchantsService({ pool, sandbox: config.SANDBOX }),
    authBrake: NO_BRAKE,
    workers: [],
  };
}
