import type { Pool } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import * as repo from './sessions-repo.js';
import { assertPasswordAcceptable, type PasswordHasher } from './sessions-password.js';
import { operatorActor, SETUP_TOKEN_SHAPE, sha256, type ClientInfo } from './sessions-shared.js';

/**
 * Sets an operator's first (or a new) password from the one-time set-up link, spending the link,
 * and ends the operator's sessions.
 */
export async function setUpPassword(
  deps: { pool: Pool; hasher: PasswordHasher },
  input: { token: string; password: string },
  client: ClientInfo,
): Promise<{ operator_id: string; email: string }> {
  const { pool, hasher } = deps;

  const invalid = new AppError(
    'setup_token_invalid',
    'The set-up link is unknown, used or expired: ask an admin for a new one.',
    { param: 'token' },
  );
  if (!SETUP_TOKEN_SHAPE.test(input.token)) throw invalid;
  const tokenHash = sha256(input.token);
  const op = await repo.findOperatorBySetupToken(pool, tokenHash);
  if (!op) throw invalid;
  assertPasswordAcceptable(input.password, op);
  // Hashed before the transaction: 0.4 s of scrypt must not hold a row lock.
  const passwordHash = await hasher.hash(input.password);
  await withTransaction(pool, async (tx) => {
    if (!(await repo.consumeSetupToken(tx, tokenHash, op.id, passwordHash))) throw invalid;
    const ended = await repo.endOperatorSessions(tx, op.id, 'password_set');
    await insertAuditEvent(tx, operatorActor(op, client), {
      action: 'operator.password_set',
      objectType: 'operator',
      objectId: op.id,
      summary: { sessions_ended: ended.length },
    });
  });
  return { operator_id: op.id, email: op.email };
}
