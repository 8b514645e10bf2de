import type { Pool, PoolClient } from './pool.js';
import { isRetryableTxError } from './errors.js';

export interface TransactionOptions {
  /** How many times a serialization failure or deadlock restarts the whole transaction. */
  retries?: number;
  isolation?: 'read committed' | 'repeatable read' | 'serializable';
}

/**
 * Runs `fn` on one checked-out client between BEGIN and COMMIT. Any throw rolls back.
 * Serialization failures and deadlocks are retried a bounded number of times with jitter.
 */
export async function withTransaction<T>(
  pool: Pool,
  fn: (tx: PoolClient) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  const retries = options.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    const client = await pool.connect();
    let broken = false;
    try {
      await client.query(
        options.isolation ? `BEGIN ISOLATION LEVEL ${options.isolation.toUpperCase()}` : 'BEGIN',
      );
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      if (attempt < retries && isRetryableTxError(err)) {
        await sleep(5 + Math.random() * 20 * (attempt + 1));
        continue;
      }
      throw err;
    } finally {
      client.release(broken ? true : undefined);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
