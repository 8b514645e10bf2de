import type { Request } from 'express';

export interface PageRequest {
  limit: number;
  startingAfter?: string;
}

export interface Page<T> {
  data: T[];
  has_more: boolean;
}

/** Reads `limit` (1–100, default 20) and `starting_after` (validated by the contract). */
export function pageRequest(req: Request): PageRequest {
  const limitRaw = req.query.limit;
  const limit =
    typeof limitRaw === 'string' || typeof limitRaw === 'number' ? Number(limitRaw) : 20;
  const after = req.query.starting_after;
  return {
    limit: Number.isInteger(limit) && limit >= 1 && limit <= 100 ? limit : 20,
    startingAfter: typeof after === 'string' && after.length > 0 ? after : undefined,
  };
}

/** Repos fetch `limit + 1` rows, newest first; this trims the extra row into `has_more`. */
export function toPage<R, T>(rows: R[], limit: number, map: (row: R) => T): Page<T> {
  return { data: rows.slice(0, limit).map(map), has_more: rows.length > limit };
}

/** Reads a string query parameter that the contract already validated. */
export function queryString(req: Request, name: string): string | undefined {
  const v = req.query[name];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}
