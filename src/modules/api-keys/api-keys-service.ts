import { createHash, randomBytes } from 'node:crypto';
import type { Pool, Queryable } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import type { Actor, AuthContext, Role } from '../../http/context.js';
import { newId } from '../../lib/ids.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import * as repo from './api-keys-repo.js';
import { toApiKeyView, type ApiKeyView } from './api-keys-types.js';

export const ROLE_PREFIX: Record<Role, string> = {
  merchant: 'mk',
  carrier: 'ck',
  admin: 'ak',
  auditor: 'uk',
};

/** SHA-256 of the key. Keys carry 256 random bits, so a fast hash is enough and lookups are by index. */
export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

const KEY_SHAPE = /^dcb_(mk|ck|ak|uk)_[A-Za-z0-9_-]{43}$/;

export interface CreatedApiKey extends ApiKeyView {
  key: string;
}

export interface ApiKeysService {
  createKey(
    actor: Actor,
    input: { role: Role; owner_id?: string; description?: string },
  ): Promise<CreatedApiKey>;
  /** Creates a key without an HTTP caller (bootstrap CLI, sandbox seed). */
  createKeyIn(
    db: Queryable,
    actor: Actor,
    input: { role: Role; owner_id?: string; description?: string },
  ): Promise<CreatedApiKey>;
  revokeKey(actor: Actor, id: string): Promise<ApiKeyView>;
  getKey(id: string): Promise<ApiKeyView>;
  listKeys(filter: {
    ownerId?: string;
    role?: Role;
    limit: number;
    startingAfter?: string;
  }): Promise<{ rows: ApiKeyView[]; hasMore: boolean }>;
  /** Resolves a presented bearer key to its caller, or undefined when unknown or revoked. */
  authenticate(presented: string): Promise<AuthContext | undefined>;
}

export function createApiKeysService(deps: { pool: Pool }): ApiKeysService {
  const { pool } = deps;

  async function createKeyIn(
    db: Queryable,
    actor: Actor,
    input: { role: Role; owner_id?: string; description?: string },
  ): Promise<CreatedApiKey> {
    const needsOwner = input.role === 'merchant' || input.role === 'carrier';
    if (needsOwner && !input.owner_id) {
      throw new AppError('validation_failed', `A ${input.role} key needs owner_id.`, {
        param: 'owner_id',
      });
    }
    if (!needsOwner && input.owner_id) {
      throw new AppError('validation_failed', `An ${input.role} key has no owner_id.`, {
        param: 'owner_id',
      });
    }
    if (needsOwner) {
      const table = input.role === 'merchant' ? 'merchants' : 'carriers';
      const { rowCount } = await db.query(`SELECT 1 FROM ${table} WHERE id = $1`, [input.owner_id]);
      if (!rowCount) {
        throw new AppError('validation_failed', `No ${input.role} with id ${input.owner_id}.`, {
          param: 'owner_id',
        });
      }
    }
    const key = `dcb_${ROLE_PREFIX[input.role]}_${randomBytes(32).toString('base64url')}`;
    const row = await repo.insertApiKey(db, {
      id: newId('key'),
      hash: hashApiKey(key),
      prefix: key.slice(0, 12),
      role: input.role,
      ownerId: input.owner_id ?? null,
      description: input.description ?? null,
      createdBy: actor.apiKeyId,
    });
    await insertAuditEvent(db, actor, {
      action: 'api_key.created',
      objectType: 'api_key',
      objectId: row.id,
      summary: { role: row.role, owner_id: row.owner_id },
    });
    return { ...toApiKeyView(row), key };
  }

  return {
    createKeyIn,
    createKey: (actor, input) => withTransaction(pool, (tx) => createKeyIn(tx, actor, input)),

    revokeKey: (actor, id) =>
      withTransaction(pool, async (tx) => {
        const row = await repo.revokeApiKey(tx, id);
        if (!row) throw new AppError('not_found', `No API key ${id}.`);
        await insertAuditEvent(tx, actor, {
          action: 'api_key.revoked',
          objectType: 'api_key',
          objectId: id,
        });
        return toApiKeyView(row);
      }),

    async getKey(id) {
      const row = await repo.findApiKey(pool, id);
      if (!row) throw new AppError('not_found', `No API key ${id}.`);
      return toApiKeyView(row);
    },

    async listKeys(filter) {
      const rows = await repo.listApiKeys(pool, filter);
      return {
        rows: rows.slice(0, filter.limit).map(toApiKeyView),
        hasMore: rows.length > filter.limit,
      };
    },

    async authenticate(presented) {
      if (!KEY_SHAPE.test(presented)) return undefined;
      const row = await repo.findActiveKeyByHash(pool, hashApiKey(presented));
      if (!row) return undefined;
      return { keyId: row.id, role: row.role, ownerId: row.owner_id ?? row.id };
    },
  };
}
