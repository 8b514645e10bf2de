import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  systemResolveHost,
  type AddressPolicy,
  type ResolveHost,
} from '../../lib/outbound-address.js';
import { literalAddress } from '../../lib/outbound-url.js';

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

/**
 * What the tenant reads when the policy refused the address. It is one fixed sentence whether
 * the name did not resolve or resolved to a private address, and nothing was sent, so attempt
 * results say nothing about the gateway's network (no refused-versus-timeout port oracle, no
 * internal addresses, no "this internal name exists").
 */
export const ADDRESS_REFUSED =
  'refused: the host is unresolvable or has a non-public address; nothing was sent';

class AddressRefusedError extends Error {
  readonly code = 'EADDRNOTALLOWED';
  constructor() {
    super(ADDRESS_REFUSED);
    this.name = 'AddressRefusedError';
  }
}

function wantedFamily(family: unknown): 4 | 6 | null {
  if (family === 4 || family === 'IPv4') return 4;
  if (family === 6 || family === 'IPv6') return 6;
  return null;
}

/**
 * The lookup of the very socket that sends the request: it resolves the name and fails unless
 * every address passes the policy, so a name cannot pass a check and then resolve elsewhere for
 * the connection (DNS rebinding). Node calls it with `all: true` when it races address families.
 */
function guardedLookup(resolve: ResolveHost, allows: AddressPolicy): LookupFunction {
  return (hostname, options, callback) => {
    const refuse = () => callback(new AddressRefusedError(), '', 0);
    resolve(hostname).then((all) => {
      const family = wantedFamily(options.family);
      const usable = family ? all.filter((a) => a.family === family) : all;
      const first = usable[0];
      if (!first || all.some((a) => !allows(a.address))) {
        refuse();
        return;
      }
      if (options.all) callback(null, usable);
      else callback(null, first.address, first.family);
    }, refuse);
  };
}

/**
 * POSTs webhooks (and carrier SMS) with node:http(s), whose per-request `lookup` lets us judge
 * the address actually connected to; IP literals never reach a lookup, so they are judged before
 * connecting. Redirects are never followed (a 3xx is a failed attempt), and the whole exchange is
 * bounded by `timeoutMs`.
 */
export function createWebhookPoster(options: {
  timeoutMs: number;
  /** Which addresses may be connected to (sandbox: any; otherwise public unicast). */
  allowAddress: AddressPolicy;
  resolveHost?: ResolveHost;
}): WebhookPoster {
  const agentOptions = { keepAlive: true, maxSockets: 50, timeout: 30_000 };
  const agents = { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };
  const lookup = guardedLookup(options.resolveHost ?? systemResolveHost, options.allowAddress);

  return {
    async post(url, body, headers) {
      const started = performance.now();
      const elapsed = () => Math.round(performance.now() - started);
      try {
        const target = new URL(url);
        if (target.protocol !== 'https:' && target.protocol !== 'http:') {
          throw new AddressRefusedError();
        }
        const literal = literalAddress(target);
        if (literal !== null && !options.allowAddress(literal)) throw new AddressRefusedError();
        const status = await send(target, body, headers, {
          agent: target.protocol === 'https:' ? agents.https : agents.http,
          timeoutMs: options.timeoutMs,
          lookup,
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
  options: { agent: http.Agent; timeoutMs: number; lookup: LookupFunction },
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
        lookup: options.lookup,
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
  if (err instanceof AddressRefusedError) return err.message;
  const e = err as { name?: string; code?: string; message?: string };
  if (e.name === 'AbortError' || e.name === 'TimeoutError' || e.code === 'ABORT_ERR') {
    return `timeout: no answer within ${timeoutMs} ms`;
  }
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof AddressRefusedError) return cause.message;
  const message = e.message ?? String(err);
  return (e.code && !message.includes(e.code) ? `${e.code}: ${message}` : message).slice(0, 500);
}
