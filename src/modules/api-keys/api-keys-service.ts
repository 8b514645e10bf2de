import { toPage, type Page } from '../../http/pagination.js';
import { createHash, randomBytes } from 'node:crypto';
import type { Pool, Queryable } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import type { Actor, AuthContext, Role } from '../../http/context.js';
import { newId } from '../../lib/ids.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import * as operatorsRepo from '../operators/operators-repo.js';
import type { OperatorRow } from '../operators/operators-types.js';
import * as repo from './api-keys-repo.js';
import type { AuthChange } from './api-keys-repo.js';
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

export interface CreateApiKeyInput {
  role: Role;
  owner_id?: string;
  /** The person the key is for (a personal key); absent: the tenant's machine key. */
  operator_id?: string;
  description?: string;
}

export interface ApiKeysService {
  createKey(actor: Actor, input: CreateApiKeyInput): Promise<CreatedApiKey>;
  /**
   * Creates a key without an HTTP caller (bootstrap CLI, sandbox seed). An admin or auditor key
   * without operator_id is given a bootstrap operator of its own, so it stays a person's key.
   */
  createKeyIn(db: Queryable, actor: Actor, input: CreateApiKeyInput): Promise<CreatedApiKey>;
  revokeKey(actor: Actor, id: string): Promise<ApiKeyView>;
  getKey(id: string): Promise<ApiKeyView>;
  listKeys(filter: {
    ownerId?: string;
    role?: Role;
    operatorId?: string;
    limit: number;
    startingAfter?: string;
  }): Promise<Page<ApiKeyView>>;
  /**
   * Resolves a presented bearer key to its caller, or undefined when unknown, revoked or its
   * operator's suspended. A change made through another instance is heard at once
   * (auth-changes-listener); while that channel is down, it takes up to API_KEY_CACHE_MS here.
   */
  authenticate(presented: string): Promise<AuthContext | undefined>;
  /** Drops what is cached for a revoked key or a suspended operator (heard from any instance). */
  forget(change: AuthChange): void;
  /** Drops everything cached: changes may have gone unheard. */
  forgetAll(): void;
}

const MAX_CACHED_KEYS = 10_000;

export function createApiKeysService(deps: {
  pool: Pool;
  /** How long a resolved key is trusted without a lookup, in ms (0: look up every request). */
  cacheMs?: number;
}): ApiKeysService {
  const { pool } = deps;
  const cacheMs = deps.cacheMs ?? 0;
  // Keys resolved recently, by the hex of their hash. A revocation or suspension evicts its
  // entries as soon as it is heard of (from this process or, by notification, from any other).
  const resolved = new Map<string, { auth: AuthContext; until: number }>();
  // Counts evictions: a lookup that began before one may have read what it evicts, so its answer
  // is used once but not cached.
  let evictions = 0;

  function remember(hash: string, auth: AuthContext): void {
    if (cacheMs === 0) return;
    if (resolved.size >= MAX_CACHED_KEYS) {
      const oldest = resolved.keys().next();
      if (!oldest.done) resolved.delete(oldest.value);
    }
    resolved.set(hash, { auth, until: Date.now() + cacheMs });
  }

  function forget(change: AuthChange): void {
    evictions += 1;
    for (const [hash, entry] of resolved) {
      const hit = change.kind === 'api_key' ? entry.auth.keyId : entry.auth.operatorId;
      if (hit === change.id) resolved.delete(hash);
    }
  }

  /** A bootstrap operator for a staff key made without one, as migration 0014 made them. */
  async function bootstrapOperator(db: Queryable, role: Role, keyId: string): Promise<string> {
    const id = newId('op');
    await operatorsRepo.insertOperator(db, {
      id,
      email: `${id}@bootstrap.invalid`,
      name: `Bootstrap ${role} (key ${keyId})`,
      role,
      ownerId: null,
      bootstrap: true,
      setup: null,
    });
    return id;
  }

  /** The operator a personal key is for: it exists, is active and has the key's role and owner. */
  async function operatorFor(
    db: Queryable,
    input: CreateApiKeyInput & { operator_id: string },
  ): Promise<OperatorRow> {
    const operator = await operatorsRepo.findOperator(db, input.operator_id);
    if (!operator) {
      throw new AppError('validation_failed', `No operator with id ${input.operator_id}.`, {
        param: 'operator_id',
      });
    }
    if (operator.role !== input.role) {
      throw new AppError(
        'validation_failed',
        `Operator ${operator.id} is ${operator.role === 'admin' || operator.role === 'auditor' ? 'an' : 'a'} ${operator.role}: a personal key has its operator's role.`,
        { param: 'role' },
      );
    }
    if (input.owner_id !== undefined && input.owner_id !== operator.owner_id) {
      throw new AppError(
        'validation_failed',
        `Operator ${operator.id} belongs to ${operator.owner_id ?? 'no tenant'}: a personal key has its operator's owner.`,
        { param: 'owner_id' },
      );
    }
    if (operator.status !== 'active') {
      throw new AppError(
        'invalid_state',
        `Operator ${operator.id} is suspended: activate it before issuing it a key.`,
        { extra: { operator_id: operator.id, current_status: operator.status } },
      );
    }
    return operator;
  }

  async function insertKey(
    db: Queryable,
    actor: Actor,
    input: CreateApiKeyInput,
    bootstrap: boolean,
  ): Promise<CreatedApiKey> {
    const staff = input.role === 'admin' || input.role === 'auditor';
    if (staff && input.owner_id) {
      throw new AppError('validation_failed', `An ${input.role} key has no owner_id.`, {
        param: 'owner_id',
      });
    }
    let operatorId: string | null = null;
    let ownerId = input.owner_id ?? null;
    if (input.operator_id !== undefined) {
      const operator = await operatorFor(db, { ...input, operator_id: input.operator_id });
      // Whoever receives a key can act as its person: an admin who could mint another admin's
      // key could approve their own adjustment under that name.
      if (input.role === 'admin' && !bootstrap && actor.operatorId !== operator.id) {
        throw new AppError(
          'forbidden',
          "A personal admin key is issued only to its own operator (with another of that operator's keys or a console session), or with the admin CLI.",
          { param: 'operator_id' },
        );
      }
      operatorId = operator.id;
      ownerId = operator.owner_id;
    } else if (input.role === 'admin' && !bootstrap) {
      throw new AppError(
        'validation_failed',
        'An admin key belongs to a person: name its operator_id (your own).',
        { param: 'operator_id' },
      );
    }
    if (!staff) {
      if (ownerId === null) {
        throw new AppError('validation_failed', `A ${input.role} key needs owner_id.`, {
          param: 'owner_id',
        });
      }
      if (
        !(await repo.ownerExists(db, input.role === 'merchant' ? 'merchant' : 'carrier', ownerId))
      ) {
        throw new AppError('validation_failed', `No ${input.role} with id ${ownerId}.`, {
          param: 'owner_id',
        });
      }
    }
    const id = newId('key');
    if (staff && operatorId === null && bootstrap) {
      operatorId = await bootstrapOperator(db, input.role, id);
    }
    const key = `dcb_${ROLE_PREFIX[input.role]}_${randomBytes(32).toString('base64url')}`;
    const row = await repo.insertApiKey(db, {
      id,
      hash: hashApiKey(key),
      prefix: key.slice(0, 12),
      role: input.role,
      ownerId,
      operatorId,
      description: input.description ?? null,
      createdBy: actor.apiKeyId,
    });
    await insertAuditEvent(db, actor, {
      action: 'api_key.created',
      objectType: 'api_key',
      objectId: row.id,
      summary: { role: row.role, owner_id: row.owner_id, operator_id: row.operator_id },
    });
    return { ...toApiKeyView(row), key };
  }

  return {
    createKeyIn: (db, actor, input) => insertKey(db, actor, input, true),
    createKey: (actor, input) => withTransaction(pool, (tx) => insertKey(tx, actor, input, false)),
    forget,
    forgetAll() {
      evictions += 1;
      resolved.clear();
    },

    async revokeKey(actor, id) {
      const view = await withTransaction(pool, async (tx) => {
        const row = await repo.revokeApiKey(tx, id);
        if (!row) throw new AppError('not_found', `No API key ${id}.`);
        await insertAuditEvent(tx, actor, {
          action: 'api_key.revoked',
          objectType: 'api_key',
          objectId: id,
        });
        await repo.notifyAuthChange(tx, { kind: 'api_key', id });
        return toApiKeyView(row);
      });
      // Also here, after the commit, in case the notification channel is down.
      forget({ kind: 'api_key', id });
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
      const before = evictions;
      const row = await repo.findActiveKeyByHash(pool, hash);
      if (!row) return undefined;
      const auth: AuthContext = {
        keyId: row.id,
        role: row.role,
        ownerId: row.owner_id ?? row.id,
        operatorId: row.operator_id,
      };
      if (evictions === before) remember(hex, auth);
      return auth;
    },
  };
}
