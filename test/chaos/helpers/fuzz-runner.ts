import http from 'node:http';
import type { WireRequest } from './fuzz-requests.js';
import type { Expectation } from './fuzz-mutations.js';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** Sends one request as given (no header is added), over a keep-alive agent. */
export function send(baseUrl: string, agent: http.Agent, r: WireRequest): Promise<Reply> {
  const url = new URL(baseUrl);
  const headers: Record<string, string> = { ...r.headers };
  if (r.body !== undefined) headers['content-length'] = String(Buffer.byteLength(r.body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, method: r.method, path: r.path, headers, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
    req.end(r.body);
  });
}

/** Runs `fn` over `items` with at most `concurrency` in flight; answers in item order. */
export async function inParallel<T, R>(
  items: T[],
  concurrency: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return out;
}

/** A broken promise of SPEC §2.5 / §3 / §10, with what it takes to reproduce it. */
export interface Finding {
  kind:
    | '5xx'
    | 'problem-shape'
    | 'not-refused'
    | 'wrong-status'
    | 'wrong-code'
    | 'wrong-param'
    | 'table-changed'
    | 'secret-logged'
    | 'request-id'
    | 'transport';
  op: string;
  mutation: string;
  variant: string;
  status: number;
  code?: string;
  detail: string;
  request?: { method: string; path: string; headers: Record<string, string>; body?: string };
  response?: string;
}

/** API keys (`dcb_mk_…`, `dcb_ck_…`, `dcb_ak_…`) wherever a finding would show them. */
const mask = (text: string) => text.replace(/dcb_[a-z]{2}_[A-Za-z0-9_-]{8,}/g, '<key>');

/** A request as a finding shows it: enough to send it again, keys and huge bodies cut. */
export function summary(r: WireRequest): NonNullable<Finding['request']> {
  return {
    method: r.method,
    path: mask(r.path.length > 300 ? `${r.path.slice(0, 300)}…` : r.path),
    headers: Object.fromEntries(
      Object.entries(r.headers).map(([k, v]) => [
        k,
        k === 'authorization' ? v.replace(/^(\S+ ).*$/, '$1<key>') : mask(v.slice(0, 120)),
      ]),
    ),
    body:
      r.body === undefined
        ? undefined
        : String(r.body).length > 300
          ? `${String(r.body).slice(0, 300)}… (${String(r.body).length} chars)`
          : String(r.body),
  };
}

const PROBLEM_FIELDS = ['type', 'title', 'status', 'code', 'request_id'] as const;
const VALID_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** The problem body of an error answer, or what is wrong with it. */
export function problemOf(reply: Reply): { problem?: Record<string, unknown>; wrong?: string } {
  const type = String(reply.headers['content-type'] ?? '');
  if (!type.startsWith('application/problem+json')) return { wrong: `content-type ${type}` };
  let problem: Record<string, unknown>;
  try {
    problem = JSON.parse(reply.text) as Record<string, unknown>;
  } catch {
    return { wrong: 'body is not JSON' };
  }
  const missing = PROBLEM_FIELDS.filter((f) => problem[f] === undefined || problem[f] === '');
  if (missing.length > 0) return { problem, wrong: `no ${missing.join(', ')}` };
  if (problem.status !== reply.status)
    return { problem, wrong: `status ${String(problem.status)}` };
  if (problem.request_id !== reply.headers['request-id']) {
    return { problem, wrong: 'request_id is not the Request-Id header' };
  }
  return { problem };
}

/** Normalises a problem's `param` (`body.a.b`, `/body/a/b`, `a[b]`) to `a.b`. */
export function normalParam(param: unknown): string | undefined {
  if (typeof param !== 'string') return undefined;
  return param
    .replace(/\[["']?([^\]"']*)["']?\]/g, '.$1')
    .replace(/\//g, '.')
    .replace(/^\.+/, '')
    .replace(/^(body|query|params|path|headers)\./, '');
}

/**
 * The checks every answer must pass: never a 5xx; an error is problem+json with type, title,
 * status, code and request_id; the Request-Id echoes a valid X-Request-Id and only a valid one.
 */
export function checkAnswer(
  r: WireRequest,
  reply: Reply,
  where: Pick<Finding, 'op' | 'mutation' | 'variant'>,
): Finding[] {
  const out: Finding[] = [];
  const finding = (kind: Finding['kind'], detail: string, code?: string): Finding => ({
    kind,
    ...where,
    status: reply.status,
    code,
    detail,
    request: summary(r),
    response: reply.text.slice(0, 400),
  });
  if (reply.status >= 500) out.push(finding('5xx', `answered ${reply.status}`));
  if (reply.status >= 400) {
    const { problem, wrong } = problemOf(reply);
    if (wrong) out.push(finding('problem-shape', wrong, problem?.code as string | undefined));
  }
  const sent = r.headers['x-request-id'];
  const answered = reply.headers['request-id'];
  if (typeof answered !== 'string' || !VALID_REQUEST_ID.test(answered)) {
    out.push(finding('request-id', `Request-Id ${String(answered)}`));
  } else if (sent !== undefined && VALID_REQUEST_ID.test(sent) !== (answered === sent)) {
    out.push(finding('request-id', `X-Request-Id ${JSON.stringify(sent)} answered ${answered}`));
  }
  return out;
}

/** Whether a mutant's answer is the refusal it must get. */
export function checkRefusal(
  r: WireRequest,
  reply: Reply,
  expect: Expectation,
  where: Pick<Finding, 'op' | 'mutation' | 'variant'>,
): Finding[] {
  const problem = reply.status >= 400 ? problemOf(reply).problem : undefined;
  const code = typeof problem?.code === 'string' ? problem.code : undefined;
  const base: Omit<Finding, 'kind' | 'detail'> = {
    ...where,
    status: reply.status,
    code,
    request: summary(r),
    response: reply.text.slice(0, 400),
  };
  const wanted = `${expect.status.join('|')}${expect.code ? ` ${expect.code.join('|')}` : ''}`;
  if (
    reply.status < 400 ||
    ([402, 409, 422].includes(reply.status) && !expect.status.includes(reply.status))
  ) {
    return [{ ...base, kind: 'not-refused', detail: `expected ${wanted}` }];
  }
  if (reply.status >= 500) return [];
  if (!expect.status.includes(reply.status)) {
    return [{ ...base, kind: 'wrong-status', detail: `expected ${wanted}` }];
  }
  if (expect.code && (code === undefined || !expect.code.includes(code))) {
    return [{ ...base, kind: 'wrong-code', detail: `expected ${wanted}` }];
  }
  if (expect.param !== undefined && normalParam(problem?.param) !== expect.param) {
    return [
      {
        ...base,
        kind: 'wrong-param',
        detail: `expected param ${expect.param}, got ${JSON.stringify(problem?.param)}`,
      },
    ];
  }
  return [];
}
