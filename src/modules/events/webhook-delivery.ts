import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import { isNonPublicAddress } from '../../lib/webhook-url.js';

export interface DeliveryResult {
  /** The HTTP status, or null when no answer came (timeout, refused, unreachable). */
  status: number | null;
  latencyMs: number;
  error: string | null;
}

export interface WebhookPoster {
  post(url: string, body: string, headers: Record<string, string>): Promise<DeliveryResult>;
  /** Closes idle keep-alive connections. */
  close(): void;
}

class NonPublicAddressError extends Error {
  constructor(host: string, address: string) {
    super(`refused: ${host} resolves to the non-public address ${address}`);
    this.name = 'NonPublicAddressError';
  }
}

/**
 * Resolves like dns.lookup but fails when any address of the name is loopback or private. It is
 * the lookup of the very connection that sends the request, so a name cannot pass the check and
 * then resolve elsewhere for the connection (DNS rebinding).
 */
const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) {
      callback(err, '', 0);
      return;
    }
    const bad = addresses.find((a) => isNonPublicAddress(a.address));
    const first = addresses[0];
    if (bad || !first) {
      callback(new NonPublicAddressError(hostname, bad?.address ?? '(none)'), '', 0);
      return;
    }
    if (options.all) callback(null, addresses);
    else callback(null, first.address, first.family);
  });
};

/**
 * POSTs webhooks with node:http(s) rather than fetch: fetch cannot check the address it
 * connects to. Redirects are never followed (a 3xx is a failed attempt), and the whole exchange
 * is bounded by `timeoutMs`. Outside sandbox, loopback and private addresses are refused.
 */
export function createWebhookPoster(options: {
  timeoutMs: number;
  allowNonPublic: boolean;
}): WebhookPoster {
  const agentOptions = { keepAlive: true, maxSockets: 50, timeout: 30_000 };
  const agents = { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };

  return {
    async post(url, body, headers) {
      const started = performance.now();
      const elapsed = () => Math.round(performance.now() - started);
      try {
        const target = new URL(url);
        const host = target.hostname.replace(/^\[|\]$/g, '');
        if (!options.allowNonPublic && isNonPublicAddress(host)) {
          throw new NonPublicAddressError(host, host);
        }
        const status = await send(target, body, headers, {
          agent: target.protocol === 'https:' ? agents.https : agents.http,
          timeoutMs: options.timeoutMs,
          lookup: options.allowNonPublic ? undefined : publicOnlyLookup,
        });
        const error =
          status >= 300 && status < 400
            ? 'redirect not followed'
            : status >= 200 && status < 300
              ? null
              : `HTTP ${status}`;
        return { status, latencyMs: elapsed(), error };
      } catch (err) {
        return { status: null, latencyMs: elapsed(), error: describeError(err, options.timeoutMs) };
      }
    },
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

function send(
  target: URL,
  body: string,
  headers: Record<string, string>,
  options: { agent: http.Agent; timeoutMs: number; lookup: LookupFunction | undefined },
): Promise<number> {
  const request = target.protocol === 'https:' ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      {
        method: 'POST',
        headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body)) },
        agent: options.agent,
        signal: AbortSignal.timeout(options.timeoutMs),
        ...(options.lookup ? { lookup: options.lookup } : {}),
      },
      (res) => {
        // Only the status matters; the body is drained so the connection can be reused.
        res.on('error', () => undefined);
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function describeError(err: unknown, timeoutMs: number): string {
  if (err instanceof NonPublicAddressError) return err.message;
  const e = err as { name?: string; code?: string; message?: string };
  if (e.name === 'AbortError' || e.name === 'TimeoutError' || e.code === 'ABORT_ERR') {
    return `timeout: no answer within ${timeoutMs} ms`;
  }
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof NonPublicAddressError) return cause.message;
  const message = e.message ?? String(err);
  return (e.code && !message.includes(e.code) ? `${e.code}: ${message}` : message).slice(0, 500);
}
