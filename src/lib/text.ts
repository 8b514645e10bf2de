/**
 * The one rule for text the gateway accepts (SPEC §10 "Strings"), wherever it arrives: a JSON
 * body (values and keys, at any depth), the query, the path, a header, a CSV row.
 *
 * Refused:
 * - every control character (Unicode category Cc) except tab (U+0009) and line feed (U+000A):
 *   NUL, which PostgreSQL `text` cannot hold and C strings cut at; the rest of C0, including
 *   carriage return, which only serves to forge log lines, CSV rows and headers, and "\r\n" is
 *   not needed to write a line break; DEL (U+007F); and the C1 range U+0080–U+009F, which no
 *   text means to contain and which appears mostly as Windows-1252 or Latin-1 bytes read
 *   under the wrong encoding;
 * - a lone UTF-16 surrogate (U+D800–U+DFFF not part of a pair), which JSON's `\ud800` escape
 *   produces but UTF-8 cannot encode: PostgreSQL refuses it, and a later encoder would
 *   replace it silently.
 *
 * Allowed: everything else, including format characters (zero-width, bidi marks) that
 * legitimate names in many scripts use, and U+FFFD itself (raw bytes that are not UTF-8 are
 * refused before they are decoded into it: `refuseInvalidUtf8` in src/http/hostile-input.ts).
 */

// With the `u` flag a surrogate pair is one code point, so only a lone surrogate matches.
// Matching control characters is the point of these two expressions.
/* eslint-disable no-control-regex */
const FORBIDDEN = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\uD800-\uDFFF]/u;
const FORBIDDEN_ALL = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\uD800-\uDFFF]/gu;
/* eslint-enable no-control-regex */

/** Index (in UTF-16 code units) of the first forbidden character of `text`, or -1. */
export function forbiddenCharAt(text: string): number {
  const match = FORBIDDEN.exec(text);
  return match === null ? -1 : match.index;
}

export function isAcceptableText(text: string): boolean {
  return !FORBIDDEN.test(text);
}

/** "U+0000 (NUL)" — how an error message names the refused character, never the character. */
export function describeForbiddenChar(text: string, index: number): string {
  const code = text.charCodeAt(index);
  const hex = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  if (code === 0) return `${hex} (NUL)`;
  if (code === 0x0d) return `${hex} (carriage return)`;
  if (code >= 0xd800 && code <= 0xdfff) return `${hex} (a lone surrogate)`;
  return `${hex} (a control character)`;
}

/** The text with each forbidden character written as a visible `\uXXXX` escape. */
export function escapeForbidden(text: string): string {
  return text.replace(
    FORBIDDEN_ALL,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
