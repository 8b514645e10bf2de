import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import { containsKeyShapedText } from '../lib/secrets.js';
import './context.js';

const VALID_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * Echoes a valid client `X-Request-Id`, otherwise makes one; always answers `Request-Id`. A
 * key-shaped one is never echoed (nor logged): the request is refused as credentials_in_query.
 */
export function requestId(): RequestHandler {
  return (req, res, next) => {
    const given = req.get('x-request-id');
    const id =
      given !== undefined && VALID_REQUEST_ID.test(given) && !containsKeyShapedText(given)
        ? given
        : `req_${randomUUID()}`;
    req.requestId = id;
    res.setHeader('Request-Id', id);
    next();
  };
}
