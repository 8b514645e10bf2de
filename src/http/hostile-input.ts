import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import { AppError } from '../errors.js';
import { containsKeyShapedText, isCredentialParameterName } from '../lib/secrets.js';
import { describeForbiddenChar, escapeForbidden, forbiddenCharAt } from '../lib/text.js';
import { pathParameterName } from './contract-paths.js';

/**
 * The request validation layer for hostile input (SPEC §10 "Strings" and "Secrets"), one
 * middleware that runs after the JSON parser and before authentication, the contract validator
 * and every route, so nothing it refuses is looked up, stored or logged in clear:
 *
 * 1. a credential anywhere but the `Authorization` header — a query parameter named like one
 *    (`api_key`, `token`, … without case), or a key-shaped string (`dcb_mk_…`) in the query,
 *    the path, another header or the body — is 400 `credentials_in_query`, before the key
 *    could be tried;
 * 2. every string of the request — path segments, query names and values, the headers the
 *    gateway reads, and every JSON key and value at any depth — must be UTF-8 text without NUL,
 *    a lone surrogate or a control character other than tab and line feed (the rule of
 *    `src/lib/text.ts`); otherwise 400 `invalid_string` naming the field.
 *
 * Raw body bytes that are not UTF-8 are refused by `refuseInvalidUtf8` while the JSON parser
 * reads them, before they are decoded into U+FFFD. A reconciliation CSV is a stream the route
 * reads itself; its rows go through the same text rule, line by line (reconciliations-csv.ts).
 */
export function refuseHostileInput(): RequestHandler {
  return (req, _res, next) => {
    const url = splitUrl(req.originalUrl);
    const body: unknown = req.body;
    refuseCredentials(url, req.headers, body);
    checkUrlText(url);
    for (const name of HEADERS_READ) {
      const value = req.headers[name.toLowerCase()];
      if (typeof value === 'string') checkText(value, { param: name, path: `headers.${name}` });
    }
    if (body !== null && typeof body === 'object') checkJson(body);
    next();
  };
}

/**
 * Headers whose value the gateway keeps and that have no rule of their own: X-Forwarded-For
 * becomes `req.ip` behind a trusted proxy, which every audit event records. Idempotency-Key and
 * X-Request-Id have theirs in SPEC §3: a non-printable key is `idempotency_key_invalid`, and an
 * X-Request-Id that is not printable ASCII is replaced by a generated id, never stored.
 */
const HEADERS_READ = ['X-Forwarded-For'] as const;

/** Where a string came from: `param` as the problem names it, `path` as in `errors[]`. */
interface Field {
  param: string;
  path: string;
}

const RULE =
  'Text may not contain NUL, a lone surrogate or a control character other than tab and ' +
  'line feed.';

function invalidString(field: Field, what: string): AppError {
  return new AppError('invalid_string', `${field.param} ${what}. ${RULE}`, {
    param: field.param,
    errors: [{ path: field.path, message: what }],
  });
}

function checkText(text: string, field: Field): void {
  const at = forbiddenCharAt(text);
  if (at !== -1) throw invalidString(field, `contains ${describeForbiddenChar(text, at)}`);
}

/** Verify hook of express.json: the raw bytes must be UTF-8 before they are decoded. */
export function refuseInvalidUtf8(
  _req: IncomingMessage,
  _res: unknown,
  body: Buffer,
  encoding: string | null,
): void {
  const utf8 = encoding === null || encoding === 'utf-8' || encoding === 'utf8';
  if (utf8 && !isUtf8(body)) {
    throw invalidString({ param: 'body', path: 'body' }, 'is not valid UTF-8');
  }
}

// ---- the URL ----

interface RawUrl {
  /** Raw (still percent-encoded) path segments; [0] is the empty string before the first "/". */
  segments: string[];
  /** Raw name/value pairs of the query string, in order. */
  query: { name: string; value: string }[];
}

function splitUrl(originalUrl: string): RawUrl {
  const q = originalUrl.indexOf('?');
  const path = q === -1 ? originalUrl : originalUrl.slice(0, q);
  const search = q === -1 ? '' : originalUrl.slice(q + 1);
  const query = search
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq === -1
        ? { name: pair, value: '' }
        : { name: pair.slice(0, eq), value: pair.slice(eq + 1) };
    });
  return { segments: path.split('/'), query };
}

/**
 * Percent-decodes a URL component to bytes and then to text; undefined when the bytes are not
 * UTF-8. A `%` without two hex digits stays a literal `%`, as the query parser reads it.
 */
function decodeComponent(raw: string, plusIsSpace: boolean): string | undefined {
  if (!raw.includes('%') && !(plusIsSpace && raw.includes('+'))) return raw;
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i += 1) {
    const ch = raw.charCodeAt(i);
    if (ch === 0x25 && /^[0-9a-fA-F]{2}$/.test(raw.slice(i + 1, i + 3))) {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (plusIsSpace && ch === 0x2b) {
      bytes.push(0x20);
    } else if (ch < 0x80) {
      bytes.push(ch);
    } else {
      // Not reachable over HTTP (Node refuses raw non-ASCII request targets), kept exact anyway.
      bytes.push(...Buffer.from(raw[i] ?? '', 'utf8'));
    }
  }
  const buf = Buffer.from(bytes);
  return isUtf8(buf) ? buf.toString('utf8') : undefined;
}

function pathField(segments: string[], index: number): Field {
  const name = pathParameterName(segments, index) ?? 'path';
  return { param: name, path: `params.${name}` };
}

function queryField(rawName: string): Field {
  const decoded = decodeComponent(rawName, true) ?? rawName;
  const name = escapeForbidden(decoded);
  return { param: name, path: `query.${name}` };
}

function checkUrlText(url: RawUrl): void {
  url.segments.forEach((raw, index) => {
    const text = decodeComponent(raw, false);
    if (text === undefined) throw invalidString(pathField(url.segments, index), 'is not UTF-8');
    checkText(text, pathField(url.segments, index));
  });
  for (const { name, value } of url.query) {
    const field = queryField(name);
    const decodedName = decodeComponent(name, true);
    if (decodedName === undefined)
      throw invalidString(field, 'is a parameter name that is not UTF-8');
    const at = forbiddenCharAt(decodedName);
    if (at !== -1) {
      throw invalidString(
        field,
        `is a parameter name that contains ${describeForbiddenChar(decodedName, at)}`,
      );
    }
    const decodedValue = decodeComponent(value, true);
    if (decodedValue === undefined) throw invalidString(field, 'is not UTF-8');
    checkText(decodedValue, field);
  }
}

// ---- credentials ----

function credentialsInQuery(field: Field, what: string): AppError {
  return new AppError(
    'credentials_in_query',
    `${field.param} ${what}. Send API keys only as "Authorization: Bearer <key>"; a key sent ` +
      'anywhere else may have been logged on the way and should be rotated.',
    { param: field.param, errors: [{ path: field.path, message: what }] },
  );
}

const KEY_SHAPED = 'looks like an API key';

function refuseCredentials(url: RawUrl, headers: IncomingMessage['headers'], body: unknown): void {
  for (const { name, value } of url.query) {
    const decodedName = decodeComponent(name, true) ?? name;
    if (containsKeyShapedText(decodedName)) {
      throw credentialsInQuery(
        { param: 'query', path: 'query' },
        'has a parameter that ' + KEY_SHAPED,
      );
    }
    const field = queryField(name);
    if (isCredentialParameterName(decodedName)) {
      throw credentialsInQuery(field, 'is a credential parameter');
    }
    if (containsKeyShapedText(decodeComponent(value, true) ?? value)) {
      throw credentialsInQuery(field, KEY_SHAPED);
    }
  }
  url.segments.forEach((raw, index) => {
    if (containsKeyShapedText(decodeComponent(raw, false) ?? raw)) {
      throw credentialsInQuery(pathField(url.segments, index), KEY_SHAPED);
    }
  });
  for (const [name, value] of Object.entries(headers)) {
    // The one place a key belongs, and the console's session cookie.
    if (name === 'authorization' || name === 'cookie' || value === undefined) continue;
    const values = Array.isArray(value) ? value : [value];
    if (values.some(containsKeyShapedText)) {
      throw credentialsInQuery({ param: name, path: `headers.${name}` }, KEY_SHAPED);
    }
  }
  if (body !== null && typeof body === 'object') {
    walkJson(body, (text, field) => {
      if (containsKeyShapedText(text)) throw credentialsInQuery(field, KEY_SHAPED);
    });
  }
}

// ---- the JSON body ----

function checkJson(body: object): void {
  walkJson(body, (text, field, isKey) => {
    const at = forbiddenCharAt(text);
    if (at === -1) return;
    const what = describeForbiddenChar(text, at);
    throw invalidString(field, isKey ? `is a key that contains ${what}` : `contains ${what}`);
  });
}

/**
 * Calls `visit` for every key and string value of a parsed JSON body, depth first, with its
 * field name: `metadata.note`, `items[2].name`; a key is named with its forbidden characters
 * escaped (`metadata.no\u0000te`). The body is at most 16 levels deep (limitJsonDepth).
 */
function fieldOf(name: string): Field {
  return { param: name || 'body', path: name ? `body.${name}` : 'body' };
}

function walkJson(root: object, visit: (text: string, field: Field, isKey: boolean) => void): void {
  const stack: [unknown, string][] = [[root, '']];
  while (stack.length > 0) {
    const [node, name] = stack.pop()!;
    if (typeof node === 'string') {
      visit(node, fieldOf(name), false);
    } else if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i -= 1) stack.push([node[i], `${name}[${i}]`]);
    } else if (node !== null && typeof node === 'object') {
      const entries = Object.entries(node as Record<string, unknown>);
      for (const [key] of entries) {
        visit(key, fieldOf(name ? `${name}.${escapeForbidden(key)}` : escapeForbidden(key)), true);
      }
      for (let i = entries.length - 1; i >= 0; i -= 1) {
        const [key, child] = entries[i]!;
        stack.push([child, name ? `${name}.${escapeForbidden(key)}` : escapeForbidden(key)]);
      }
    }
  }
}
