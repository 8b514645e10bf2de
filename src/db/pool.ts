import pg from 'pg';
import type { Logger } from '../logger.js';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/**
 * A statement with a name: each connection parses it once and Postgres may reuse its plan. For
 * the statements of the hottest path only (a named statement stays prepared on every connection).
 */
export interface NamedStatement {
  name: string;
  text: string;
  values: unknown[];
}

/** What every repo function takes first: the pool, or the client of an open transaction. */
export interface Queryable {
  query<R extends pg.QueryResultRow = Record<string, unknown>>(
    text: string | NamedStatement,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
}

export interface PoolOptions {
  connectionString: string;
  max: number;
  statementTimeoutMs: number;
  /**
   * Client-side bound on waiting for any answer, for a server that went silent (a partition
   * drops packets; statement_timeout cannot fire there). Unset: no bound.
   */
  queryTimeoutMs?: number;
  applicationName?: string;
}

/**
 * int8 and numeric arrive as strings (pg's default); money code turns them into bigint.
 * timestamptz arrives as Date.
 */
export function createPool(options: PoolOptions, logger: Logger): Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max,
    statement_timeout: options.statementTimeoutMs,
    ...(options.queryTimeoutMs ? { query_timeout: options.queryTimeoutMs } : {}),
    idle_in_transaction_session_timeout: options.statementTimeoutMs * 2,
    application_name: options.applicationName ?? 'dcb-gateway',
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client losing its connection must not crash the process.
  pool.on('error', (err) => logger.error({ err }, 'idle PostgreSQL client error'));
  // Nor may a checked-out one: pg-pool listens for errors only while a client is idle, so a
  // connection that drops while a transaction waits between statements would emit an unhandled
  // 'error'. The next query on that client fails (mapped to 503), and release() discards it.
  pool.on('connect', (client) => {
    client.on('error', (err) => logger.warn({ err }, 'PostgreSQL connection lost'));
  });
  return pool;
}
