import type { RequestHandler } from 'express';
import { AppError } from '../errors.js';

/** Nesting depth of a parsed JSON value, measured without recursion. */
export function jsonDepth(value: unknown, stopAt: number): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth > deepest) deepest = depth;
    if (deepest > stopAt) return deepest;
    for (const child of Object.values(node as Record<string, unknown>))
      stack.push([child, depth + 1]);
  }
  return deepest;
}

/**
 * Refuses JSON bodies nested deeper than any request of the contract needs, before anything
 * (validation, fingerprinting) walks them recursively.
 */
export function limitJsonDepth(maxDepth: number): RequestHandler {
  return (req, _res, next) => {
    if (
      req.body !== null &&
      typeof req.body === 'object' &&
      jsonDepth(req.body, maxDepth) > maxDepth
    ) {
      throw new AppError(
        'validation_failed',
        `The JSON body is nested deeper than ${maxDepth} levels.`,
      );
    }
    next();
  };
}
