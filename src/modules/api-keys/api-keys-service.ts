import { toPage, type Page } from '../../http/pagination.js';
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
  }): Promise<Page<ApiKeyView>>;
  /**
   * Resolves a presented bearer key to its caller, or undefined when unknown or revoked. A key
   * revoked through another instance may still resolve here for up to API_KEY_CACHE_MS.
   */
  authenticate(presented: string): Promise<AuthContext | undefined>;
}

const MAX_CACHED_KEYS = 10_000;

export function createApiKeysService(deps: {
  pool: Pool;
  /** How long a resolved key is trusted without a lookup, in ms (0: look up every request). */
  cacheMs?: number;
}): ApiKeysService {
  const { pool } = deps;
  const cacheMs = deps.cacheMs ?? 0;
  // Keys resolved recently, by the hex of their hash. A revocation through this process evicts
  // its key at once; one made through another instance takes effect here within cacheMs.
  const resolved = new Map<string, { auth: AuthContext; until: number }>();

  function remember(hash: string, auth: AuthContext): void {
    if (cacheMs === 0) return;
    if (resolved.size >= MAX_CACHED_KEYS) {
      const oldest = resolved.keys().next();
      if (!oldest.done) resolved.delete(oldest.value);
    }
    resolved.set(hash, { auth, until: Date.now() + cacheMs });
  }

  function forget(keyId: string): void {
    for (const [hash, entry] of resolved) if (entry.auth.keyId === keyId) resolved.delete(hash);
  }

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
      if (
        !(await repo.ownerExists(
          db,
          input.role === 'merchant' ? 'merchant' : 'carrier',
          input.owner_id!,
        ))
      ) {
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

    async revokeKey(actor, id) {
      const view = await withTransaction(pool, async (tx) => {
        const row = await repo.revokeApiKey(tx, id);
        if (!row) throw new AppError('not_found', `No API key ${id}.`);
        await insertAuditEvent(tx, actor, {
          action: 'api_key.revoked',
          objectType: 'api_key',
          objectId: id,
        });
        return toApiKeyView(row);
      });
      // After the commit: a request resolving the key before it would cache it again.
      forget(id);
      return view;
    },

    async getKey(id) {
      const row = await repo.findApiKey(pool, id);
      if (!row) throw new AppError('not_found', `No API key ${id}.`);
      return toApiKeyView(row);
    },

    async listKeys(filter) {
      const rows = await repo.listApiKeys(pool, filter);
      return toPage(rows, filter.limit, toApiKeyView);
    },

    async authenticate(presented) {
      if (!KEY_SHAPE.test(presented)) return undefined;
      const hash = hashApiKey(presented);
      const hex = hash.toString('hex');
      const cached = resolved.get(hex);
      if (cached && cached.until > Date.now()) return cached.auth;
      if (cached) resolved.delete(hex);
      const row = await repo.findActiveKeyByHash(pool, hash);
      if (!row) return undefined;
      const auth: AuthContext = {
        keyId: row.id,
        role: row.role,
        ownerId: row.owner_id ?? row.id,
        operatorId: null,
      };
      remember(hex, auth);
      return auth;
    },
  };
}
