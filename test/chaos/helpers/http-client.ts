import http from 'node:http';

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** Milliseconds from sending to the last byte of the answer. */
  ms: number;
}

/** The connection failed or broke before a whole answer arrived: the outcome is unknown. */
export class ConnectionLost extends Error {
  constructor(
    readonly code: string,
    /** The request had been written out completely before the connection failed. */
    readonly sent: boolean,
  ) {
    super(`connection lost (${code})`);
    this.name = 'ConnectionLost';
  }
}

export interface CallOptions {
  headers?: Record<string, string>;
  /** Sent as JSON unless it is already a string or bytes. */
  body?: unknown;
  timeoutMs?: number;
  /** A keep-alive agent; default: one connection per request. */
  agent?: http.Agent;
  /** Told when the TCP connection is established. */
  onConnect?: () => void;
}

/** One HTTP request over loopback with node:http, so a cut connection is seen as exactly that. */
export function call(
  baseUrl: string,
  method: string,
  path: string,
  options: CallOptions = {},
): Promise<Answer> {
  const url = new URL(path, baseUrl);
  const payload =
    options.body === undefined
      ? undefined
      : typeof options.body === 'string' || Buffer.isBuffer(options.body)
        ? options.body
        : JSON.stringify(options.body);
  const headers: Record<string, string> = { ...options.headers };
  if (payload !== undefined) {
    headers['content-type'] ??= 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  const started = performance.now();
  return new Promise<Answer>((resolve, reject) => {
    let sent = false;
    let settled = false;
    const fail = (err: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      reject(new ConnectionLost(err.code ?? err.message, sent));
    };
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path: url.pathname + url.search,
        headers,
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', fail);
        res.on('aborted', () => fail(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('utf8'),
            ms: performance.now() - started,
          });
        });
      },
    );
    req.on('error', fail);
    req.on('finish', () => (sent = true));
    if (options.onConnect) {
      const onConnect = options.onConnect;
      req.on('socket', (socket) => {
        if (!socket.connecting) onConnect();
        else socket.once('connect', onConnect);
      });
    }
    req.setTimeout(options.timeoutMs ?? 30_000, () =>
      req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })),
    );
    req.end(payload);
  });
}

export function bearerHeaders(key: string, extra: Record<string, string> = {}) {
  return { authorization: `Bearer ${key}`, ...extra };
}

/** JSON body of an answer; throws with the text when it is not JSON. */
export function jsonOf<T = Record<string, unknown>>(answer: Answer): T {
  try {
    return JSON.parse(answer.text) as T;
  } catch {
    throw new Error(`not JSON (${answer.status}): ${answer.text.slice(0, 300)}`);
  }
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 50 ms until it holds, or throws after `timeoutMs`. */
export async function waitUntil(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
}
