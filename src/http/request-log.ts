import type { RequestHandler } from 'express';
import { maskMsisdnsInText } from '../lib/msisdn.js';
import { redactUrl } from '../lib/secrets.js';
import type { Logger } from '../logger.js';

/**
 * One line per request when it ends: `info` for an answer below 500, `error` for a 5xx (the error
 * itself is logged by the error handler), `warn` when the client went away before the answer was
 * sent. Numbers in the URL are masked, and credentials in it (a refused `?api_key=`, a key-shaped
 * segment) are redacted, whatever the answer was.
 *
 * Written through the app's logger, without a child logger per request: nothing logs through
 * one, and pino would serialise and redact its bindings on every request — a tenth of the CPU of
 * a replayed charge when pino-http did it — even when the level drops the line.
 */
export function requestLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    const done = () => {
      res.removeListener('finish', done);
      res.removeListener('close', done);
      const aborted = !res.writableFinished;
      const level = aborted ? 'warn' : res.statusCode >= 500 ? 'error' : 'info';
      if (!logger.isLevelEnabled(level)) return;
      logger[level](
        {
          request_id: req.requestId,
          req: { method: req.method, url: maskMsisdnsInText(redactUrl(req.originalUrl)) },
          res: { statusCode: res.statusCode },
          responseTime: Math.round(performance.now() - started),
        },
        aborted ? 'request aborted' : level === 'error' ? 'request errored' : 'request completed',
      );
    };
    res.on('finish', done);
    res.on('close', done);
    next();
  };
}
