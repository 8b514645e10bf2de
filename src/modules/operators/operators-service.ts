import { createHash, randomBytes } from 'node:crypto';
import type { Pool } from '../../db/pool.js';
import { pgCode } from '../../db/errors.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import type { Actor, Role } from '../../http/context.js';
import { toPage, type Page } from '../../http/pagination.js';
import { newId } from '../../lib/ids.js';
import { ownerExists, notifyAuthChange, type AuthChange } from '../api-keys/api-keys-repo.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import * as repo from './operators-repo.js';
import {
  toOperatorView,
  type CreatedOperator,
  type CreateOperatorInput,
  type OperatorFilter,
  type OperatorStatus,
  type OperatorView,
} from './operators-types.js';

export interface OperatorsService {
  /** Creates a person with a one-time set-up link, shown only in this answer. */
  createOperator(actor: Actor, input: CreateOperatorInput): Promise<CreatedOperator>;
  getOperator(id: string): Promise<OperatorView>;
  /** An operator named by id (op_…) or by email (any case), for the admin CLI. */
  findOperator(ref: string): Promise<OperatorView>;
  listOperators(filter: OperatorFilter): Promise<Page<OperatorView>>;
  /**
   * Suspending stops every key and console session of the operator on every instance at once;
   * activating lets their keys authenticate again.
   */
  setOperatorStatus(actor: Actor, id: string, status: OperatorStatus): Promise<OperatorView>;
}

/** SHA-256 of a set-up token: the only form of it that is stored. */
export function hashSetupToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** The console page a set-up link opens; the token is in the fragment, never sent to a server log. */
export function setupUrl(baseUrl: string, token: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/console/setup#token=${token}`;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const ROLES: Role[] = ['merchant', 'carrier', 'admin', 'auditor'];

export function createOperatorsService(deps: {
  pool: Pool;
  /** Where set-up links point: PUBLIC_BASE_URL, or http://localhost:PORT. */
  publicBaseUrl: string;
  setupTtlHours: number;
  /** Evicts this process's cached keys at once, whatever the notification channel does. */
  forgetCached: (change: AuthChange) => void;
}): OperatorsService {
  const { pool } = deps;

  /** The contract checks these too; the admin CLI reaches the service without it. */
  function assertPerson(input: CreateOperatorInput): void {
    if (input.email.length > 254 || !EMAIL.test(input.email)) {
      throw new AppError('validation_failed', 'email must be an email address.', {
        param: 'email',
      });
    }
    if (input.name.trim().length === 0 || input.name.length > 200) {
      throw new AppError('validation_failed', 'name must be 1–200 characters.', { param: 'name' });
    }
    if (!ROLES.includes(input.role)) {
      throw new AppError('validation_failed', `role must be one of ${ROLES.join(', ')}.`, {
        param: 'role',
      });
    }
  }

  async function assertOwner(input: CreateOperatorInput): Promise<void> {
    const tenant = input.role === 'merchant' || input.role === 'carrier' ? input.role : null;
    if (tenant === null) {
      if (input.owner_id !== undefined) {
        throw new AppError('validation_failed', `An ${input.role} operator has no owner_id.`, {
          param: 'owner_id',
        });
      }
      return;
    }
    if (input.owner_id === undefined) {
      throw new AppError(
        'validation_failed',
        `A ${tenant} operator belongs to a ${tenant}: name it in owner_id.`,
        { param: 'owner_id' },
      );
    }
    if (!(await ownerExists(pool, tenant, input.owner_id))) {
      throw new AppError('validation_failed', `No ${tenant} with id ${input.owner_id}.`, {
        param: 'owner_id',
      });
    }
  }

  return {
    async createOperator(actor, input) {
      assertPerson(input);
      await assertOwner(input);
      const token = randomBytes(32).toString('base64url');
      const expiresAt = new Date(Date.now() + deps.setupTtlHours * 3_600_000);
      try {
        const row = await withTransaction(pool, async (tx) => {
          const created = await repo.insertOperator(tx, {
            id: newId('op'),
            email: input.email,
            name: input.name,
            role: input.role,
            ownerId: input.owner_id ?? null,
            bootstrap: false,
            setup: { tokenHash: hashSetupToken(token), expiresAt },
          });
          await insertAuditEvent(tx, actor, {
            action: 'operator.created',
            objectType: 'operator',
            objectId: created.id,
            summary: { email: created.email, role: created.role, owner_id: created.owner_id },
          });
          return created;
        });
        return {
          ...toOperatorView(row),
          setup: {
            token,
            url: setupUrl(deps.publicBaseUrl, token),
            expires_at: expiresAt.toISOString(),
          },
        };
      } catch (err) {
        if (pgCode(err) === '23505') {
          throw new AppError('already_exists', `An operator with email ${input.email} exists.`, {
            param: 'email',
          });
        }
        throw err;
      }
    },

    async getOperator(id) {
      const row = await repo.findOperator(pool, id);
      if (!row) throw new AppError('not_found', `No operator ${id}.`);
      return toOperatorView(row);
    },

    async findOperator(ref) {
      const row = ref.startsWith('op_')
        ? await repo.findOperator(pool, ref)
        : await repo.findOperatorByEmail(pool, ref);
      if (!row) throw new AppError('not_found', `No operator ${ref}.`);
      return toOperatorView(row);
    },

    async listOperators(filter) {
      if (filter.startingAfter !== undefined) {
        if (!(await repo.findOperator(pool, filter.startingAfter))) {
          throw new AppError('invalid_cursor', `No operator ${filter.startingAfter}.`, {
            param: 'starting_after',
          });
        }
      }
      const rows = await repo.listOperators(pool, filter);
      return toPage(rows, filter.limit, toOperatorView);
    },

    async setOperatorStatus(actor, id, status) {
      if (status === 'suspended' && actor.operatorId === id) {
        throw new AppError(
          'forbidden',
          'An operator cannot suspend themselves; ask another admin.',
        );
      }
      const view = await withTransaction(pool, async (tx) => {
        const current = await repo.findOperator(tx, id, { forUpdate: true });
        if (!current) throw new AppError('not_found', `No operator ${id}.`);
        if (current.status === status) return toOperatorView(current);
        const row = await repo.setOperatorStatus(tx, id, status);
        const sessions = status === 'suspended' ? await repo.endSessionsOnSuspension(tx, id) : 0;
        await insertAuditEvent(tx, actor, {
          action: status === 'active' ? 'operator.activated' : 'operator.suspended',
          objectType: 'operator',
          objectId: id,
          summary: {
            from: current.status,
            to: status,
            ...(status === 'suspended' ? { sessions_ended: sessions } : {}),
          },
        });
        if (status === 'suspended') await notifyAuthChange(tx, { kind: 'operator', id });
        return toOperatorView(row);
      });
      if (status === 'suspended') deps.forgetCached({ kind: 'operator', id });
      return view;
    },
  };
}
