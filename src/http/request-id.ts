import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import './context.js';

const VALID_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** Echoes a valid client `X-Request-Id`, otherwise makes one; always answers `Request-Id`. */
export function requestId(): RequestHandler {
  return (req, res, next) => {
    const given = req.get('x-request-id');
    const id = given !== undefined && VALID_REQUEST_ID.test(given) ? given : `req_${randomUUID()}`;
    req.requestId = id;
    res.setHeader('Request-Id', id);
    next();
  };
}
