/**
 * Credentials outside the `Authorization` header (SPEC §10 "Secrets"): how to recognise one,
 * and how to keep one out of a log line.
 */

/**
 * Query parameter names that carry a credential in some API or client library; compared
 * without case. `key` is one of them: no route of the contract has a parameter of that name.
 */
export const CREDENTIAL_PARAMETER_NAMES: ReadonlySet<string> = new Set([
  'api_key',
  'apikey',
  'api-key',
  'key',
  'token',
  'access_token',
  'auth',
  'authorization',
  'bearer',
  'password',
  'secret',
  'client_secret',
]);

/**
 * One of our API keys, whole or in part: `dcb_` and a role prefix, then key characters.
 * Deliberately looser than the issued shape (43 base64url characters) so that a truncated or
 * mistyped key is still recognised; without case for the same reason.
 */
const KEY_SHAPED = /dcb_(?:mk|ck|ak|uk)_[A-Za-z0-9_-]*/i;
const KEY_SHAPED_ALL = /dcb_(?:mk|ck|ak|uk)_[A-Za-z0-9_-]*/gi;

export const REDACTED = '[redacted]';

export function isCredentialParameterName(name: string): boolean {
  return CREDENTIAL_PARAMETER_NAMES.has(name.toLowerCase());
}

export function containsKeyShapedText(text: string): boolean {
  return KEY_SHAPED.test(text);
}

/** Replaces every key-shaped run in free text (a whole serialised log line, say). */
export function redactKeyShapedText(text: string): string {
  return text.replace(KEY_SHAPED_ALL, REDACTED);
}

function decodeLeniently(component: string): string {
  try {
    return decodeURIComponent(component.replace(/\+/g, ' '));
  } catch {
    return component;
  }
}

/**
 * A request URL fit for a log line: the value of every credential-named query parameter, and
 * every path segment or query value that is (or, percent-decoded, contains) a key-shaped
 * string, becomes `[redacted]`. Names and the rest of the URL are kept for debugging.
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const redactedPath = path
    .split('/')
    .map((segment) => (containsKeyShapedText(decodeLeniently(segment)) ? REDACTED : segment))
    .join('/');
  if (q === -1) return redactedPath;
  const query = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq === -1 ? pair : pair.slice(0, eq);
      const value = eq === -1 ? '' : pair.slice(eq + 1);
      const decodedName = decodeLeniently(name);
      if (containsKeyShapedText(decodedName)) return REDACTED;
      if (eq === -1) return pair;
      if (isCredentialParameterName(decodedName) || containsKeyShapedText(decodeLeniently(value)))
        return `${name}=${REDACTED}`;
      return pair;
    })
    .join('&');
  return `${redactedPath}?${query}`;
}
