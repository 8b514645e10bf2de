import { pino, type Logger, type DestinationStream } from 'pino';
import { redactKeyShapedText } from './lib/secrets.js';

export type { Logger };

/** Paths never written to logs: credentials, one-time codes, secrets, raw phone numbers. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'msisdn',
  '*.msisdn',
  'otp',
  '*.otp',
  'otp_code',
  '*.otp_code',
  'secret',
  '*.secret',
  'webhook_secret',
  '*.webhook_secret',
  'key',
  'api_key',
  '*.api_key',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'dcb-gateway' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      // The last line of defence (SPEC §10): whatever field or message an API key ended up in —
      // an error's text, a URL, a body quoted by a library — it is not written.
      hooks: { streamWrite: redactKeyShapedText },
    },
    destination,
  );
}
