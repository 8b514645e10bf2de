import { AppError } from '../errors.js';

interface PgLikeError {
  code?: string;
  message?: string;
}

const CONNECTION_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
]);

export function pgCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as PgLikeError).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** Serialization failure or deadlock: the whole transaction may be retried. */
export function isRetryableTxError(err: unknown): boolean {
  const code = pgCode(err);
  return code === '40001' || code === '40P01';
}

/** The database (or the connection to it) is unavailable; the request may be retried later. */
export function isTransientDbError(err: unknown): boolean {
  const code = pgCode(err);
  if (code === undefined) {
    const message = err instanceof Error ? err.message : '';
    return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connection is closed|Query read timeout/i.test(
      message,
    );
  }
  return (
    isRetryableTxError(err) ||
    CONNECTION_ERRNOS.has(code) ||
    code.startsWith('08') || // connection exception
    code === '57P01' || // admin shutdown
    code === '57P02' || // crash shutdown
    code === '57P03' || // cannot connect now
    code === '57014' || // statement timeout / query canceled
    code === '53300' || // too many connections
    code === '55P03' // lock not available
  );
}

/**
 * Maps a PostgreSQL failure to the error a client sees. Internals (SQL, constraint names)
 * never reach the client; unknown failures become internal_error.
 */
export function mapDbError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (isTransientDbError(err)) {
    return new AppError(
      'service_unavailable',
      'The service is temporarily unavailable; retry shortly.',
      {
        headers: { 'Retry-After': '1' },
        cause: err,
      },
    );
  }
  const code = pgCode(err);
  if (code === '23505') {
    return new AppError(
      'already_exists',
      'An object with these identifying fields already exists.',
      {
        cause: err,
      },
    );
  }
  return new AppError('internal_error', 'An internal error occurred.', { cause: err });
}
